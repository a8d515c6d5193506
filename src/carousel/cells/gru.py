r"""Gated recurrent unit: the GRU of Cho et al., its two placements of the reset gate, the minimal
gated unit and the gate-reduced variants of Dey & Salem, as options of one step.

Notation (per time step :math:`t`, ``(.)`` the elementwise product), in the form ``torch.nn.GRU``
computes (``reset_after=True``)::

    r_t = sigma_g(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)              reset gate
    z_t = sigma_g(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)              update gate
    n_t = sigma_c(W_in x_t + b_in + r_t (.) (W_hn h_{t-1} + b_hn))    candidate
    h_t = (1 - z_t) (.) n_t + z_t (.) h_{t-1}

and in the original form of Cho et al. (``reset_after=False``), where the reset gate acts on
``h_{t-1}`` before the recurrent product::

    n_t = sigma_c(W_in x_t + b_in + W_hn (r_t (.) h_{t-1}) + b_hn)

Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio (2014), "Learning Phrase
Representations using RNN Encoder-Decoder for Statistical Machine Translation", EMNLP; minimal gated
unit: Zhou, Wu, Zhang & Zhou (2016), "Minimal Gated Unit for Recurrent Neural Networks",
International Journal of Automation and Computing 13(3); gate variants: Dey & Salem (2017),
"Gate-Variants of Gated Recurrent Unit (GRU) Neural Networks", IEEE MWSCAS, arXiv:1701.05923.

Parameter layout follows ``torch.nn.GRU``: ``weight_ih`` stacks the input weights of the blocks
row-wise in the order ``r, z, n`` (``f, n`` for the minimal gated unit), ``weight_hh`` the recurrent
weights in the same order, ``bias_ih`` and ``bias_hh`` the two bias vectors. A variant whose gates
lack a term leaves that block out of the matrix that would hold it and keeps the order of the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State, init_standard
from carousel.cells.base import check_size as _check_size
from carousel.ops.activations import Activation, activation_name, resolve_activation

VARIANTS = ("standard", "MGU", "GRU1", "GRU2", "GRU3")


def _rows(p: Tensor, blocks: tuple[str, ...], block: str, size: int) -> Tensor:
    k = blocks.index(block)
    return p[k * size : (k + 1) * size]


class GRU(Cell):
    r"""One step of a gated recurrent unit, in any of its published forms.

    Args:
        input_size: features of ``x_t``.
        hidden_size: units per layer (size of ``h_t``).
        bias: learn ``bias_ih`` and ``bias_hh``.
        reset_after: True applies the reset gate after the recurrent product,
            ``r_t (.) (W_hn h_{t-1} + b_hn)``, as ``torch.nn.GRU`` and cuDNN do; False applies it
            to ``h_{t-1}`` before the product, ``W_hn (r_t (.) h_{t-1})``, as in Cho et al. (2014).
        variant: ``"standard"`` (the equations of the module docstring), ``"MGU"``, the minimal
            gated unit of Zhou et al. (2016), whose one forget gate plays both roles::

                f_t = sigma_g(W_f x_t + U_f h_{t-1} + b_f)
                n_t = sigma_c(W_n x_t + U_n (f_t (.) h_{t-1}) + b_n)     (reset_after=False)
                h_t = (1 - f_t) (.) h_{t-1} + f_t (.) n_t

            or one of Dey & Salem's (2017) gate variants, which change only how ``r_t`` and
            ``z_t`` are computed (the candidate and the update are those of ``"standard"``)::

                GRU1:  r_t = sigma_g(U_r h_{t-1} + b_r),  z_t = sigma_g(U_z h_{t-1} + b_z)
                GRU2:  r_t = sigma_g(U_r h_{t-1}),        z_t = sigma_g(U_z h_{t-1})
                GRU3:  r_t = sigma_g(b_r),                z_t = sigma_g(b_z)

            Here ``b_r = b_ir + b_hr`` where both bias vectors hold the block.
        gate_activation, candidate_activation: ``sigma_g`` (default sigmoid) and ``sigma_c``
            (default tanh); a name (``"sigmoid"``, ``"tanh"``, ``"hard_sigmoid"``, ...) or a callable.

    Parameters: ``weight_ih`` holds the blocks that see ``x_t`` (``r, z, n`` or ``f, n``; only ``n``
    for GRU1-3); ``weight_hh`` the blocks that see ``h_{t-1}`` (all, but only ``n`` for GRU3);
    ``bias_ih`` the blocks that have a bias (all, but only ``n`` for GRU2), ``bias_hh`` those of
    them that also see ``h_{t-1}``.

    State: ``(h,)`` of size ``hidden_size``.

    Example:
        >>> import torch
        >>> from carousel.cells.gru import GRU
        >>> cell = GRU(3, 4, variant="MGU", reset_after=False)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "keras")
        >>> x = torch.randn(5, 2, 3)                       # (T, B, input_size)
        >>> xp = cell.project(params, x)                   # hoisted: all steps at once
        >>> state = cell.init_state(2, dtype=x.dtype, device=x.device)
        >>> y, state = cell.step(params, xp[0], state)
        >>> y.shape, len(state)
        (torch.Size([2, 4]), 1)
    """

    vendor_mode = "gru"
    # h_{t-1} is both the recurrent input and the memory carried by h_t = z h_{t-1} + ...: recurrent
    # dropout masks it in the recurrent products only (``fed``), never in the memory.
    dropout_states: tuple[int, ...] = (0,)
    dropout_in_step = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        reset_after: bool = True,
        variant: str = "standard",
        gate_activation: Activation | None = None,
        candidate_activation: Activation | None = None,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
        if not isinstance(reset_after, bool):
            raise ValueError(f"reset_after: expected True or False, got {reset_after!r}")
        if variant == "GRU3" and not bias:
            raise ValueError("bias: variant 'GRU3' computes its gates from the bias alone, got bias=False")
        self.variant = variant
        self.bias = bool(bias)
        self.reset_after = reset_after
        self.gate_activation = "sigmoid" if gate_activation is None else gate_activation
        self.candidate_activation = "tanh" if candidate_activation is None else candidate_activation
        self._sigma_g = resolve_activation(self.gate_activation, "gate_activation")
        self._sigma_c = resolve_activation(self.candidate_activation, "candidate_activation")

        self.blocks: tuple[str, ...] = ("f", "n") if variant == "MGU" else ("r", "z", "n")
        self.gates = self.blocks[:-1]
        self.input_blocks = self.blocks if variant in ("standard", "MGU") else ("n",)
        self.recurrent_blocks = ("n",) if variant == "GRU3" else self.blocks
        if not self.bias:
            self.bias_blocks: tuple[str, ...] = ()
        else:
            self.bias_blocks = ("n",) if variant == "GRU2" else self.blocks
        self.hh_bias_blocks = tuple(b for b in self.recurrent_blocks if b in self.bias_blocks)

        self.output_size = self.hidden_size
        self.state_sizes = (self.hidden_size,)
        self.state_names = ("h",)

    # ------------------------------------------------------------------ parameters
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (len(self.input_blocks) * H, self.input_size),
            "weight_hh": (len(self.recurrent_blocks) * H, H),
        }
        if self.bias_blocks:
            shapes["bias_ih"] = (len(self.bias_blocks) * H,)
        if self.hh_bias_blocks:
            shapes["bias_hh"] = (len(self.hh_bias_blocks) * H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """Initialise in place. ``"pytorch"``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)),
        as ``torch.nn.GRU``. ``"keras"``: Glorot-uniform input weights, orthogonal recurrent
        weights, zero biases, as Keras's GRU layer."""
        init_standard(params, init, self.hidden_size)

    def vendor_refusal(self) -> str | None:
        reasons = []
        if self.variant != "standard":
            reasons.append(f"variant={self.variant!r}")
        if not self.reset_after:
            reasons.append("reset_after=False")
        for arg, value, default in (
            ("gate_activation", self.gate_activation, "sigmoid"),
            ("candidate_activation", self.candidate_activation, "tanh"),
        ):
            if activation_name(value) != default:
                reasons.append(f"{arg}={value!r}")
        if reasons:
            return "torch's fused GRU computes only the standard cell with reset_after=True, not " + ", ".join(reasons)
        return None

    # ------------------------------------------------------------------ math
    def _input_bias(self, params: Params) -> Tensor | None:
        """The biases that do not sit under the reset gate, one ``H`` block per cell block."""
        if not self.bias_blocks:
            return None
        H = self.hidden_size
        parts = []
        for b in self.blocks:
            if b not in self.bias_blocks:
                parts.append(params["bias_ih"].new_zeros(H))
                continue
            v = _rows(params["bias_ih"], self.bias_blocks, b, H)
            if b in self.hh_bias_blocks and not (b == "n" and self.reset_after):
                v = v + _rows(params["bias_hh"], self.hh_bias_blocks, b, H)
            parts.append(v)
        return torch.cat(parts)

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W x_t + b`` for every block and step at once (zeros where a block does not see
        ``x_t``); ``b_hn`` stays out when ``reset_after``, since the reset gate scales it."""
        w = params["weight_ih"].t()
        x2 = x.reshape(-1, x.shape[-1])
        bias = self._input_bias(params)
        if self.input_blocks == self.blocks:
            xp = torch.mm(x2, w) if bias is None else torch.addmm(bias, x2, w)
        else:  # the gates do not see x_t: only the candidate's columns carry W x_t
            H = self.hidden_size
            xp = torch.cat([x2.new_zeros(x2.shape[0], len(self.gates) * H), torch.mm(x2, w)], dim=-1)
            if bias is not None:
                xp = xp + bias
        return xp.view(*x.shape[:-1], xp.shape[-1])

    def step(self, params: Params, x_t: Tensor, state: State, fed: State | None = None) -> tuple[Tensor, State]:
        h = state[0]
        hf = h if fed is None else fed[0]  # h_{t-1} as the recurrent products read it (masked in training)
        H = self.hidden_size
        ng = len(self.gates) * H
        w_hh = params["weight_hh"]
        x_g, x_n = x_t[..., :ng], x_t[..., ng:]
        gates_see_h = self.recurrent_blocks == self.blocks
        if self.reset_after:
            rh = torch.matmul(hf, w_hh.t())
            if gates_see_h:
                g_pre, h_n = x_g + rh[..., :ng], rh[..., ng:]
            else:
                g_pre, h_n = x_g, rh
            if "n" in self.hh_bias_blocks:
                h_n = h_n + _rows(params["bias_hh"], self.hh_bias_blocks, "n", H)
            gates = self._sigma_g(g_pre)
            r = gates[..., :H]
            n = self._sigma_c(x_n + r * h_n)
        else:
            if gates_see_h:
                g_pre, w_n = x_g + torch.matmul(hf, w_hh[:ng].t()), w_hh[ng:]
            else:
                g_pre, w_n = x_g, w_hh
            gates = self._sigma_g(g_pre)
            r = gates[..., :H]
            n = self._sigma_c(x_n + torch.matmul(r * hf, w_n.t()))
        if self.variant == "MGU":  # h_t = (1 - f_t) h_{t-1} + f_t n_t
            h_new = h + r * (n - h)
        else:  # h_t = (1 - z_t) n_t + z_t h_{t-1}
            z = gates[..., H:]
            h_new = n + z * (h - n)
        return h_new, (h_new,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.variant != "standard":
            opts.append(f"variant={self.variant!r}")
        if not self.reset_after:
            opts.append("reset_after=False")
        if not self.bias:
            opts.append("bias=False")
        return f"GRU({', '.join(opts)})"


class MUT(Cell):
    r"""One step of the mutated units MUT1, MUT2, MUT3 found by architecture search in
    Jozefowicz, Zaremba & Sutskever (2015), "An Empirical Exploration of Recurrent Network
    Architectures", ICML.

    Equations, in the paper's notation (``sigm`` the logistic sigmoid; the state update is the
    same for all three)::

        MUT1:
            z = sigm(W_xz x_t + b_z)
            r = sigm(W_xr x_t + W_hr h_t + b_r)
            h_{t+1} = tanh(W_hh (r (.) h_t) + tanh(x_t) + b_h) (.) z + h_t (.) (1 - z)

        MUT2:
            z = sigm(W_xz x_t + W_hz h_t + b_z)
            r = sigm(x_t + W_hr h_t + b_r)
            h_{t+1} = tanh(W_hh (r (.) h_t) + W_xh x_t + b_h) (.) z + h_t (.) (1 - z)

        MUT3:
            z = sigm(W_xz x_t + W_hz tanh(h_t) + b_z)
            r = sigm(W_xr x_t + W_hr h_t + b_r)
            h_{t+1} = tanh(W_hh (r (.) h_t) + W_xh x_t + b_h) (.) z + h_t (.) (1 - z)

    MUT1 adds ``tanh(x_t)`` and MUT2 adds ``x_t`` to a vector of ``hidden_size``, so both need
    ``input_size == hidden_size`` (in the paper, inputs are embeddings of that size; put a
    ``torch.nn.Linear`` in front otherwise).

    Args:
        input_size: features of ``x_t``.
        hidden_size: units per layer (size of ``h_t``).
        architecture: 1, 2 or 3.
        bias: learn ``bias`` (``b_z, b_r, b_h``).

    Parameters: ``weight_ih`` stacks the input weights the architecture has, in the order
    ``W_xz, W_xr, W_xh`` (MUT1: ``W_xz, W_xr``; MUT2: ``W_xz, W_xh``; MUT3: all three);
    ``weight_hh`` the recurrent ones in the order ``W_hz, W_hr, W_hh`` (MUT1: ``W_hr, W_hh``);
    ``bias`` is ``[b_z; b_r; b_h]``.

    State: ``(h,)`` of size ``hidden_size``.

    Example:
        >>> import torch
        >>> from carousel.cells.gru import MUT
        >>> cell = MUT(4, 4, architecture=2)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 4))
        >>> y, (h,) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape
        torch.Size([2, 4])
    """

    blocks = ("z", "r", "h")
    # As for the GRU, h_t is both the recurrent input and the carried memory.
    dropout_states: tuple[int, ...] = (0,)
    dropout_in_step = True

    def __init__(self, input_size: int, hidden_size: int, *, architecture: int = 1, bias: bool = True) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        if isinstance(architecture, bool) or architecture not in (1, 2, 3):
            raise ValueError(f"architecture: expected 1, 2 or 3, got {architecture!r}")
        if architecture in (1, 2) and input_size != hidden_size:
            term = "tanh(x_t)" if architecture == 1 else "x_t"
            raise ValueError(
                f"input_size: MUT{architecture} adds {term} to a vector of hidden_size={hidden_size}, "
                f"expected input_size == {hidden_size}, got {input_size}"
            )
        self.architecture = architecture
        self.bias = bool(bias)
        self.input_blocks = {1: ("z", "r"), 2: ("z", "h"), 3: ("z", "r", "h")}[architecture]
        self.recurrent_blocks = ("r", "h") if architecture == 1 else ("z", "r", "h")
        self.output_size = self.hidden_size
        self.state_sizes = (self.hidden_size,)
        self.state_names = ("h",)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (len(self.input_blocks) * H, self.input_size),
            "weight_hh": (len(self.recurrent_blocks) * H, H),
        }
        if self.bias:
            shapes["bias"] = (3 * H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """Initialise in place: ``"pytorch"`` (all ~ U(-1/sqrt(H), 1/sqrt(H))) or ``"keras"``
        (Glorot-uniform input weights, orthogonal recurrent weights, zero biases)."""
        init_standard(params, init, self.hidden_size)

    def project(self, params: Params, x: Tensor) -> Tensor:
        """The input side of ``z, r, h`` for every step: ``[W_xz x; W_xr x; W_xh x] + b``, with
        ``tanh(x)`` in place of ``W_xh x`` for MUT1 and ``x`` in place of ``W_xr x`` for MUT2."""
        H = self.hidden_size
        x2 = x.reshape(-1, x.shape[-1])
        wx = torch.mm(x2, params["weight_ih"].t())
        if self.architecture == 1:
            xp = torch.cat([wx, torch.tanh(x2)], dim=-1)
        elif self.architecture == 2:
            xp = torch.cat([wx[:, :H], x2, wx[:, H:]], dim=-1)
        else:
            xp = wx
        if self.bias:
            xp = xp + params["bias"]
        return xp.view(*x.shape[:-1], 3 * H)

    def step(self, params: Params, x_t: Tensor, state: State, fed: State | None = None) -> tuple[Tensor, State]:
        h = state[0]
        hf = h if fed is None else fed[0]  # h_{t-1} as the recurrent products read it (masked in training)
        H = self.hidden_size
        w_hh = params["weight_hh"]
        x_z, x_r, x_h = x_t.split(H, dim=-1)
        if self.architecture == 1:
            z = torch.sigmoid(x_z)
            r = torch.sigmoid(x_r + torch.matmul(hf, w_hh[:H].t()))
        elif self.architecture == 2:
            zr = torch.sigmoid(torch.cat([x_z, x_r], dim=-1) + torch.matmul(hf, w_hh[: 2 * H].t()))
            z, r = zr[..., :H], zr[..., H:]
        else:
            z = torch.sigmoid(x_z + torch.matmul(torch.tanh(hf), w_hh[:H].t()))
            r = torch.sigmoid(x_r + torch.matmul(hf, w_hh[H : 2 * H].t()))
        cand = torch.tanh(torch.matmul(r * hf, w_hh[-H:].t()) + x_h)
        h_new = h + z * (cand - h)  # cand z + h (1 - z)
        return h_new, (h_new,)

    def vendor_refusal(self) -> str | None:
        return f"MUT{self.architecture} has no vendor fused op"

    def __repr__(self) -> str:
        extra = "" if self.bias else ", bias=False"
        return f"MUT({self.input_size}, {self.hidden_size}, architecture={self.architecture}{extra})"
