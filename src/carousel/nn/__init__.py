"""User-facing recurrent layers, with ``torch.nn``'s arguments, returns and parameter names."""

from carousel.nn.conv import ConvGRU1d, ConvGRU2d, ConvGRU3d, ConvLSTM1d, ConvLSTM2d, ConvLSTM3d
from carousel.nn.ctrnn import CTRNN, MTRNN
from carousel.nn.gru import GRU, MUT1, MUT2, MUT3, GRUCell
from carousel.nn.indrnn import IndRNN, ResIndRNN
from carousel.nn.lstm import LSTM, LSTMCell
from carousel.nn.second_order import SecondOrderRNN
from carousel.nn.simple import ElmanRNN, FullyRecurrentRNN, JordanRNN, RecurrentMLP
from carousel.nn.tlstm import TLSTM
from carousel.nn.xlstm import MLSTM, SLSTM, mLSTMBlock, sLSTMBlock, xLSTMStack

__all__ = [
    "CTRNN",
    "GRU",
    "LSTM",
    "MLSTM",
    "MTRNN",
    "MUT1",
    "MUT2",
    "MUT3",
    "SLSTM",
    "TLSTM",
    "ConvGRU1d",
    "ConvGRU2d",
    "ConvGRU3d",
    "ConvLSTM1d",
    "ConvLSTM2d",
    "ConvLSTM3d",
    "ElmanRNN",
    "FullyRecurrentRNN",
    "GRUCell",
    "IndRNN",
    "JordanRNN",
    "LSTMCell",
    "RecurrentMLP",
    "ResIndRNN",
    "SecondOrderRNN",
    "mLSTMBlock",
    "sLSTMBlock",
    "xLSTMStack",
]
