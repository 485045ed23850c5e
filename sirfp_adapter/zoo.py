"""Third-party segmentation networks by name: torchvision, segmentation_models_pytorch, timm.

``build_model("torchvision:deeplabv3_resnet50", num_classes=21)``,
``build_model("smp:Unet:resnet34", num_classes=5)`` or
``build_model("timm:convnext_atto", num_classes=5)`` make an untrained network
(``weights=None`` / ``encoder_weights=None``: nothing is downloaded);
``build_model("package.module:factory", num_classes=5)`` imports the user's own module and
calls ``factory(num_classes=5)`` (``factory()`` when it takes no ``num_classes``). The packages come
with the ``models`` extra (``pip install -e ".[models]" torch==2.13.0``); a missing one
raises an ``ImportError`` that names the extra.

Notes
-----
PyPI's torchvision wheels for Linux are CUDA builds. Beside a CPU build of torch their
compiled extension does not load, and ``import torchvision`` then fails with
``RuntimeError: operator torchvision::nms does not exist``: its Python side registers
fake (meta) kernels for ``torchvision::nms`` and ``torchvision::qnms``, whose schemas the
extension would have defined. :func:`ensure_torchvision` defines those two schemas from
Python first, in a ``torch.library.Library("torchvision", "DEF")`` that this module keeps
alive, so the import succeeds; every pure-PyTorch part of torchvision (the models) then
works, and only the compiled detection operators (``torchvision.ops.nms`` and friends)
stay unavailable, as they already were. smp and timm import torchvision, so the shim has
to run before them as well. It is applied only when it is needed and harmless: torch is a
CPU build, torchvision is installed, not yet imported, is a CUDA build, and the operator
is not defined yet. A CPU torchvision, whose extension loads and defines the namespace
itself, is left alone. Importing :mod:`sirfp_adapter` never applies it; the model helpers
here and the test suite's ``conftest.py`` do.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

__all__ = ["SOURCES", "build_model", "ensure_torchvision"]

#: The schemas torchvision's Python side expects its compiled extension to define.
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY: list[torch.library.Library] = []  # kept alive: dropping it undefines the schemas


def _defined(op: str) -> bool:
    try:
        getattr(torch.ops.torchvision, op)
    except (AttributeError, RuntimeError):
        return False
    return True


def _torchvision_cuda_build() -> bool:
    """Whether the installed (not yet imported) torchvision is a CUDA or ROCm build: the
    local part of the ``__version__`` in its ``version.py`` (``0.28.0+cu130``), read
    without importing the package."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    try:
        tree = ast.parse((Path(spec.origin).parent / "version.py").read_text())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            local = node.value.value.partition("+")[2]
            return local.startswith(("cu", "rocm"))
    return False


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` work beside a CPU torch (see the module Notes).

    Returns
    -------
    bool
        Whether the schemas were defined by this call (``False`` when nothing was needed
        or it had been done already).
    """
    if _LIBRARY or torch.version.cuda is not None or "torchvision" in sys.modules:
        return False
    if not _torchvision_cuda_build():
        return False
    missing = [op for op in _SCHEMAS if not _defined(op)]
    if not missing:
        return False
    library = torch.library.Library("torchvision", "DEF")
    for op in missing:
        library.define(_SCHEMAS[op])
    _LIBRARY.append(library)
    return True


def _import(module: str) -> Any:
    ensure_torchvision()
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed: pip install -e '.[models]' torch==2.13.0 (the 'models' extra)"
        ) from exc


def _torchvision(parts: list[str], num_classes: int) -> nn.Module:
    if len(parts) != 1:
        raise ValueError(f"spec: torchvision models are 'torchvision:NAME'; got {':'.join(['torchvision', *parts])!r}")
    models = _import("torchvision.models")
    segmentation = models.segmentation
    names = sorted(models.list_models(module=segmentation))
    if parts[0] not in names:
        raise ValueError(f"spec: {parts[0]!r} is not a torchvision segmentation model; choose one of {names}")
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if parts[0] != "lraspp_mobilenet_v3_large":
        kwargs["aux_loss"] = False
    return getattr(segmentation, parts[0])(**kwargs)


def _smp(parts: list[str], num_classes: int) -> nn.Module:
    if len(parts) not in (1, 2):
        raise ValueError(f"spec: smp models are 'smp:ARCH' or 'smp:ARCH:ENCODER'; got {':'.join(['smp', *parts])!r}")
    smp = _import("segmentation_models_pytorch")
    archs = sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values())
    if parts[0] not in archs:
        raise ValueError(f"spec: {parts[0]!r} is not an smp architecture; choose one of {archs}")
    kwargs: dict[str, Any] = {"encoder_weights": None, "classes": num_classes}
    if len(parts) == 2:
        kwargs["encoder_name"] = parts[1]
    return getattr(smp, parts[0])(**kwargs)


def _timm(parts: list[str], num_classes: int) -> nn.Module:
    if len(parts) != 1:
        raise ValueError(f"spec: timm models are 'timm:NAME'; got {':'.join(['timm', *parts])!r}")
    timm = _import("timm")
    if not timm.is_model(parts[0]):
        raise ValueError(f"spec: {parts[0]!r} is not a timm model (timm.list_models() lists them)")
    return timm.create_model(parts[0], pretrained=False, num_classes=num_classes)


def _factory(module_name: str, attr: str, num_classes: int) -> nn.Module:
    """``package.module:factory``: the user's own network."""
    spec = f"{module_name}:{attr}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"spec: cannot import module {module_name!r} of {spec!r} ({type(exc).__name__}: {exc}); "
                         f"it must be importable from the current folder or the Python path") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"spec: module {module_name!r} has no callable {attr!r}")
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        parameters = {}
    takes = "num_classes" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    model = factory(num_classes=num_classes) if takes else factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"spec: {spec}() must return a torch.nn.Module; it returned {type(model).__name__}")
    return model


#: How each source's networks are made: ``"source:..."`` -> builder(parts, num_classes).
SOURCES: MappingProxyType[str, Callable[[list[str], int], nn.Module]] = MappingProxyType(
    {"torchvision": _torchvision, "smp": _smp, "timm": _timm}
)


def build_model(spec: str, num_classes: int) -> nn.Module:
    """An untrained third-party network named by ``spec``.

    Parameters
    ----------
    spec : str
        ``"torchvision:NAME"`` (a ``torchvision.models.segmentation`` builder, without its
        auxiliary head), ``"smp:ARCH[:ENCODER]"`` (a segmentation_models_pytorch
        architecture and encoder), ``"timm:NAME"`` (a timm classifier) or
        ``"package.module:factory"`` (any importable module; ``factory(num_classes=...)``
        is called, or ``factory()`` when it takes no ``num_classes``; a name in
        `SOURCES` is never read as a module).
    num_classes : int
        Output classes (channels of the logits).

    Returns
    -------
    torch.nn.Module
        The network with random weights; no file is downloaded.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"spec must be 'SOURCE:NAME' with SOURCE one of {sorted(SOURCES)}, or "
                         f"'package.module:factory'; got {spec!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    source, *parts = spec.split(":")
    if not all(parts):
        raise ValueError(f"spec: {spec!r} has an empty part")
    if source in SOURCES:
        return SOURCES[source](parts, num_classes)
    if len(parts) == 1 and all(p.isidentifier() for p in source.split(".")) and parts[0].isidentifier():
        return _factory(source, parts[0], num_classes)
    raise ValueError(f"spec: source {source!r} is not one of {sorted(SOURCES)}, and {spec!r} is not "
                     f"'package.module:factory'")
