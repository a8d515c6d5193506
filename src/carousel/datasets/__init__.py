"""Bundled data and generators of the synthetic tasks of the recurrent-network literature."""

from carousel.datasets.tasks import adding_problem

__all__ = ["adding_problem"]
