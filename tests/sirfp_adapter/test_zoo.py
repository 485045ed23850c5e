"""sirfp_adapter.zoo: the torchvision shim and the named third-party networks."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from sirfp_adapter import zoo  # noqa: E402


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_shim_only_where_applied_and_torchvision_then_imports() -> None:
    pytest.importorskip("torchvision")  # imports here because conftest applied the shim
    out = _run(
        "import sys, torch, sirfp_adapter, sirfp_adapter.schedule, sirfp_adapter.zoo as z\n"
        "print('torchvision' in sys.modules, bool(z._LIBRARY), z._defined('nms'))\n"
        "first = z.ensure_torchvision(); second = z.ensure_torchvision()\n"
        "import torchvision\n"
        "needed = torch.version.cuda is None and z._torchvision_cuda_build()\n"
        "print(first == needed, second, z._defined('nms') and z._defined('qnms'))"
    )
    # importing the package defines nothing; the helper does, once, and torchvision imports
    assert out.splitlines() == ["False False False", "True False True"]


def test_build_model_makes_untrained_networks() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    torch = pytest.importorskip("torch")
    model = zoo.build_model("smp:Unet:resnet18", num_classes=3)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    model = zoo.build_model("torchvision:lraspp_mobilenet_v3_large", num_classes=4)
    assert model.eval()(torch.randn(1, 3, 64, 64))["out"].shape == (1, 4, 64, 64)


@pytest.mark.parametrize(("spec", "message"), [
    ("deeplab", "spec must be 'SOURCE:NAME' with SOURCE one of ['smp', 'timm', 'torchvision'], or "
                "'package.module:factory'; got 'deeplab'"),
    ("no_such_pkg_x:deeplab", "spec: cannot import module 'no_such_pkg_x' of 'no_such_pkg_x:deeplab' "
                              "(ModuleNotFoundError: No module named 'no_such_pkg_x'); it must be importable from the "
                              "current folder or the Python path"),
    ("hub-x:deeplab", "spec: source 'hub-x' is not one of ['smp', 'timm', 'torchvision'], and 'hub-x:deeplab' is not "
                      "'package.module:factory'"),
    ("sirfp_adapter.zoo:nothing", "spec: module 'sirfp_adapter.zoo' has no callable 'nothing'"),
    ("sirfp_adapter.zoo:SOURCES", "spec: module 'sirfp_adapter.zoo' has no callable 'SOURCES'"),
    ("smp:", "spec: 'smp:' has an empty part"),
    ("torchvision:a:b", "spec: torchvision models are 'torchvision:NAME'; got 'torchvision:a:b'"),
    ("smp:Unet:resnet18:x", "spec: smp models are 'smp:ARCH' or 'smp:ARCH:ENCODER'; got 'smp:Unet:resnet18:x'"),
])
def test_build_model_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{pytest.importorskip('re').escape(message)}$"):
        zoo.build_model(spec, num_classes=3)


def test_build_model_names_unknown_models() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    with pytest.raises(ValueError, match=r"^spec: 'Unet3' is not an smp architecture; choose one of \[.*'Unet'"):
        zoo.build_model("smp:Unet3", num_classes=3)
    with pytest.raises(ValueError, match=r"^spec: 'fcn' is not a torchvision segmentation model; choose one of "
                                         r"\[.*'fcn_resnet50'"):
        zoo.build_model("torchvision:fcn", num_classes=3)
    with pytest.raises(ValueError, match=r"^num_classes must be a positive integer; got 0$"):
        zoo.build_model("smp:Unet", num_classes=0)


def test_build_model_calls_the_users_factory(tmp_path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "my_nets.py").write_text(
        "import torch\n"
        "def net(num_classes):\n"
        "    return torch.nn.Conv2d(3, num_classes, 1)\n"
        "def fixed():\n"
        "    return torch.nn.Conv2d(3, 2, 1)\n"
        "def not_a_model(num_classes=3):\n"
        "    return 'conv'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert zoo.build_model("my_nets:net", num_classes=7).out_channels == 7
    assert zoo.build_model("my_nets:fixed", num_classes=7).out_channels == 2  # no num_classes: called bare
    with pytest.raises(ValueError, match=r"^spec: my_nets:not_a_model\(\) must return a torch.nn.Module; it "
                                         r"returned str$"):
        zoo.build_model("my_nets:not_a_model", num_classes=3)
