"""RedundancyCollector: validated checkpoints and the non-finite-activation policy
(skip and count, warn naming the layer and forward pass; issue 14)."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from sirfp_adapter.collector import RedundancyCollector  # noqa: E402
from sirfp_adapter.measures import get_measure  # noqa: E402


def net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6))


def collected() -> tuple[RedundancyCollector, dict]:
    torch.manual_seed(0)
    col = RedundancyCollector(net(), measure="gram", decay=0.5)
    col.update("1", torch.randn(2, 8, 4, 4))
    col.update("1", torch.randn(2, 8, 4, 4))
    return col, col.state_dict()


def fresh() -> RedundancyCollector:
    return RedundancyCollector(net(), measure="gram", decay=0.5)


def test_state_dict_round_trip_counts_and_matrices():
    col, state = collected()
    assert state["updates"] == {"1": 2, "3": 0} and state["skipped"] == {"1": 0, "3": 0}
    assert set(state["ema"]) == {"1"}
    other = fresh()
    other.load_state_dict(state)
    assert other.updates() == col.updates()
    np.testing.assert_array_equal(other.matrices()["1"], col.matrices()["1"])


def _edit(path: tuple, value: object) -> dict:
    _, state = collected()
    state = copy.deepcopy(state)
    target = state
    for k in path[:-1]:
        target = target[k]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return state


BAD = [
    (None, "state must be a dict from RedundancyCollector.state_dict(); got NoneType"),
    ([1, 2], "state must be a dict from RedundancyCollector.state_dict(); got list"),
    (_edit(("ema",), KeyError), "state lacks the key 'ema' (not a RedundancyCollector.state_dict())"),
    (_edit(("updates",), KeyError), "state lacks the key 'updates' (not a RedundancyCollector.state_dict())"),
    (_edit(("extra",), 1), "state holds the unknown key 'extra'"),
    (_edit(("measure",), "js"), "state was collected with measure 'js', this collector uses 'gram'"),
    (_edit(("decay",), float("nan")), "state['decay'] must be a number in [0, 1); got nan"),
    (_edit(("ema",), None), "state['ema'] must be a dict of layer name to tensor; got NoneType"),
    (_edit(("ema", "1"), torch.zeros(3, 3)), "state['ema']['1'] is 3x3; it must be 8x8 (layer '1' has 8 channels)"),
    (_edit(("ema", "1"), torch.zeros(8, 5)), "state['ema']['1'] is 8x5; it must be 8x8 (layer '1' has 8 channels)"),
    (_edit(("ema", "1"), torch.zeros(8)), "state['ema']['1'] is 8; it must be 8x8 (layer '1' has 8 channels)"),
    (_edit(("ema", "1"), torch.full((8, 8), float("nan"))), "state['ema']['1'] holds non-finite values (NaN or inf)"),
    (_edit(("ema", "1"), torch.zeros(8, 8, dtype=torch.int64)),
     "state['ema']['1'] must be a floating torch.Tensor; got torch.int64"),
    (_edit(("ema", "1"), np.zeros((8, 8))), "state['ema']['1'] must be a floating torch.Tensor; got ndarray"),
    (_edit(("ema", "fc"), torch.zeros(8, 8)), "state['ema'] holds layer 'fc', which this collector does not watch"),
    (_edit(("ema", "1"), KeyError), "state['ema'] lacks layer '1', whose state['updates'] is 2"),
    (_edit(("ema", "3"), torch.zeros(6, 6)), "state['ema']['3'] is given but state['updates']['3'] is 0"),
    (_edit(("updates", "1"), -1), "state['updates']['1'] must be an int >= 0; got -1"),
    (_edit(("updates", "1"), True), "state['updates']['1'] must be an int >= 0; got True"),
    (_edit(("updates", "1"), 2.0), "state['updates']['1'] must be an int >= 0; got 2.0"),
    (_edit(("calls", "3"), KeyError), "state['calls'] lacks layer '3'"),
    (_edit(("calls", "9"), 0), "state['calls'] holds layer '9', which this collector does not watch"),
    (_edit(("skipped",), None), "state['skipped'] must be a dict of layer name to count; got NoneType"),
]


@pytest.mark.parametrize(("state", "message"), BAD)
def test_load_state_dict_refuses_bad_state_and_changes_nothing(state, message):
    col = RedundancyCollector(net(), measure="gram", decay=0.5)
    col.update("3", torch.randn(2, 6, 4, 4))
    before_matrices, before_updates, before_state = col.matrices(), col.updates(), col.state_dict()
    with pytest.raises(ValueError) as info:
        col.load_state_dict(state)
    assert str(info.value) == message
    assert col.updates() == before_updates
    assert col.state_dict()["calls"] == before_state["calls"]
    assert set(col.matrices()) == set(before_matrices)
    np.testing.assert_array_equal(col.matrices()["3"], before_matrices["3"])


def test_a_state_without_skip_counts_still_loads():
    _, state = collected()
    del state["skipped"]
    col = fresh()
    col.load_state_dict(state)
    assert col.skipped() == {"1": 0, "3": 0} and col.updates()["1"] == 2


# ----------------------------------------------------------------------------- non-finite activations


def test_a_non_finite_batch_is_skipped_counted_and_reported():
    torch.manual_seed(0)
    gram = get_measure("gram")
    xs = [torch.randn(2, 8, 4, 4) for _ in range(3)]
    bad = xs[1].clone()
    bad[0, 2, 1, 1] = float("nan")
    col = RedundancyCollector(net(), ["1"], measure="gram", decay=0.5)
    for x in (xs[0], bad, xs[2]):
        col.update("1", x)
    expected = 0.5 * (1 - gram(xs[0])) + 0.5 * (1 - gram(xs[2]))  # as if the bad batch never came
    with pytest.warns(RuntimeWarning) as record:
        mats = col.matrices()
    np.testing.assert_allclose(mats["1"], expected.double().numpy(), rtol=1e-6, atol=1e-7)
    assert np.isfinite(mats["1"]).all()
    assert col.updates() == {"1": 2} and col.skipped() == {"1": 1}
    assert str(record[0].message) == (
        "RedundancyCollector skipped batches with non-finite activations (NaN or inf), which the statistics "
        "ignore: '1': 1 of 3 batches (first: batch 2)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        col.matrices()  # warned once per new skip


def test_non_finite_first_batches_leave_no_matrix_then_the_first_finite_one_initialises():
    torch.manual_seed(1)
    model = net().train()
    with RedundancyCollector(model, measure="gram") as col:
        model(torch.full((2, 3, 4, 4), float("inf")))
        with pytest.warns(RuntimeWarning, match=re.escape("'1': 1 of 1 batches (first: batch 1); "
                                                         "'3': 1 of 1 batches (first: batch 1)")):
            assert col.matrices() == {}
        x = torch.randn(2, 3, 4, 4)
        model(x)
        assert col.updates() == {"1": 1, "3": 1} and col.skipped() == {"1": 1, "3": 1}
        first = model[1](model[0](x))
    np.testing.assert_allclose(col.matrices()["1"], (1 - get_measure("gram")(first)).double().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_skip_counts_survive_a_checkpoint():
    col = RedundancyCollector(net(), ["1"], measure="gram")
    col.update("1", torch.randn(2, 8, 4, 4))
    col.update("1", torch.full((2, 8, 4, 4), float("nan")))
    state = col.state_dict()
    assert state["updates"] == {"1": 1} and state["skipped"] == {"1": 1}
    other = RedundancyCollector(net(), ["1"], measure="gram")
    other.load_state_dict(state)
    assert other.skipped() == {"1": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.matrices()  # the skip was reported before the checkpoint


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 9), st.floats(allow_nan=True), st.text(max_size=3),
                    st.builds(lambda n, m, v: torch.full((n, m), v), st.integers(0, 9), st.integers(0, 9),
                              st.floats(allow_nan=True, width=32)))


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True)
@hypothesis.given(st.lists(st.tuples(st.sampled_from(["measure", "decay", "ema", "calls", "updates", "skipped",
                                                       "positions", "other"]),
                                     st.sampled_from(["1", "3", "9", None]), _VALUES), min_size=1, max_size=3))
def test_fuzzed_states_load_consistently_or_fail_with_value_error_and_change_nothing(edits):
    col, state = collected()
    state = copy.deepcopy(state)
    for key, layer, value in edits:
        if layer is None or not isinstance(state.get(key), dict):
            state[key] = value
        else:
            state[key][layer] = value
    target = fresh()
    target.update("3", torch.randn(2, 6, 4, 4))
    before = target.state_dict()
    try:
        target.load_state_dict(state)
    except ValueError:
        after = target.state_dict()
        assert after["updates"] == before["updates"] and after["calls"] == before["calls"]
        assert set(after["ema"]) == set(before["ema"]) and torch.equal(after["ema"]["3"], before["ema"]["3"])
        return
    mats = target.matrices()  # accepted: every matrix finite, CxC for its layer, counts consistent
    for name, m in mats.items():
        width = {"1": 8, "3": 6}[name]
        assert m.shape == (width, width) and np.isfinite(m).all()
        assert target.updates()[name] >= 1
