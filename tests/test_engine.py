"""The fused engine against the reference loop: outputs, final states, per-step cell states and
every parameter's gradient, for every option and combinations, float32 and float64, with random
lengths, both directions and packed input."""

import os
import subprocess
import sys

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from carousel.kernels import lstm_engine
from carousel.nn import LSTM

pytestmark = pytest.mark.skipif(
    os.environ.get("CAROUSEL_ENGINE") == "0", reason="the fused engine is switched off by the environment"
)

OPTIONS = {
    "peepholes": dict(peepholes=True),
    "forget_gate=False": dict(forget_gate=False),
    **{v: dict(variant=v) for v in ("NIG", "NFG", "NOG", "NIAF", "NOAF", "CIFG", "FGR", "full_peephole")},
    "activations": dict(gate_activation="hard_sigmoid", cell_activation="softsign", output_activation="identity"),
    "activations2": dict(gate_activation="sigmoid", cell_activation="relu", output_activation="elu"),
    "softplus": dict(output_activation="softplus"),
    "layer_norm": dict(layer_norm=True),
    "proj_peepholes": dict(proj_size=3, peepholes=True),
    "zoneout": dict(zoneout=(0.3, 0.5)),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "cell_states": dict(return_cell_states=True),
    "no_bias": dict(bias=False, variant="CIFG"),
    "everything": dict(
        variant="CIFG",
        peepholes=True,
        layer_norm=True,
        proj_size=3,
        zoneout=0.2,
        recurrent_dropout=0.2,
        return_cell_states=True,
    ),
    "fgr_everything": dict(variant="FGR", layer_norm=True, proj_size=2, zoneout=0.1, recurrent_dropout=0.3),
    "full_peephole_everything": dict(variant="full_peephole", layer_norm=True, proj_size=2, zoneout=0.2),
}


def pair(kw, dtype, layers=2, bidirectional=True, batch_first=False):
    fused = LSTM(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, **kw)
    ref = LSTM(3, 5, layers, bidirectional=bidirectional, batch_first=batch_first, dtype=dtype, fast=False, **kw)
    ref.load_state_dict(fused.state_dict())
    assert fused.implementation == "fused", fused.engine_refusal
    return fused, ref


def results(module, x, seed, **kw):
    torch.manual_seed(seed)
    res = module(x, **kw)
    out = res[0].data if isinstance(res[0], torch.nn.utils.rnn.PackedSequence) else res[0]
    parts = [out, *(res[1] if isinstance(res[1], tuple) else (res[1],))]
    if len(res) > 2:
        parts.append(res[2].data if isinstance(res[2], torch.nn.utils.rnn.PackedSequence) else res[2])
    return parts


def compare(fused, ref, x, dtype, **kw):
    # float32: summation orders differ (the engine keeps layer-norm statistics in double)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-3, atol=2e-4)
    if fused.cells[0].gate_activation == "hard_sigmoid" and dtype == torch.float64:
        # torch's hardsigmoid backward multiplies by 1/6 rounded to float32 even in float64
        tol = dict(rtol=1e-6, atol=1e-7)
    for training in (True, False):
        fused.train(training)
        ref.train(training)
        fused.zero_grad()
        ref.zero_grad()
        with torch.no_grad():  # inference keeps no per-step activations: a separate code path
            for u, v in zip(results(fused, x, 7, **kw), results(ref, x, 7, **kw)):
                torch.testing.assert_close(u, v, **tol)
        a, b = results(fused, x, 7, **kw), results(ref, x, 7, **kw)
        assert len(a) == len(b)
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, **tol)
        weights = [torch.randn_like(u) for u in a]
        sum((u * w).sum() for u, w in zip(a, weights)).backward()
        sum((v * w).sum() for v, w in zip(b, weights)).backward()
        for (name, p), q in zip(fused.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, **tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_fused_equals_reference_with_lengths(name, dtype):
    fused, ref = pair(OPTIONS[name], dtype)
    x = torch.randn(9, 4, 3, dtype=dtype)
    lengths = torch.randint(1, 10, (4,))
    lengths[0] = 9
    compare(fused, ref, x, dtype, lengths=lengths)


@pytest.mark.parametrize("name", ["peepholes", "everything", "fgr_everything", "full_peephole_everything"])
def test_fused_equals_reference_packed_batch_first_and_state(name):
    dtype = torch.float64
    fused, ref = pair(OPTIONS[name], dtype, layers=3, batch_first=True)
    x = torch.randn(5, 8, 3, dtype=dtype)
    lengths = torch.tensor([3, 8, 1, 6, 8])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    compare(fused, ref, packed, dtype)
    state = tuple(torch.randn(6, 5, n, dtype=dtype) for n in fused.cells[0].state_sizes)
    fused.train()
    ref.train()
    torch.manual_seed(2)
    a = fused(x, state)
    torch.manual_seed(2)
    b = ref(x, state)
    torch.testing.assert_close(a[0], b[0])


@pytest.mark.parametrize(
    "name", ["peepholes", "layer_norm", "everything", "fgr_everything", "full_peephole_everything"]
)
def test_fused_gradcheck(name):
    kw = dict(OPTIONS[name])
    layer = LSTM(3, 4, 2, bidirectional=True, dtype=torch.float64, **kw)
    assert layer.implementation == "fused"
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(4, 2, n, dtype=torch.float64, requires_grad=True) for n in layer.cells[0].state_sizes)
    lengths = torch.tensor([5, 3])

    def f(x, *args):
        hx, ps = args[: len(state)], args[len(state) :]
        torch.manual_seed(1)
        res = torch.func.functional_call(layer, dict(zip(names, ps)), (x, hx), dict(lengths=lengths))
        return (res[0], *res[1], *res[2:])

    assert torch.autograd.gradcheck(f, (x, *state, *params), fast_mode=True)


def test_engine_refusals_and_dispatch():
    assert LSTM(2, 3, peepholes=True).implementation == "fused"
    assert LSTM(2, 3).implementation == "vendor"
    assert LSTM(2, 3, peepholes=True, fast=False).implementation == "reference"
    custom = LSTM(2, 3, gate_activation=lambda v: torch.sigmoid(2 * v))
    assert custom.implementation == "reference"
    assert "fused engine has no gate_activation" in custom.engine_refusal
    with pytest.raises(ValueError, match="fast: True asks for a fast path, but this configuration has none"):
        LSTM(2, 3, output_activation="gelu", fast=True)
    assert LSTM(2, 3, peepholes=True, fast=True).implementation == "fused"


def test_engine_off_falls_back_with_one_warning():
    code = """
import warnings, torch
from carousel.nn import LSTM
layer = LSTM(2, 3, peepholes=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    layer(torch.randn(4, 1, 2)); layer(torch.randn(4, 1, 2)); LSTM(2, 3, variant="CIFG")(torch.randn(4, 1, 2))
assert layer.implementation == "reference", layer.implementation
msgs = [str(w.message) for w in caught]
assert len(msgs) == 1 and "CAROUSEL_ENGINE=0" in msgs[0], msgs
try:
    LSTM(2, 3, peepholes=True, fast=True)
except ValueError as err:
    assert "fused engine is unavailable" in str(err), err
else:
    raise AssertionError("fast=True did not raise")
print("ok")
"""
    env = dict(os.environ, CAROUSEL_ENGINE="0")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_engine_status_is_cached():
    assert lstm_engine.status() is None
    assert lstm_engine.tried()


@pytest.mark.parametrize("kw", [dict(peepholes=True, layer_norm=True), dict(variant="FGR", proj_size=16, zoneout=0.2)])
def test_fused_equals_reference_on_rows_split_over_threads(kw):
    # enough rows per step that the engine splits them over threads
    fused = LSTM(3, 64, dtype=torch.float64, **kw)
    ref = LSTM(3, 64, dtype=torch.float64, fast=False, **kw)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(3, 300, 3, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compare(fused, ref, x, torch.float64, lengths=torch.randint(1, 4, (300,)))
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("kw", [dict(peepholes=True), dict(variant="CIFG", proj_size=128, recurrent_dropout=0.2)])
def test_fused_equals_reference_on_steps_large_enough_for_onednn(kw):
    # at least 64 rows x 128 x 640 multiply-adds per step: the engine's recurrent product goes to
    # oneDNN (float32 only; float64 stays on the BLAS)
    fused = LSTM(8, 160, **kw)
    ref = LSTM(8, 160, fast=False, **kw)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(4, 64, 8)
    compare(fused, ref, x, torch.float32, lengths=torch.randint(1, 5, (64,)))
