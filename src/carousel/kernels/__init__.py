"""Fused implementations of cells, each tested against the reference loop."""
