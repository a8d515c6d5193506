"""Cells: one time step of math each, run over time by :mod:`carousel.runner`."""

from carousel.cells.base import Cell, check_cell
from carousel.cells.lstm import LSTM

__all__ = ["LSTM", "Cell", "check_cell"]
