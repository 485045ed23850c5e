"""RedundancyCollector: hooks, EMA arithmetic, checkpoints, torch.distributed."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from sirfp_adapter.collector import RedundancyCollector, default_layers  # noqa: E402
from sirfp_adapter.measures import get_measure  # noqa: E402


class TinyNet(nn.Module):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.fail = fail

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        if self.fail:
            raise RuntimeError("boom")
        return torch.relu(self.bn2(self.conv2(x)))


def test_default_layers_are_the_batch_norms():
    assert default_layers(TinyNet()) == ["bn1", "bn2"]


def test_ema_arithmetic_on_a_known_sequence():
    torch.manual_seed(0)
    net = TinyNet()
    col = RedundancyCollector(net, ["bn1"], measure="gram", decay=0.9, start="first")
    xs = [torch.randn(2, 8, 5, 5) for _ in range(4)]
    for x in xs:
        col.update("bn1", x)
    gram = get_measure("gram")
    expected = 1.0 - gram(xs[0])
    for x in xs[1:]:
        expected = 0.9 * expected + 0.1 * (1.0 - gram(x))
    np.testing.assert_allclose(col.matrices()["bn1"], expected.double().numpy(), rtol=1e-6, atol=1e-7)
    assert col.updates()["bn1"] == 4


@pytest.mark.parametrize("start", ["mean", "zero"])
def test_ema_starts_as_a_running_mean_or_from_zero(start):
    torch.manual_seed(0)
    col = RedundancyCollector(TinyNet(), ["bn1"], measure="gram", decay=0.75, start=start)
    xs = [torch.randn(2, 8, 5, 5) for _ in range(6)]
    gram = get_measure("gram")
    fresh = [(1.0 - gram(x)).double() for x in xs]
    expected = torch.zeros_like(fresh[0])
    for n, (x, f) in enumerate(zip(xs, fresh, strict=True), start=1):
        col.update("bn1", x)
        # "mean": weight max(1 - decay, 1/n) — the plain mean of the first 4 = 1/(1 - decay) batches
        rate = max(0.25, 1.0 / n) if start == "mean" else 0.25
        expected = (1 - rate) * expected + rate * f
        np.testing.assert_allclose(col.matrices()["bn1"], expected.numpy(), rtol=1e-5, atol=1e-6)
    if start == "mean":
        np.testing.assert_allclose(sum(fresh[:4]).numpy() / 4 * 0.75 ** 2 + 0.25 * 0.75 * fresh[4].numpy()
                                   + 0.25 * fresh[5].numpy(), col.matrices()["bn1"], rtol=1e-5, atol=1e-6)
    assert col.positions() == {"bn1": 25}


def test_hooks_collect_on_training_forward_passes():
    net = TinyNet().train()
    with RedundancyCollector(net, measure="gram", every=2) as col:
        for _ in range(5):
            net(torch.randn(2, 3, 8, 8))
        net.eval()
        net(torch.randn(2, 3, 8, 8))  # eval passes are ignored
    assert col.updates() == {"bn1": 3, "bn2": 3}
    mats = col.matrices()
    assert mats["bn1"].shape == (8, 8) and mats["bn2"].shape == (6, 6)
    assert mats["bn1"].dtype == np.float64
    np.testing.assert_allclose(mats["bn1"], mats["bn1"].T, atol=1e-6)
    assert not net.bn1._forward_hooks and not net.bn2._forward_hooks


def test_hooks_are_removed_after_an_exception():
    net = TinyNet(fail=True)
    with pytest.raises(RuntimeError, match="boom"):
        with RedundancyCollector(net, measure="gram"):
            net(torch.randn(2, 3, 8, 8))
    assert not net.bn1._forward_hooks and not net.bn2._forward_hooks
    assert not any(k.startswith("_") and "sirfp" in k for k in vars(net.bn1))  # nothing stored on modules


def test_max_samples_uses_the_first_samples():
    net = TinyNet()
    col = RedundancyCollector(net, ["bn1"], measure="gram", max_samples=1)
    x = torch.randn(3, 8, 4, 4)
    col.update("bn1", x)
    np.testing.assert_allclose(col.matrices()["bn1"], (1 - get_measure("gram")(x[:1])).double().numpy(), atol=1e-7)


def test_state_dict_round_trip_resumes_collection():
    torch.manual_seed(1)
    net = TinyNet()
    a = RedundancyCollector(net, measure="gram", decay=0.8)
    xs = [torch.randn(2, 8, 4, 4) for _ in range(3)]
    a.update("bn1", xs[0])
    b = RedundancyCollector(net, measure="gram", decay=0.8)
    b.load_state_dict(a.state_dict())
    for x in xs[1:]:
        a.update("bn1", x)
        b.update("bn1", x)
    np.testing.assert_array_equal(a.matrices()["bn1"], b.matrices()["bn1"])
    with pytest.raises(ValueError, match="state was collected with measure 'gram', this collector uses 'js'"):
        RedundancyCollector(net, measure="js").load_state_dict(a.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layers": ["nope"]}, "layers: 'nope' is not a module of the model"),
        ({"decay": 1.0}, r"decay must be a number in \[0, 1\); got 1.0"),
        ({"every": 0}, "every must be a positive integer; got 0"),
        ({"max_samples": 0}, "max_samples must be a positive integer or None; got 0"),
        ({"measure": "cosine"}, "measure"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RedundancyCollector(TinyNet(), **kwargs)
    with pytest.raises(ValueError, match="^layers must name at least one module of the model to watch, got none$"):
        RedundancyCollector(TinyNet(), [])  # it has BatchNorm2d layers: not "the model has no BatchNorm2d layer"
    with pytest.raises(TypeError, match="model must be a torch.nn.Module; got str"):
        RedundancyCollector("net")


def test_measure_options_are_checked_at_construction():
    with pytest.raises(TypeError, match=r"^measure 'gram' does not take the option\(s\) \['positions'\]; it takes: none$"):
        RedundancyCollector(TinyNet(), measure="gram", positions=16)
    with pytest.raises(TypeError, match=r"^measure 'js' does not take the option\(s\) \['foo'\]; it takes: normalize, "):
        RedundancyCollector(TinyNet(), measure="js", positions=16, foo=1)  # the valid one is not listed


@pytest.mark.parametrize(("options", "match"), [
    ({"normalize": "bogus"}, "^normalize must be one of 'softmax', 'relu_l1', 'relu_softmax'; got 'bogus'$"),
    ({"positions": -1}, "^positions must be a positive int or None; got -1$"),
    ({"positions": 0}, "^positions must be a positive int or None; got 0$"),
    ({"downsample": 0}, "^downsample must be None, a positive int or a pair of positive ints"),
    ({"backend": "cuda"}, "^backend must be one of 'auto', 'torch', 'triton'; got 'cuda'$"),
])
def test_measure_option_values_are_checked_before_any_hook(options, match):
    """A bad value fails when the collector is built, not in a hook inside the user's forward pass."""
    net = TinyNet()
    with pytest.raises(ValueError, match=match):
        RedundancyCollector(net, measure="js", **options)
    assert not any(m._forward_hooks for m in net.modules())


def test_sampled_positions_repeat_and_leave_the_global_rng_alone():
    batches = [torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(step)) for step in range(3)]
    nets = [TinyNet() for _ in range(3)]

    def collect(net: nn.Module, **options: object) -> np.ndarray:
        col = RedundancyCollector(net, ["bn1"], measure="js", **options)
        for x in batches:
            col.update("bn1", x)
        return col.matrices()["bn1"]

    state = torch.random.get_rng_state()
    first = collect(nets[0], positions=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(first, collect(nets[1], positions=4))
    assert not np.array_equal(first, collect(nets[2]))


def test_sampled_positions_resume_where_they_stopped():
    batches = [torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(step)) for step in range(4)]
    whole = RedundancyCollector(TinyNet(), ["bn1"], measure="js", positions=4)
    for x in batches:
        whole.update("bn1", x)
    first = RedundancyCollector(TinyNet(), ["bn1"], measure="js", positions=4)
    for x in batches[:2]:
        first.update("bn1", x)
    second = RedundancyCollector(TinyNet(), ["bn1"], measure="js", positions=4)
    second.load_state_dict(first.state_dict())
    for x in batches[2:]:
        second.update("bn1", x)
    assert np.array_equal(second.matrices()["bn1"], whole.matrices()["bn1"])
    with pytest.raises(ValueError, match=r"state\['generator'\] must be a uint8 tensor"):
        second.load_state_dict({**first.state_dict(), "generator": 3})


def _rank_main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = TinyNet()
        col = RedundancyCollector(net, ["bn1"], measure="gram", decay=0.5)
        for step in range(2):
            g = torch.Generator().manual_seed(100 * rank + step)
            col.update("bn1", torch.randn(2, 8, 4, 4, generator=g))
        np.save(os.path.join(out_dir, f"rank{rank}.npy"), col.matrices()["bn1"])
    finally:
        torch.distributed.destroy_process_group()


def test_all_ranks_hold_the_mean_of_the_per_rank_statistics():
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        torch.multiprocessing.spawn(_rank_main, args=(2, init_file, tmp), nprocs=2, join=True)
        got = [np.load(os.path.join(tmp, f"rank{r}.npy")) for r in range(2)]
    gram = get_measure("gram")

    def r_at(step: int) -> torch.Tensor:
        per_rank = [gram(torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(100 * r + step)))
                    for r in range(2)]
        return (per_rank[0] + per_rank[1]) / 2

    expected = 0.5 * (1 - r_at(0)) + 0.5 * (1 - r_at(1))
    np.testing.assert_array_equal(got[0], got[1])
    np.testing.assert_allclose(got[0], expected.double().numpy(), rtol=1e-6, atol=1e-7)


def test_package_import_is_lazy_about_torch():
    import subprocess
    import sys

    code = "import sys, sirfp_adapter; assert 'torch' not in sys.modules; sirfp_adapter.RedundancyCollector; " \
           "assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
