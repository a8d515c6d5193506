"""The runner: any cell over time, stacked, bidirectional, masked, regularised; fast paths chosen once."""

from carousel.runner.layer import RecurrentLayer
from carousel.runner.scan import scan
from carousel.runner.stream import Stream

__all__ = ["RecurrentLayer", "Stream", "scan"]
