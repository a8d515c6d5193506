"""User-facing recurrent layers, with ``torch.nn``'s arguments, returns and parameter names."""

from carousel.nn.gru import GRU, MUT1, MUT2, MUT3, GRUCell
from carousel.nn.indrnn import IndRNN, ResIndRNN
from carousel.nn.lstm import LSTM, LSTMCell
from carousel.nn.simple import ElmanRNN, FullyRecurrentRNN, JordanRNN, RecurrentMLP

__all__ = [
    "GRU",
    "LSTM",
    "MUT1",
    "MUT2",
    "MUT3",
    "ElmanRNN",
    "FullyRecurrentRNN",
    "GRUCell",
    "IndRNN",
    "JordanRNN",
    "LSTMCell",
    "RecurrentMLP",
    "ResIndRNN",
]
