r"""xLSTM cells: the sLSTM (scalar memory, exponential gating, memory mixing within heads) and the
mLSTM (matrix memory with a covariance update rule), and the mLSTM's parallel form.

Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter & Hochreiter (2024),
"xLSTM: Extended Long Short-Term Memory", NeurIPS, arXiv:2405.04517.

sLSTM, for each step ``t`` (``(.)`` the elementwise product, ``R`` block-diagonal over heads)::

    z~_t = W_z x_t + R_z h_{t-1} + b_z      z_t = phi(z~_t) = tanh(z~_t)     cell input
    i~_t = W_i x_t + R_i h_{t-1} + b_i      i_t = exp(i~_t)                  input gate
    f~_t = W_f x_t + R_f h_{t-1} + b_f      f_t = sigma(f~_t) or exp(f~_t)   forget gate
    o~_t = W_o x_t + R_o h_{t-1} + b_o      o_t = sigma(o~_t)                output gate
    c_t = f_t (.) c_{t-1} + i_t (.) z_t                                      cell state
    n_t = f_t (.) n_{t-1} + i_t                                              normalizer state
    h_t = o_t (.) (c_t / n_t)                                                hidden state

computed in the stabilised form of the paper, with the stabilizer state ``m_t``::

    m_t  = max(log f_t + m_{t-1}, i~_t)
    i'_t = exp(i~_t - m_t)
    f'_t = exp(log f_t + m_{t-1} - m_t)

and ``i'_t, f'_t`` in place of ``i_t, f_t``. The stabilised ``c_t`` and ``n_t`` are the paper's
multiplied by ``exp(-m_t)``, so ``h_t`` is unchanged. In the sLSTM, from an empty memory
(``n_{t-1} = 0``, the zero initial state) any ``m_t`` gives the same ``h_t``; the step then takes
``m_t = i~_t`` and ``f'_t = 0`` (as the authors' code does), so that ``n_t = 1`` and ``h_t`` never
becomes ``0 / 0`` when ``exp(i~_t - log f_t)`` underflows.

mLSTM, per head (head size ``d``; ``i_t, f_t`` are scalars per head)::

    q_t = W_q x_t + b_q
    k_t = (1 / sqrt(d)) W_k x_t + b_k
    v_t = W_v x_t + b_v
    i_t = exp(w_i^T x_t + b_i),  f_t = sigma(w_f^T x_t + b_f) or exp(...),  o_t = sigma(W_o x_t + b_o)
    C_t = f_t C_{t-1} + i_t v_t k_t^T
    n_t = f_t n_{t-1} + i_t k_t
    h~_t = C_t q_t / max(|n_t^T q_t|, 1)
    h_t = o_t (.) h~_t

with the same stabilizer (``max(|n_t^T q_t|, 1)`` becomes ``max(|n_t^T q_t|, exp(-m_t))`` for the
stabilised ``C_t, n_t``). No gate reads ``h_{t-1}``, so the input projection of every step is one
matrix product before the loop, and the whole sequence has the attention-like form
:func:`mlstm_parallel`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.cells.base import check_init as _check_init
from carousel.cells.base import check_size as _check_size

FORGET_GATES = ("sigmoid", "exp")


def _check_heads(hidden_size: int, num_heads: object) -> int:
    heads = _check_size("num_heads", num_heads, 1)
    if hidden_size % heads:
        raise ValueError(f"num_heads: expected a divisor of hidden_size={hidden_size}, got {heads}")
    return heads


def _check_forget(forget_gate: object) -> str:
    if forget_gate not in FORGET_GATES:
        raise ValueError(f"forget_gate: expected one of {list(FORGET_GATES)}, got {forget_gate!r}")
    return forget_gate  # type: ignore[return-value]


def _log_forget(f_pre: Tensor, forget_gate: str) -> Tensor:
    """``log f_t``: ``log sigma(f~_t)`` or ``f~_t`` for the exponential forget gate."""
    return F.logsigmoid(f_pre) if forget_gate == "sigmoid" else f_pre


class SLSTM(Cell):
    r"""One step of the sLSTM (Beck et al. 2024): scalar memory, exponential input gate,
    normalizer ``n_t`` and stabilizer ``m_t``, recurrent weights block-diagonal over heads.

    Equations (see the module docstring for the stabilised form actually computed)::

        c_t = f_t (.) c_{t-1} + i_t (.) z_t,   n_t = f_t (.) n_{t-1} + i_t,   h_t = o_t (.) (c_t / n_t)
        i_t = exp(i~_t),   f_t = sigma(f~_t) or exp(f~_t),   z_t = tanh(z~_t),   o_t = sigma(o~_t)
        m_t = max(log f_t + m_{t-1}, i~_t),   i'_t = exp(i~_t - m_t),   f'_t = exp(log f_t + m_{t-1} - m_t)

    Args:
        input_size: features of ``x_t``.
        hidden_size: units ``H`` (size of ``h_t, c_t, n_t, m_t``).
        num_heads: heads; each head's units mix only among themselves: the recurrent matrix of
            every gate is block-diagonal with ``num_heads`` blocks of ``(H / heads, H / heads)``.
        bias: learn ``b``.
        forget_gate: ``"sigmoid"`` (``f_t = sigma(f~_t)``) or ``"exp"`` (``f_t = exp(f~_t)``).

    Parameters: ``weight_ih`` ``(4H, input_size)``, rows ``W_i, W_f, W_z, W_o``; ``weight_hh``
    ``(heads, 4 H/heads, H/heads)``, head ``k``'s recurrent rows in the order ``i, f, z, o``
    (the layout of the authors' reference code); ``bias`` ``(4H,)``.

    State: ``(h, c, n, m)``, each ``(B, H)``; zeros at the start. The output is ``h_t``.

    Example:
        >>> import torch
        >>> from carousel.cells.xlstm import SLSTM
        >>> cell = SLSTM(3, 8, num_heads=2)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))        # (T, B, 4H), hoisted
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, [tuple(s.shape) for s in state]
        (torch.Size([2, 8]), [(2, 8), (2, 8), (2, 8), (2, 8)])
    """

    output_state = 0
    dropout_states: tuple[int, ...] = (0,)  # h_{t-1} enters only through R h_{t-1}

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_heads: int = 1,
        bias: bool = True,
        forget_gate: str = "sigmoid",
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.num_heads = _check_heads(self.hidden_size, num_heads)
        self.head_size = self.hidden_size // self.num_heads
        self.bias = bool(bias)
        self.forget_gate = _check_forget(forget_gate)
        self.output_size = self.hidden_size
        self.state_sizes = (self.hidden_size,) * 4
        self.state_names = ("h", "c", "n", "m")

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, d = self.hidden_size, self.head_size
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (4 * H, self.input_size),
            "weight_hh": (self.num_heads, 4 * d, d),
        }
        if self.bias:
            shapes["bias"] = (4 * H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)). ``"keras"``: Glorot-uniform
        ``weight_ih``, orthogonal recurrent block per head and gate, zero bias."""
        _check_init(init)
        stdv = 1.0 / math.sqrt(self.hidden_size)
        d = self.head_size
        for name, p in params.items():
            if init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            elif name == "weight_hh":
                for k in range(self.num_heads):
                    for g in range(4):
                        torch.nn.init.orthogonal_(p[k, g * d : (g + 1) * d])
            else:
                p.zero_()

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W x_t + b`` for the four gates and every step: ``(..., input_size) -> (..., 4H)``."""
        w = params["weight_ih"]
        return F.linear(x, w, params["bias"] if self.bias else None)

    def recurrent(self, params: Params, h: Tensor) -> Tensor:
        """``R h_{t-1}`` with ``R`` block-diagonal over heads: ``(B, H) -> (B, 4H)``, gate-major."""
        B = h.shape[0]
        r = torch.einsum("bkj,kgj->bkg", h.view(B, self.num_heads, self.head_size), params["weight_hh"])
        # (B, heads, 4 d) -> (B, 4, heads, d) -> (B, 4H): gate-major like weight_ih
        return r.view(B, self.num_heads, 4, self.head_size).transpose(1, 2).reshape(B, 4 * self.hidden_size)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h, c, n, m = state
        i_pre, f_pre, z_pre, o_pre = (x_t + self.recurrent(params, h)).chunk(4, dim=-1)
        log_f = _log_forget(f_pre, self.forget_gate)
        # From an empty memory (n_{t-1} = 0: the zero start) m_t = i~_t and f'_t = 0 give the same h_t
        # and n_t = 1, where the general rule could underflow exp(i~_t - log f_t) to 0 and h_t to 0/0.
        empty = n == 0
        m_new = torch.where(empty, i_pre, torch.maximum(log_f + m, i_pre))  # m_t = max(log f_t + m_{t-1}, i~_t)
        i_s = torch.exp(i_pre - m_new)  # i'_t
        f_s = torch.exp((log_f + m - m_new).masked_fill(empty, float("-inf")))  # f'_t
        c_new = f_s * c + i_s * torch.tanh(z_pre)
        n_new = f_s * n + i_s
        h_new = torch.sigmoid(o_pre) * (c_new / n_new)
        return h_new, (h_new, c_new, n_new, m_new)

    def vendor_refusal(self) -> str | None:
        return "sLSTM has no vendor fused op"

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_heads != 1:
            opts.append(f"num_heads={self.num_heads}")
        if not self.bias:
            opts.append("bias=False")
        if self.forget_gate != "sigmoid":
            opts.append(f"forget_gate={self.forget_gate!r}")
        return f"SLSTM({', '.join(opts)})"


class MLSTM(Cell):
    r"""One step of the mLSTM (Beck et al. 2024): matrix memory ``C_t`` per head with the covariance
    update rule, exponential input gate with stabilizer, and no hidden-to-hidden recurrence.

    Equations, per head of size ``d`` (stabilised as in the module docstring)::

        C_t = f_t C_{t-1} + i_t v_t k_t^T,   n_t = f_t n_{t-1} + i_t k_t
        h~_t = C_t q_t / max(|n_t^T q_t|, 1),   h_t = o_t (.) h~_t
        q_t = W_q x_t + b_q,   k_t = W_k x_t / sqrt(d) + b_k,   v_t = W_v x_t + b_v
        i_t = exp(w_i^T x_t + b_i),   f_t = sigma(w_f^T x_t + b_f) or exp(...),   o_t = sigma(W_o x_t + b_o)

    Args:
        input_size: features of ``x_t``.
        hidden_size: ``H = num_heads * d``, the size of ``q_t, k_t, v_t, h_t``.
        num_heads: heads, each with its own ``d x d`` memory and scalar gates.
        bias: learn ``b``.
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        output_gate: False leaves out ``o_t`` (``h_t = h~_t``), as the mLSTM block does, which gates
            the cell's output outside it.

    Parameters: ``weight_ih`` ``(3H + 2 heads [+ H], input_size)``, rows ``W_q, W_k, W_v, w_i, w_f
    [, W_o]`` (one row of ``w_i`` and of ``w_f`` per head); ``bias`` of the same length.

    State: ``(C, n, m)`` of sizes ``heads * d * d``, ``heads * d`` and ``heads``: the runner keeps
    states as vectors, so ``C`` of shape ``(B, heads, d, d)`` (``C[b, k]`` is head ``k``'s matrix,
    rows indexed by ``v``, columns by ``k``) travels flattened; ``C.view(B, heads, d, d)`` restores it.
    ``h_t`` is the output only (``output_state = None``), so zoneout and recurrent dropout do not
    apply.

    Example:
        >>> import torch
        >>> from carousel.cells.xlstm import MLSTM
        >>> cell = MLSTM(3, 8, num_heads=2)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))
        >>> y, (C, n, m) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, C.view(2, 2, 4, 4).shape, n.shape, m.shape
        (torch.Size([2, 8]), torch.Size([2, 2, 4, 4]), torch.Size([2, 8]), torch.Size([2, 2]))
    """

    output_state = None
    dropout_states: tuple[int, ...] = ()

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        num_heads: int = 1,
        bias: bool = True,
        forget_gate: str = "sigmoid",
        output_gate: bool = True,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.num_heads = _check_heads(self.hidden_size, num_heads)
        self.head_size = self.hidden_size // self.num_heads
        self.bias = bool(bias)
        self.forget_gate = _check_forget(forget_gate)
        if not isinstance(output_gate, bool):
            raise ValueError(f"output_gate: expected True or False, got {output_gate!r}")
        self.output_gate = output_gate
        H, nh, d = self.hidden_size, self.num_heads, self.head_size
        self.output_size = H
        self.state_sizes = (nh * d * d, H, nh)
        self.state_names = ("C", "n", "m")
        self._split = (H, H, H, nh, nh) + ((H,) if output_gate else ())

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        rows = sum(self._split)
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (rows, self.input_size)}
        if self.bias:
            shapes["bias"] = (rows,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)). ``"keras"``: Glorot-uniform
        ``weight_ih``, zero bias."""
        _check_init(init)
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, p in params.items():
            if init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``q_t, k_t, v_t, i~_t, f~_t (, o~_t)`` for every step, concatenated in that order, with
        ``W_k x_t`` scaled by ``1 / sqrt(d)`` before ``b_k`` is added."""
        H = self.hidden_size
        wx = F.linear(x, params["weight_ih"])
        scale = wx.new_ones(wx.shape[-1])
        scale[H : 2 * H] = 1.0 / math.sqrt(self.head_size)
        wx = wx * scale
        return wx + params["bias"] if self.bias else wx

    def split(self, x_t: Tensor) -> tuple[Tensor, ...]:
        """Projected input ``(..., rows)`` -> ``q, k, v`` ``(..., heads, d)``, ``i~, f~`` ``(..., heads)``
        and ``o~`` ``(..., H)`` (absent without the output gate)."""
        nh, d = self.num_heads, self.head_size
        parts = x_t.split(self._split, dim=-1)
        q, k, v = (p.unflatten(-1, (nh, d)) for p in parts[:3])
        return (q, k, v, *parts[3:])

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        C, n, m = state
        B, nh, d = x_t.shape[0], self.num_heads, self.head_size
        q, k, v, i_pre, f_pre, *o_pre = self.split(x_t)
        C = C.view(B, nh, d, d)
        n = n.view(B, nh, d)
        log_f = _log_forget(f_pre, self.forget_gate)
        m_new = torch.maximum(log_f + m, i_pre)  # (B, heads)
        i_s = torch.exp(i_pre - m_new).unsqueeze(-1)
        f_s = torch.exp(log_f + m - m_new).unsqueeze(-1)
        C_new = f_s.unsqueeze(-1) * C + i_s.unsqueeze(-1) * (v.unsqueeze(-1) * k.unsqueeze(-2))  # v k^T
        n_new = f_s * n + i_s * k
        num = torch.matmul(C_new, q.unsqueeze(-1)).squeeze(-1)  # C_t q_t, (B, heads, d)
        den = torch.maximum((n_new * q).sum(-1).abs(), torch.exp(-m_new))  # max(|n^T q|, 1), stabilised
        h = (num / den.unsqueeze(-1)).reshape(B, nh * d)
        if o_pre:
            h = torch.sigmoid(o_pre[0]) * h
        return h, (C_new.reshape(B, nh * d * d), n_new.reshape(B, nh * d), m_new)

    def vendor_refusal(self) -> str | None:
        return "mLSTM has no vendor fused op"

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_heads != 1:
            opts.append(f"num_heads={self.num_heads}")
        if not self.bias:
            opts.append("bias=False")
        if self.forget_gate != "sigmoid":
            opts.append(f"forget_gate={self.forget_gate!r}")
        if not self.output_gate:
            opts.append("output_gate=False")
        return f"MLSTM({', '.join(opts)})"


def mlstm_parallel(
    q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, *, forget_gate: str = "sigmoid"
) -> Tensor:
    r"""The mLSTM over a whole sequence at once, from a zero state (Beck et al. 2024, parallel form).

    With ``F_t = sum_{s <= t} log f_s`` (the cumulative log forget gate; ``log sigma(f~_s)`` for the
    sigmoid gate), the gate matrix, its row stabilizer and the output are::

        log D_{ts} = F_t - F_s + i~_s  (s <= t),   -inf (s > t)
        m_t = max_s log D_{ts},   D'_{ts} = exp(log D_{ts} - m_t)
        C'_{ts} = (q_t^T k_s) D'_{ts}
        h~_t = sum_s C'_{ts} v_s / max(|sum_s C'_{ts}|, exp(-m_t))

    which equals the recurrent :class:`MLSTM` (``h~_t = C_t q_t / max(|n_t^T q_t|, 1)``) step by step.
    ``k`` is the paper's ``k_t``, already scaled by ``1 / sqrt(d)``. Memory is ``O(T^2)`` per head.

    Args:
        q, k, v: ``(B, heads, T, d)``.
        i_pre, f_pre: input and forget gate pre-activations ``i~_t, f~_t``, ``(B, heads, T)``.
        forget_gate: ``"sigmoid"`` or ``"exp"``.

    Returns:
        ``h~`` of shape ``(B, heads, T, d)`` (before the output gate).

    Example:
        >>> import torch
        >>> from carousel.cells.xlstm import mlstm_parallel
        >>> q, k, v = torch.randn(3, 2, 1, 6, 4).unbind(0)
        >>> mlstm_parallel(q, k, v, torch.randn(2, 1, 6), torch.randn(2, 1, 6)).shape
        torch.Size([2, 1, 6, 4])
    """
    _check_forget(forget_gate)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a (B, heads, T, d) tensor, got {got}")
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"k, v: expected the (B, heads, T) of q {tuple(q.shape[:3])}, got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    for name, t in (("i_pre", i_pre), ("f_pre", f_pre)):
        if not isinstance(t, Tensor) or t.shape != q.shape[:3]:
            got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected shape {tuple(q.shape[:3])} (B, heads, T), got {got}")
    T = q.shape[2]
    cum = _log_forget(f_pre, forget_gate).cumsum(-1)  # F_t, (B, heads, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    log_d = cum.unsqueeze(-1) - cum.unsqueeze(-2) + i_pre.unsqueeze(-2)  # (B, heads, T, T): row t, column s
    log_d = log_d.masked_fill(~causal, float("-inf"))
    m = log_d.amax(-1, keepdim=True)  # (B, heads, T, 1), finite: the diagonal is always present
    scores = torch.matmul(q, k.transpose(-2, -1)) * torch.exp(log_d - m)  # C'
    den = torch.maximum(scores.sum(-1, keepdim=True).abs(), torch.exp(-m))
    return torch.matmul(scores, v) / den
