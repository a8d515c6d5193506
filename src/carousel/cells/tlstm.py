r"""The time-aware LSTM (T-LSTM): an LSTM whose short-term memory decays with the elapsed time.

Notation (per step :math:`t`; ``Delta_t`` the time elapsed since the previous observation,
``(.)`` the elementwise product)::

    C^S_{t-1}  = tanh(W_d C_{t-1} + b_d)            short-term memory
    ^C^S_{t-1} = C^S_{t-1} (.) g(Delta_t)           discounted short-term memory
    C^T_{t-1}  = C_{t-1} - C^S_{t-1}                long-term memory
    C*_{t-1}   = C^T_{t-1} + ^C^S_{t-1}             adjusted previous memory
    f_t = sigma(W_f x_t + U_f h_{t-1} + b_f)        i_t = sigma(W_i x_t + U_i h_{t-1} + b_i)
    o_t = sigma(W_o x_t + U_o h_{t-1} + b_o)        ~C_t = tanh(W_c x_t + U_c h_{t-1} + b_c)
    C_t = f_t (.) C*_{t-1} + i_t (.) ~C_t
    h_t = o_t (.) tanh(C_t)

    g(Delta_t) = 1 / log(e + Delta_t)   (decay="log", for long elapsed times)
    g(Delta_t) = 1 / Delta_t            (decay="inverse", Delta_t > 0)

Baytas, Xiao, Zhang, Wang, Jain & Zhou (2017), "Patient Subtyping via Time-Aware LSTM Networks",
KDD. With ``g = 1`` (``Delta_t = 0`` under ``decay="log"``) the step is the standard LSTM.

How the elapsed time reaches the step without changing the runner: the runner gives a cell one
input per step. The T-LSTM cell's input carries ``Delta_t`` as its last feature column, so the
cell's ``input_size`` is ``features + 1``; ``project`` computes the input products
``W x_t + b`` of the real features for all steps at once (hoisted as for the LSTM) and appends
``Delta_t`` unchanged; ``step`` splits it off again. :class:`carousel.nn.TLSTM` builds that column
from its ``elapsed`` argument. In a stack, a cell below the top one appends ``Delta_t`` to its
output (``pass_elapsed=True``) so that the next layer reads it too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.cells.simple import _affine, _check_init, _check_size

DECAYS = ("log", "inverse")


def elapsed_decay(elapsed: Tensor, decay: str = "log") -> Tensor:
    """``g(Delta_t)``: ``1 / log(e + Delta_t)`` (``"log"``) or ``1 / Delta_t`` (``"inverse"``).

    >>> elapsed_decay(torch.tensor([0.0, math.e ** 2 - math.e]))
    tensor([1.0000, 0.5000])
    """
    if decay == "log":
        return 1.0 / torch.log(math.e + elapsed)
    if decay == "inverse":
        return 1.0 / elapsed
    raise ValueError(f"decay: expected one of {list(DECAYS)}, got {decay!r}")


class TLSTM(Cell):
    r"""One step of the time-aware LSTM::

        C^S_{t-1} = tanh(W_d C_{t-1} + b_d)
        C*_{t-1}  = (C_{t-1} - C^S_{t-1}) + C^S_{t-1} (.) g(Delta_t)
        i, f, o   = sigma(W_{i,f,o} x_t + U_{i,f,o} h_{t-1} + b_{i,f,o}),  ~C = tanh(W_c x_t + U_c h_{t-1} + b_c)
        C_t = f (.) C*_{t-1} + i (.) ~C,     h_t = o (.) tanh(C_t)

    Baytas, Xiao, Zhang, Wang, Jain & Zhou (2017), "Patient Subtyping via Time-Aware LSTM Networks",
    KDD. ``g(Delta_t) = 1 / log(e + Delta_t)`` (``decay="log"``) or ``1 / Delta_t`` (``"inverse"``).

    The step's input is ``[x_t, Delta_t]``: ``features`` real features and the elapsed time in the
    last column (see the module docstring), so ``input_size == features + 1``.

    Args:
        features: real input features ``I`` (without the elapsed-time column).
        hidden_size: units ``H``.
        decay: ``"log"`` (default) or ``"inverse"``.
        bias: learn ``b`` (``bias_ih``, ``bias_hh``, ``bias_d``).
        pass_elapsed: append ``Delta_t`` to the output (``output_size = H + 1``), for the next layer
            of a stack.

    Parameters, in ``torch.nn.LSTM``'s layout (gates ``i, f, ~C, o`` stacked): ``weight_ih (4H, I)``,
    ``weight_hh (4H, H)``, ``bias_ih (4H,)``, ``bias_hh (4H,)``, and the decomposition's
    ``weight_d (H, H)``, ``bias_d (H,)``. State: ``(h, c)`` of size ``H`` each.

    Example:
        >>> import torch
        >>> from carousel.cells.tlstm import TLSTM
        >>> cell = TLSTM(3, 4)
        >>> cell.input_size
        4
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> x = torch.cat([torch.randn(5, 2, 3), torch.rand(5, 2, 1)], -1)   # features, then Delta_t
        >>> xp = cell.project(params, x)    # (T, B, 4H + 1): W x_t + b, then Delta_t
        >>> y, (h, c) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> xp.shape, y.shape
        (torch.Size([5, 2, 17]), torch.Size([2, 4]))
    """

    state_names = ("h", "c")
    dropout_states = (0,)
    vendor_mode = None

    def __init__(
        self,
        features: int,
        hidden_size: int,
        *,
        decay: str = "log",
        bias: bool = True,
        pass_elapsed: bool = False,
    ) -> None:
        self.features = _check_size("features", features, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        if decay not in DECAYS:
            raise ValueError(f"decay: expected one of {list(DECAYS)}, got {decay!r}")
        self.decay = decay
        self.bias = bool(bias)
        self.pass_elapsed = bool(pass_elapsed)
        self.input_size = features + 1
        self.output_size = hidden_size + 1 if self.pass_elapsed else hidden_size
        self.output_state = None if self.pass_elapsed else 0
        self.state_sizes = (hidden_size, hidden_size)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (4 * H, self.features), "weight_hh": (4 * H, H)}
        if self.bias:
            shapes.update(bias_ih=(4 * H,), bias_hh=(4 * H,))
        shapes["weight_d"] = (H, H)
        if self.bias:
            shapes["bias_d"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: everything ~ U(-1/sqrt(H), 1/sqrt(H)) as ``torch.nn.LSTM``. ``"keras"``:
        Glorot-uniform ``weight_ih``, orthogonal ``weight_hh`` (per gate) and ``weight_d``, zero
        biases but the forget gate's ``bias_ih``, 1."""
        _check_init(init)
        H = self.hidden_size
        for name, p in params.items():
            if init == "pytorch":
                stdv = 1.0 / math.sqrt(H)
                p.uniform_(-stdv, stdv)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            elif name == "weight_hh":
                for gate in p.split(H):
                    torch.nn.init.orthogonal_(gate)
            elif name == "weight_d":
                torch.nn.init.orthogonal_(p)
            else:
                p.zero_()
                if name == "bias_ih":
                    p[H : 2 * H] = 1.0

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op decays the memory by the elapsed time"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``[W x_t + b_ih, Delta_t]`` for every step at once."""
        gates = _affine(x[..., :-1], params["weight_ih"], params["bias_ih"] if self.bias else None)
        return torch.cat([gates, x[..., -1:]], dim=-1)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = state
        gx, elapsed = x_t[:, :-1], x_t[:, -1:]
        short = torch.tanh(_affine(c, params["weight_d"], params.get("bias_d")))
        c_adj = c - short + short * elapsed_decay(elapsed, self.decay)
        gates = gx + _affine(h, params["weight_hh"], params.get("bias_hh"))
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c_adj + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        y = torch.cat([h, elapsed], dim=-1) if self.pass_elapsed else h
        return y, (h, c)

    def __repr__(self) -> str:
        opts = [f"{self.features}, {self.hidden_size}"]
        if self.decay != "log":
            opts.append(f"decay={self.decay!r}")
        if not self.bias:
            opts.append("bias=False")
        if self.pass_elapsed:
            opts.append("pass_elapsed=True")
        return f"TLSTM({', '.join(opts)})"
