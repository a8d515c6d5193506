"""carousel: the LSTM and its family on PyTorch, correct and fast, under one API."""

from carousel import cells, nn, runner
from carousel.nn import LSTM, LSTMCell
from carousel.runner import RecurrentLayer

__version__ = "0.1.0"
__all__ = ["LSTM", "LSTMCell", "RecurrentLayer", "__version__", "cells", "nn", "runner"]
