"""Cells: one time step of math each, run over time by :mod:`carousel.runner`."""

from carousel.cells.base import Cell, check_cell
from carousel.cells.conv import ConvGRU, ConvLSTM
from carousel.cells.ctrnn import CTRNN, MTRNN
from carousel.cells.gru import GRU, MUT
from carousel.cells.indrnn import IndRNN, recurrent_bound
from carousel.cells.lstm import LSTM
from carousel.cells.second_order import SecondOrder
from carousel.cells.simple import Elman, FullyRecurrent, Jordan, RecurrentMLP
from carousel.cells.tlstm import TLSTM, elapsed_decay
from carousel.cells.xlstm import MLSTM, SLSTM, mlstm_parallel

__all__ = [
    "CTRNN",
    "GRU",
    "LSTM",
    "MLSTM",
    "MTRNN",
    "MUT",
    "SLSTM",
    "TLSTM",
    "Cell",
    "ConvGRU",
    "ConvLSTM",
    "Elman",
    "FullyRecurrent",
    "IndRNN",
    "Jordan",
    "RecurrentMLP",
    "SecondOrder",
    "check_cell",
    "elapsed_decay",
    "mlstm_parallel",
    "recurrent_bound",
]
