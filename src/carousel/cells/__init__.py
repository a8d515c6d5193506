"""Cells: one time step of math each, run over time by :mod:`carousel.runner`."""

from carousel.cells.base import Cell, check_cell
from carousel.cells.gru import GRU, MUT
from carousel.cells.lstm import LSTM

__all__ = ["GRU", "LSTM", "MUT", "Cell", "check_cell"]
