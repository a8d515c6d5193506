"""User-facing recurrent layers, with ``torch.nn``'s arguments, returns and parameter names."""

from carousel.nn.lstm import LSTM, LSTMCell

__all__ = ["LSTM", "LSTMCell"]
