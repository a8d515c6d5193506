"""Cells: one time step of math each, run over time by :mod:`carousel.runner`."""

from carousel.cells.base import Cell, check_cell
from carousel.cells.gru import GRU, MUT
from carousel.cells.indrnn import IndRNN, recurrent_bound
from carousel.cells.lstm import LSTM
from carousel.cells.simple import Elman, FullyRecurrent, Jordan, RecurrentMLP

__all__ = [
    "GRU",
    "LSTM",
    "MUT",
    "Cell",
    "Elman",
    "FullyRecurrent",
    "IndRNN",
    "Jordan",
    "RecurrentMLP",
    "check_cell",
    "recurrent_bound",
]
