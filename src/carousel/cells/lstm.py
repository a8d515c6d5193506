r"""Long short-term memory: every published form of the cell, as options of one step.

Notation (per time step :math:`t`, :math:`\odot` the elementwise product)::

    i_t = sigma_g(W_i x_t + U_i h_{t-1} + p_i (.) c_{t-1} + b_i)      input gate
    f_t = sigma_g(W_f x_t + U_f h_{t-1} + p_f (.) c_{t-1} + b_f)      forget gate
    g_t = sigma_c(W_g x_t + U_g h_{t-1} + b_g)                        cell input
    c_t = f_t (.) c_{t-1} + i_t (.) g_t                               constant error carousel
    o_t = sigma_g(W_o x_t + U_o h_{t-1} + p_o (.) c_t + b_o)          output gate
    h_t = o_t (.) sigma_h(c_t)           (h_t = W_hr [o_t (.) sigma_h(c_t)] with a projection)

Hochreiter & Schmidhuber (1997), "Long Short-Term Memory", Neural Computation 9(8); forget gate:
Gers, Schmidhuber & Cummins (2000), "Learning to Forget", Neural Computation 12(10); peepholes
``p``: Gers & Schmidhuber (2000), "Recurrent nets that time and count", IJCNN; variants: Greff et
al. (2017), "LSTM: A Search Space Odyssey", IEEE TNNLS 28(10); layer normalization: Ba, Kiros &
Hinton (2016), "Layer Normalization"; projection: Sak, Senior & Beaufays (2014), "Long Short-Term
Memory Recurrent Neural Network Architectures for Large Scale Acoustic Modeling".

Parameter layout follows ``torch.nn.LSTM``: ``weight_ih`` stacks the input weights of the gate
blocks row-wise in the order ``i, f, g, o`` (absent blocks are left out, the order of the rest is
kept), ``weight_hh`` the recurrent weights in the same order, ``bias_ih`` and ``bias_hh`` the two
bias vectors, ``weight_hr`` the projection. Peepholes are ``weight_ci``, ``weight_cf``,
``weight_co`` (vectors of ``hidden_size``); layer norm gains are ``ln_ih_weight``,
``ln_hh_weight`` and ``ln_c_weight`` / ``ln_c_bias``; full gate recurrence is ``weight_gr``;
the full-matrix peephole form's recurrent matrix is ``weight_ch``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from carousel.cells.base import INITS, Cell, Params, State
from carousel.cells.base import check_size as _check_size
from carousel.kernels.lstm_engine import ACTIVATION_CODES
from carousel.ops.activations import Activation, activation_name, resolve_activation

VARIANTS = ("vanilla", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR", "full_peephole")

# Greff et al.'s variants all keep the peepholes of their vanilla LSTM, except NP ("no peepholes").
_PEEPHOLE_DEFAULT = {v: v not in ("vanilla", "NP", "full_peephole") for v in VARIANTS}


class LSTM(Cell):
    r"""One step of an LSTM, in any of its published forms.

    Args:
        input_size: features of ``x_t``.
        hidden_size: cells per layer (size of ``c_t``).
        proj_size: if > 0, ``h_t = W_hr (o_t * sigma_h(c_t))`` of this size (LSTMP).
        bias: learn ``bias_ih`` and ``bias_hh``.
        forget_gate: False gives the original 1997 cell, ``c_t = c_{t-1} + i_t g_t``.
        peepholes: diagonal peephole weights (``c_{t-1}`` into the input and forget gates, ``c_t``
            into the output gate). None: on for Greff et al.'s variants that have them, off for
            ``"vanilla"`` (the PyTorch cell), ``"NP"`` and ``"full_peephole"``.
        variant: ``"vanilla"`` (no change), one of Greff et al.'s ``"NIG"`` (no input gate,
            ``i_t = 1``), ``"NFG"`` (no forget gate), ``"NOG"`` (no output gate), ``"NIAF"`` (no
            input activation, ``sigma_c = identity``), ``"NOAF"`` (no output activation,
            ``sigma_h = identity``), ``"NP"`` (no peepholes), ``"CIFG"`` (coupled gates,
            ``f_t = 1 - i_t``), ``"FGR"`` (full gate recurrence: ``i, f, o`` also receive
            ``W_gr [i_{t-1}; f_{t-1}; o_{t-1}]``), or ``"full_peephole"``: the peephole LSTM in the
            form given by the encyclopedia article on LSTM, where the gates see ``c_{t-1}`` through
            full matrices and ``h_{t-1}`` is not fed back at all::

                f_t = sigma_g(W_f x_t + U_f c_{t-1} + b_f)
                i_t = sigma_g(W_i x_t + U_i c_{t-1} + b_i)
                o_t = sigma_g(W_o x_t + U_o c_{t-1} + b_o)
                c_t = f_t (.) c_{t-1} + i_t (.) sigma_c(W_c x_t + b_c)
                h_t = o_t (.) sigma_h(c_t)

        gate_activation, cell_activation, output_activation: ``sigma_g`` (default sigmoid),
            ``sigma_c`` and ``sigma_h`` (default tanh); a name (``"sigmoid"``, ``"tanh"``,
            ``"identity"``, ``"relu"``, ``"hard_sigmoid"``, ...) or a callable.
        layer_norm: LN-LSTM of Ba et al.: ``LN(W x_t) + LN(U h_{t-1}) + b`` for the gates and
            ``h_t = o_t (.) sigma_h(LN(c_t))``.

    State: ``(h, c)`` of sizes ``(proj_size or hidden_size, hidden_size)``; ``"FGR"`` adds ``a``, the
    previous gate activations ``[i; f; o]`` of size ``3 * hidden_size``.

    Example:
        >>> import torch
        >>> from carousel.cells import LSTM
        >>> cell = LSTM(3, 4, variant="CIFG")
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "keras")
        >>> x = torch.randn(5, 2, 3)                       # (T, B, input_size)
        >>> xp = cell.project(params, x)                   # hoisted: all steps at once
        >>> state = cell.init_state(2, dtype=x.dtype, device=x.device)
        >>> y, state = cell.step(params, xp[0], state)
        >>> y.shape, state[1].shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
    """

    vendor_mode = "lstm"
    engine = "lstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        proj_size: int = 0,
        bias: bool = True,
        forget_gate: bool = True,
        peepholes: bool | None = None,
        variant: str = "vanilla",
        gate_activation: Activation | None = None,
        cell_activation: Activation | None = None,
        output_activation: Activation | None = None,
        layer_norm: bool = False,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.proj_size = _check_size("proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected a value smaller than hidden_size={hidden_size}, got {proj_size}")
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {list(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.bias = bool(bias)
        self.layer_norm = bool(layer_norm)

        if peepholes is None:
            peepholes = _PEEPHOLE_DEFAULT[variant]
        if peepholes and variant == "NP":
            raise ValueError("peepholes: variant 'NP' means no peepholes, got peepholes=True")
        if peepholes and variant == "full_peephole":
            raise ValueError(
                "peepholes: variant 'full_peephole' already feeds c_{t-1} to every gate through full matrices, "
                "got peepholes=True as well"
            )
        self.peepholes = bool(peepholes)
        if not forget_gate and variant == "CIFG":
            raise ValueError(
                "forget_gate: variant 'CIFG' couples the forget gate to the input gate, got forget_gate=False"
            )
        self.forget_gate = bool(forget_gate) and variant != "NFG"

        fixed = {"NIAF": ("cell_activation", cell_activation), "NOAF": ("output_activation", output_activation)}
        if variant in fixed:
            arg, given = fixed[variant]
            if given is not None and activation_name(given) != "identity":
                raise ValueError(f"{arg}: variant {variant!r} fixes it to 'identity', got {given!r}")
        gate_activation = "sigmoid" if gate_activation is None else gate_activation
        cell_activation = ("identity" if variant == "NIAF" else "tanh") if cell_activation is None else cell_activation
        output_activation = (
            ("identity" if variant == "NOAF" else "tanh") if output_activation is None else output_activation
        )
        self.gate_activation = gate_activation
        self.cell_activation = cell_activation
        self.output_activation = output_activation
        self._sigma_g = resolve_activation(gate_activation, "gate_activation")
        self._sigma_c = resolve_activation(cell_activation, "cell_activation")
        self._sigma_h = resolve_activation(output_activation, "output_activation")

        # Gate blocks, in torch.nn.LSTM's order, present in this configuration.
        self.has_input_gate = variant != "NIG"
        self.has_output_gate = variant != "NOG"
        self.coupled = variant == "CIFG"
        self.has_forget_gate = self.forget_gate and not self.coupled
        blocks = []
        if self.has_input_gate:
            blocks.append("i")
        if self.has_forget_gate:
            blocks.append("f")
        blocks.append("g")
        if self.has_output_gate:
            blocks.append("o")
        self.blocks = tuple(blocks)
        # Blocks that receive the recurrent term (all of them, except g in the full-peephole form).
        self.recurrent_blocks = tuple(b for b in blocks if not (variant == "full_peephole" and b == "g"))
        if variant == "FGR" and self.blocks != ("i", "f", "g", "o"):
            raise ValueError("variant: 'FGR' needs input, forget and output gates, got forget_gate=False")

        H = self.hidden_size
        self.output_size = self.proj_size or H
        sizes = [self.output_size, H]
        names = ["h", "c"]
        if variant == "FGR":
            sizes.append(3 * H)
            names.append("a")
        self.state_sizes = tuple(sizes)
        self.state_names = tuple(names)
        # Recurrent dropout drops h_{t-1} where it is fed back. The full-peephole form feeds back
        # only c_{t-1}, which is also the memory itself: dropping it would erase the memory.
        self.dropout_states = () if variant == "full_peephole" else (0,)

    # ------------------------------------------------------------------ parameters
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, n = self.hidden_size, len(self.blocks)
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (n * H, self.input_size)}
        if self.variant == "full_peephole":
            shapes["weight_ch"] = (len(self.recurrent_blocks) * H, H)
        else:
            shapes["weight_hh"] = (n * H, self.output_size)
        if self.bias:
            shapes["bias_ih"] = (n * H,)
            shapes["bias_hh"] = (n * H,)
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        if self.peepholes:
            for gate in ("i", "f", "o"):
                if gate in self.blocks:
                    shapes[f"weight_c{gate}"] = (H,)
        if self.variant == "FGR":
            shapes["weight_gr"] = (3 * H, 3 * H)
        if self.layer_norm:
            shapes["ln_ih_weight"] = (n * H,)
            shapes["ln_hh_weight"] = (len(self.recurrent_blocks) * H,)
            shapes["ln_c_weight"] = (H,)
            shapes["ln_c_bias"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """Initialise in place. ``"pytorch"``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)),
        as ``torch.nn.LSTM``. ``"keras"``: Glorot-uniform input and projection weights, orthogonal
        recurrent weights, zero biases with the forget-gate bias at 1, as Keras's LSTM layer.
        Layer-norm gains start at 1 and their biases at 0 under both schemes."""
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
        H = self.hidden_size
        stdv = 1.0 / math.sqrt(H)
        for name, p in params.items():
            if name.startswith("ln_"):
                p.fill_(1.0 if name.endswith("_weight") else 0.0)
            elif init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name in ("weight_hh", "weight_ch", "weight_gr"):
                torch.nn.init.orthogonal_(p)
            elif name in ("weight_ih", "weight_hr"):
                torch.nn.init.xavier_uniform_(p)
            elif name.startswith("weight_c"):  # peepholes: Glorot on a vector (fan_in = fan_out = H)
                bound = math.sqrt(3.0 / H)
                p.uniform_(-bound, bound)
            else:  # biases
                p.zero_()
                if name == "bias_ih" and self.has_forget_gate:
                    k = self.blocks.index("f")
                    p[k * H : (k + 1) * H] = 1.0

    def vendor_refusal(self) -> str | None:
        reasons = []
        if self.variant not in ("vanilla", "NP"):
            reasons.append(f"variant={self.variant!r}")
        elif not self.forget_gate:
            reasons.append("forget_gate=False")
        if self.peepholes:
            reasons.append("peepholes=True")
        if self.layer_norm:
            reasons.append("layer_norm=True")
        for arg, value, default in (
            ("gate_activation", self.gate_activation, "sigmoid"),
            ("cell_activation", self.cell_activation, "tanh"),
            ("output_activation", self.output_activation, "tanh"),
        ):
            if activation_name(value) != default:
                reasons.append(f"{arg}={value!r}")
        if reasons:
            return "torch's fused LSTM computes only the standard cell, not " + ", ".join(reasons)
        return None

    def engine_config(self) -> dict[str, object] | str:
        """This configuration for the fused engine, or the reason the engine cannot run it."""
        names = {}
        for arg, value in (
            ("gate_activation", self.gate_activation),
            ("cell_activation", self.cell_activation),
            ("output_activation", self.output_activation),
        ):
            name = activation_name(value)
            if name not in ACTIVATION_CODES:
                return f"the fused engine has no {arg}={value!r} (it has {sorted(ACTIVATION_CODES)})"
            names[arg] = name
        return dict(
            hidden_size=self.hidden_size,
            state_size=self.output_size,
            offsets=[self.blocks.index(b) if b in self.blocks else -1 for b in "ifgo"],
            recurrent_offsets=[self.recurrent_blocks.index(b) if b in self.recurrent_blocks else -1 for b in "ifgo"],
            coupled=self.coupled,
            peepholes=self.peepholes,
            layer_norm=self.layer_norm,
            proj=self.proj_size > 0,
            fgr=self.variant == "FGR",
            full_peephole=self.variant == "full_peephole",
            **names,
        )

    # ------------------------------------------------------------------ math
    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W x_t (+ b_ih + b_hh)`` for every step at once; LN-LSTM normalises ``W x_t`` first."""
        w = params["weight_ih"].t()
        x2 = x.reshape(-1, x.shape[-1])
        if self.bias and not self.layer_norm:  # one pass: bias + x W^T
            xp = torch.addmm(params["bias_ih"] + params["bias_hh"], x2, w)
        else:
            xp = torch.mm(x2, w)
            if self.layer_norm:
                xp = F.layer_norm(xp, xp.shape[-1:], params["ln_ih_weight"])
            if self.bias:
                xp = xp + (params["bias_ih"] + params["bias_hh"])
        return xp.view(*x.shape[:-1], xp.shape[-1])

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = state[0], state[1]
        H = self.hidden_size
        if self.variant == "full_peephole":
            r = torch.matmul(c, params["weight_ch"].t())
        else:
            r = torch.matmul(h, params["weight_hh"].t())
        if self.layer_norm:
            r = F.layer_norm(r, r.shape[-1:], params["ln_hh_weight"])
        if self.recurrent_blocks == self.blocks:
            z = x_t + r
            pre = dict(zip(self.blocks, z.split(H, dim=-1)))
        else:
            pre = dict(zip(self.blocks, x_t.split(H, dim=-1)))
            for name, part in zip(self.recurrent_blocks, r.split(H, dim=-1)):
                pre[name] = pre[name] + part
        if self.variant == "FGR":
            ga = torch.matmul(state[2], params["weight_gr"].t()).split(H, dim=-1)
            pre["i"], pre["f"], pre["o"] = pre["i"] + ga[0], pre["f"] + ga[1], pre["o"] + ga[2]
        if self.peepholes:
            if "i" in pre:
                pre["i"] = pre["i"] + params["weight_ci"] * c
            if "f" in pre:
                pre["f"] = pre["f"] + params["weight_cf"] * c

        sg = self._sigma_g
        g = self._sigma_c(pre["g"])
        i = sg(pre["i"]) if self.has_input_gate else None
        if self.has_forget_gate:
            f = sg(pre["f"])
        elif self.coupled:
            f = 1.0 - i  # type: ignore[operator]
        else:
            f = None
        ig = g if i is None else i * g
        c_new = c + ig if f is None else f * c + ig

        if self.has_output_gate:
            o_pre = pre["o"]
            if self.peepholes:
                o_pre = o_pre + params["weight_co"] * c_new
            o = sg(o_pre)
        else:
            o = None
        cc = F.layer_norm(c_new, (H,), params["ln_c_weight"], params["ln_c_bias"]) if self.layer_norm else c_new
        h_new = self._sigma_h(cc)
        if o is not None:
            h_new = o * h_new
        if self.proj_size:
            h_new = torch.matmul(h_new, params["weight_hr"].t())
        if self.variant == "FGR":
            return h_new, (h_new, c_new, torch.cat([i, f, o], dim=-1))  # type: ignore[list-item]
        return h_new, (h_new, c_new)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.proj_size:
            opts.append(f"proj_size={self.proj_size}")
        if self.variant != "vanilla":
            opts.append(f"variant={self.variant!r}")
        if not self.forget_gate:
            opts.append("forget_gate=False")
        if self.peepholes:
            opts.append("peepholes=True")
        if self.layer_norm:
            opts.append("layer_norm=True")
        return f"LSTM({', '.join(opts)})"
