"""``TLSTM``: the time-aware LSTM of Baytas et al. (2017) for irregularly sampled sequences. The
equations, and how the elapsed time travels with the input, are in :mod:`carousel.cells.tlstm`."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from carousel.cells.tlstm import TLSTM as TLSTMStep
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer, StateArg


class TLSTM(RecurrentLayer):
    r"""Multi-layer time-aware LSTM: ``forward(input, elapsed, hx=None, *, lengths=None, mask=None)``.

    For each layer and step (``Delta_t`` = ``elapsed`` at ``t``, the time since the previous
    observation of the same sequence)::

        C^S_{t-1} = tanh(W_d C_{t-1} + b_d)
        C*_{t-1}  = (C_{t-1} - C^S_{t-1}) + C^S_{t-1} (.) g(Delta_t)
        i, f, o   = sigma(W_{i,f,o} x_t + U_{i,f,o} h_{t-1} + b),   ~C = tanh(W_c x_t + U_c h_{t-1} + b_c)
        C_t = f (.) C*_{t-1} + i (.) ~C,     h_t = o (.) tanh(C_t)

    Baytas, Xiao, Zhang, Wang, Jain & Zhou (2017), "Patient Subtyping via Time-Aware LSTM Networks",
    KDD; ``g(Delta_t) = 1 / log(e + Delta_t)`` (``decay="log"``) or ``1 / Delta_t``
    (``decay="inverse"``). See :class:`carousel.cells.tlstm.TLSTM`.

    The layer appends ``elapsed`` to the input as one more feature column; the cell hoists the input
    products of the real features and splits ``Delta_t`` off inside the step. Every layer of a stack
    reads the same ``Delta_t`` (a lower layer hands it up with its output).

    Unidirectional only: a backward pass over an irregular series needs the gap to the *next*
    observation, which the runner cannot give a reverse cell apart from the forward one. For the
    same reason ``dropout`` between layers (it would drop the elapsed column) and ``zoneout`` are
    offered with ``num_layers=1`` only.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, device, dtype: as
            ``torch.nn.LSTM``.
        decay: ``"log"`` (default) or ``"inverse"``.
        recurrent_dropout: variational dropout on ``h_{t-1}``.
        zoneout: zoneout rate for ``h`` and ``c`` (or a pair), with ``num_layers=1``.
        init, fast: as :class:`carousel.nn.simple.ElmanRNN`; the reference loop runs.

    Shapes: ``input`` ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``), ``(T, I)`` unbatched, or a
    ``PackedSequence``; ``elapsed`` ``(T, B)`` (``(B, T)`` with ``batch_first``), ``(T,)`` unbatched,
    or a ``PackedSequence`` of ``(N,)`` or ``(N, 1)`` data packed like ``input``. ``elapsed`` must be
    finite and ``>= 0`` (``> 0`` for ``"inverse"``), padded steps included. Returns
    ``output, (h_n, c_n)`` as ``torch.nn.LSTM``.

    Parameters: ``weight_ih_l{k} (4H, I)``, ``weight_hh_l{k} (4H, H)``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (``torch.nn.LSTM``'s layout), ``weight_d_l{k} (H, H)``, ``bias_d_l{k} (H,)``.

    Example:
        >>> import torch
        >>> from carousel.nn.tlstm import TLSTM
        >>> rnn = TLSTM(3, 8, num_layers=2, batch_first=True)
        >>> x, gaps = torch.randn(4, 10, 3), torch.rand(4, 10) * 30
        >>> out, (h, c) = rnn(x, gaps, lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 10, 8]), torch.Size([2, 4, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        decay: str = "log",
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        if bidirectional:
            raise ValueError(
                "bidirectional: expected False (a reverse pass needs the gap to the next observation), got True"
            )
        stacked = isinstance(num_layers, int) and not isinstance(num_layers, bool) and num_layers > 1
        if stacked and dropout:
            raise ValueError(
                f"dropout: expected 0 with num_layers > 1 (it would drop the elapsed time handed up), got {dropout!r}"
            )
        if stacked and zoneout:
            raise ValueError(f"zoneout: expected 0 with num_layers > 1, got {zoneout!r}")
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size: expected an integer >= 1, got {input_size!r}")
        self.hidden_size = hidden_size
        self.bias = bias
        self.decay = decay
        self.features = input_size

        def make(k: int, n: int) -> TLSTMStep:
            # n counts the elapsed column: input_size + 1 at the bottom, hidden_size + 1 above.
            return TLSTMStep(n - 1, hidden_size, decay=decay, bias=bias, pass_elapsed=k < num_layers - 1)

        super().__init__(
            make,
            input_size + 1,
            num_layers,
            batch_first=batch_first,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            init=init,
            fast=fast,
            device=device,
            dtype=dtype,
        )

    def forward(  # type: ignore[override]
        self,
        input: Tensor | PackedSequence,
        elapsed: Tensor | PackedSequence,
        hx: StateArg = None,
        *,
        lengths=None,
        mask=None,
    ):
        """Run the layer on ``input`` observed after the gaps ``elapsed``; returns ``output, (h_n, c_n)``."""
        if isinstance(input, PackedSequence):
            if not isinstance(elapsed, PackedSequence):
                raise TypeError(f"elapsed: expected a PackedSequence like input, got {type(elapsed).__name__}")
            if not torch.equal(elapsed.batch_sizes, input.batch_sizes) or not _same(
                elapsed.sorted_indices, input.sorted_indices
            ):
                raise ValueError("elapsed: expected a PackedSequence packed like input, got other batch_sizes or order")
            gaps = elapsed.data
            if gaps.dim() == 2 and gaps.shape[1] == 1:
                gaps = gaps.squeeze(1)
            if gaps.dim() != 1 or gaps.shape[0] != input.data.shape[0]:
                raise ValueError(
                    f"elapsed: expected packed data of shape ({input.data.shape[0]},), got {tuple(elapsed.data.shape)}"
                )
            self._check_elapsed(gaps, input.data)
            data = torch.cat([input.data, gaps.unsqueeze(-1)], dim=-1)
            joined: Tensor | PackedSequence = PackedSequence(
                data, input.batch_sizes, input.sorted_indices, input.unsorted_indices
            )
        elif isinstance(input, Tensor):
            if not isinstance(elapsed, Tensor):
                raise TypeError(f"elapsed: expected a Tensor, got {type(elapsed).__name__}")
            if input.dim() in (2, 3) and tuple(elapsed.shape) != tuple(input.shape[:-1]):
                dims = "(time,)" if input.dim() == 2 else ("(batch, time)" if self.batch_first else "(time, batch)")
                raise ValueError(
                    f"elapsed: expected shape {tuple(input.shape[:-1])} {dims}, one gap per step, "
                    f"got {tuple(elapsed.shape)}"
                )
            if input.dim() in (2, 3) and input.shape[-1] != self.features:
                raise ValueError(f"input: expected {self.features} features (input_size), got {input.shape[-1]}")
            self._check_elapsed(elapsed, input)
            joined = torch.cat([input, elapsed.unsqueeze(-1)], dim=-1) if input.dim() in (2, 3) else input
        else:
            raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
        return super().forward(joined, hx, lengths=lengths, mask=mask)

    def _check_elapsed(self, elapsed: Tensor, like: Tensor) -> None:
        if elapsed.dtype != like.dtype:
            raise TypeError(f"elapsed: expected dtype {like.dtype} (the input's dtype), got {elapsed.dtype}")
        if elapsed.device != like.device:
            raise ValueError(f"elapsed: expected device {like.device} (the input's device), got {elapsed.device}")
        if elapsed.numel() == 0:
            return
        elapsed = elapsed.detach()
        if not bool(torch.isfinite(elapsed).all()):
            raise ValueError("elapsed: expected finite times, got NaN or inf")
        low = float(elapsed.min())
        if self.decay == "inverse" and low <= 0.0:
            raise ValueError(f"elapsed: expected times > 0 with decay='inverse' (g = 1 / elapsed), got min {low:g}")
        if low < 0.0:
            raise ValueError(f"elapsed: expected times >= 0, got min {low:g}")


def _same(a: Tensor | None, b: Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)
