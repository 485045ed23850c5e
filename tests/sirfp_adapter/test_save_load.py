"""save_pruned / load_pruned on careless and hostile files (issue 14): every failure a
ValueError naming the key, and after any failure the model is exactly as before."""

from __future__ import annotations

import copy
import os
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from sirfp_adapter.apply import FORMAT, load_pruned, prune_channels, save_pruned  # noqa: E402
from sirfp_adapter.groups import ChannelGroups  # noqa: E402

from .pruning_helpers import DepthwiseNet, inputs, lite  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A pruned DepthwiseNet (a depthwise conv: groups change too), its file and blob."""
    torch.manual_seed(0)
    model = DepthwiseNet()
    x = inputs()
    groups = ChannelGroups.build(model, x)
    prune_channels(groups, {g.name: np.arange(g.size // 2) for g in groups})
    model.eval()
    path = tmp_path_factory.mktemp("saved") / "pruned.pt"
    save_pruned(model, path, metadata={"run": "r1"})
    return model, path, torch.load(path, weights_only=True)


def snapshot(model: nn.Module) -> tuple[dict, torch.Tensor, dict]:
    model.eval()
    with torch.no_grad():
        out = model(inputs())
    attrs = {n: {k: getattr(m, k) for k in ("in_channels", "out_channels", "groups", "num_features")
                 if hasattr(m, k)} for n, m in model.named_modules()}
    return {k: v.clone() for k, v in model.state_dict().items()}, out, attrs


def assert_unchanged(model: nn.Module, before) -> None:
    state, out, attrs = snapshot(model)
    assert list(state) == list(before[0])
    for k in state:
        assert state[k].shape == before[0][k].shape and torch.equal(state[k], before[0][k]), k
    assert torch.equal(out, before[1])
    assert attrs == before[2]


def test_round_trip_restores_weights_groups_and_output(saved):
    model, path, _ = saved
    torch.manual_seed(5)
    fresh = DepthwiseNet()
    assert load_pruned(fresh, path) == {"run": "r1"}
    assert fresh.dw.groups == model.dw.groups == 4
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(inputs()), model(inputs()))


def _mutate(blob: dict, change) -> dict:
    blob = copy.deepcopy(blob)
    change(blob)
    return blob


def _set(*path, value):
    def change(blob):
        target = blob
        for k in path[:-1]:
            target = target[k]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


CASES = [
    ("forward set to None", _set("modules", "dw", "forward", value=None),
     "modules['dw']['forward'] is not a shape attribute of Conv2d (those are: in_channels, out_channels, groups)"),
    ("a conv's stride", _set("modules", "stem", "stride", value=[1, 1]),
     "modules['stem']['stride'] is not a shape attribute of Conv2d (those are: in_channels, out_channels, groups)"),
    ("a module without shape attributes", _set("modules", "", value={"training": False}),
     "modules[''] is a DepthwiseNet, which has no shape attributes"),
    ("a module the model lacks", _set("modules", "head", value={"num_features": 3}),
     "the saved model has modules this model lacks: ['head']"),
    ("a missing module", _set("modules", "bn3", value=KeyError),
     "modules lacks 'bn3' (a BatchNorm2d of this model)"),
    ("a missing attribute", _set("modules", "pw", "groups", value=KeyError), "modules['pw'] lacks 'groups'"),
    ("a width beyond the model's", _set("modules", "bn2", "num_features", value=13),
     "modules['bn2']['num_features'] must be an int from 1 to the model's 12; got 13"),
    ("a zero width", _set("modules", "bn2", "num_features", value=0),
     "modules['bn2']['num_features'] must be an int from 1 to the model's 12; got 0"),
    ("a bool width", _set("modules", "bn2", "num_features", value=True),
     "modules['bn2']['num_features'] must be an int from 1 to the model's 12; got True"),
    ("groups not dividing the channels", _set("modules", "dw", "groups", value=3),
     "modules['dw']['in_channels'] is 4, not a multiple of modules['dw']['groups'] = 3"),
    ("attributes contradicting the weights", _set("modules", "bn2", "num_features", value=5),
     "state_dict['bn2.weight'] has shape (6,); modules['bn2'] records num_features=5, so it must be (5,)"),
    ("a weight contradicting the attributes", _set("state_dict", "pw.weight", value=torch.zeros(6, 3, 1, 1)),
     "state_dict['pw.weight'] has shape (6, 3, 1, 1); modules['pw'] records in_channels=4, out_channels=6, "
     "groups=1, so it must be (6, 4, 1, 1)"),
    ("a missing key", _set("state_dict", "bn1.running_var", value=KeyError), "state_dict lacks 'bn1.running_var'"),
    ("an extra key", _set("state_dict", "bn1.gamma", value=torch.zeros(4)),
     "state_dict['bn1.gamma']: this model has no such parameter or buffer"),
    ("not a tensor", _set("state_dict", "bn1.weight", value=[1.0] * 4),
     "state_dict['bn1.weight'] must be a tensor; got list"),
    ("an integer weight", _set("state_dict", "bn1.weight", value=torch.ones(4, dtype=torch.int64)),
     "state_dict['bn1.weight'] is torch.int64; the model's is torch.float32"),
    ("NaN weights", _set("state_dict", "pw.weight", value=torch.full((6, 4, 1, 1), float("nan"))),
     "state_dict['pw.weight'] holds non-finite values (NaN or inf)"),
    ("an inf running variance", _set("state_dict", "bn0.running_var", value=torch.full((4,), float("inf"))),
     "state_dict['bn0.running_var'] holds non-finite values (NaN or inf)"),
    ("no state_dict", _set("state_dict", value=None), "is not a model saved by sirfp_adapter.save_pruned: "
     "its 'state_dict' is not a dict"),
    ("metadata not a dict", _set("metadata", value=[1]), "is not a model saved by sirfp_adapter.save_pruned: "
     "its 'metadata' is not a dict"),
    ("another format", _set("format", value="sirfp-pruned-model/0"), "is not a model saved by "
     "sirfp_adapter.save_pruned"),
]


@pytest.mark.parametrize(("what", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_file_is_refused_naming_the_key_and_the_model_is_untouched(saved, tmp_path, what, change, message):
    _, _, blob = saved
    path = tmp_path / "bad.pt"
    torch.save(_mutate(blob, change), path)
    model = DepthwiseNet()
    before = snapshot(model)
    with pytest.raises(ValueError) as info:
        load_pruned(model, path)
    text = str(info.value)
    assert text.endswith(message) if message.startswith("is not") else text == message
    assert_unchanged(model, before)


def test_a_file_for_another_architecture_leaves_the_model_untouched(saved):
    _, path, _ = saved
    model = lite()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"^the saved model has modules this model lacks: \['bn0', 'bn1', "):
        load_pruned(model, path)
    assert_unchanged(model, before)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/sirfp-pwned-by-test",))


def test_a_malicious_pickle_is_refused_without_advice_to_disable_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "modules": {}, "state_dict": {}, "x": Payload()}, path)
    marker = "/tmp/sirfp-pwned-by-test"
    if os.path.exists(marker):
        os.remove(marker)
    model = lite()
    before = snapshot(model)
    with pytest.raises(ValueError) as info:
        load_pruned(model, path)
    text = str(info.value)
    assert text == (f"{str(path)!r} is not a model saved by sirfp_adapter.save_pruned: it references the Python "
                    f"object {os.system.__module__}.system, which a model file never holds; refused without "
                    "running any of it")
    assert "weights_only" not in text and info.value.__cause__ is None and info.value.__suppress_context__
    assert not os.path.exists(marker)
    assert_unchanged(model, before)


@pytest.mark.parametrize("cut", [10, 200, -50])
def test_a_truncated_or_damaged_file_is_a_value_error(saved, tmp_path, cut):
    _, path, _ = saved
    data = path.read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"is not a model saved by sirfp_adapter\.save_pruned \("):
        load_pruned(DepthwiseNet(), bad)


def test_a_folder_or_a_missing_path(tmp_path):
    with pytest.raises(ValueError, match=r"is not a model saved by sirfp_adapter\.save_pruned \(IsADirectoryError"):
        load_pruned(DepthwiseNet(), tmp_path)
    with pytest.raises(FileNotFoundError):
        load_pruned(DepthwiseNet(), tmp_path / "nothing.pt")


def test_save_refuses_a_bad_path_model_or_metadata_and_writes_nothing(tmp_path):
    """A missing folder or a folder as ``path`` used to fail in the atomic write, naming
    its hidden temporary file (``.m.pt.3ixv0xrq.tmp``) instead of the argument."""
    model = DepthwiseNet()
    cases = [
        ((model, tmp_path / "no" / "sub" / "m.pt"), {}, ValueError,
         f"path must name a file in an existing folder; {str(tmp_path / 'no' / 'sub')!r} is not a folder "
         "(create it first)"),
        ((model, tmp_path), {}, ValueError, f"path must name a file; {str(tmp_path)!r} is a folder"),
        ((model, 3), {}, TypeError, "path must be a str or os.PathLike file name, got int"),
        (("model", tmp_path / "m.pt"), {}, TypeError, "model must be a torch.nn.Module, got str"),
        ((model, tmp_path / "m.pt"), {"metadata": [1, 2]}, TypeError,
         "metadata must be a mapping of str to plain values, or None; got list"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error) as info:
            save_pruned(*args, **kwargs)
        assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_fuzzed_files_either_load_exactly_or_fail_cleanly(saved, tmp_path):
    """Random edits of a valid file: a ValueError and an untouched model, or the edit was harmless."""
    _, _, blob = saved
    rng = random.Random(0)
    keys = list(blob["state_dict"])
    modules = list(blob["modules"])
    edits = [
        lambda b: b["state_dict"].pop(rng.choice(keys)),
        lambda b: b["state_dict"].__setitem__(rng.choice(keys), torch.zeros(rng.randint(1, 9))),
        lambda b: b["modules"][rng.choice(modules)].__setitem__(
            rng.choice(list(b["modules"][rng.choice(modules)]) + ["padding", "weight"]), rng.randint(-1, 16)),
        lambda b: b["modules"].pop(rng.choice(modules)),
        lambda b: b.__setitem__(rng.choice(["format", "modules", "state_dict"]), rng.choice([None, 1, "x", {}])),
    ]
    path = tmp_path / "fuzz.pt"
    refused = 0
    for _ in range(40):
        mutated = _mutate(blob, rng.choice(edits))
        torch.save(mutated, path)
        model = DepthwiseNet()
        before = snapshot(model)
        try:
            load_pruned(model, path)
        except ValueError:
            refused += 1
            assert_unchanged(model, before)
    assert refused >= 30
