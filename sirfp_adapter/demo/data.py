"""Built-in segmentation data: a synthetic set generated on the fly, and a folder loader.

`SyntheticSegmentation` draws images of textured shapes on a textured background,
deterministically from ``(seed, split, index)``: the same index gives the same bytes in
any process or data-loader worker, and the ``"train"``, ``"val"`` and ``"test"`` splits
come from different seed streams. `FolderSegmentation` reads a user's data set, a folder
of image / label-PNG pairs. Both return ``(image, label)``: a ``float32`` tensor
``(3, H, W)`` normalised to roughly zero mean and unit standard deviation, and an
``int64`` tensor ``(H, W)`` of class indices in which ``ignore_index`` (255) marks
pixels that metrics and losses skip. `make_loaders` wraps a train and a validation set
in data loaders.

The synthetic images
--------------------
Class 0 is the background: a blocky random texture (square blocks 4 to 16 pixels wide,
each a random perturbation of one random base colour; no blur) covering the image.
Each foreground class is one *combination* of a shape and a texture:

* shapes: disc, rectangle (aspect 0.5 to 1), triangle (equilateral), ring (a disc with a
  hole showing what lies underneath) and bar (elongated rectangle), and a thin-structure
  shape, line (a gently curved stroke 1 to 2.5 pixels wide, whatever the image size: the
  kind of object, like a pole or a wire, that a network which blurs its feature maps
  loses first);
* textures: stripes, checker and dots, each at a random orientation, period (``period``,
  4 to 9 pixels by default, whatever the image size) and phase; and plain (one colour).

The 15 textured combinations are listed in `CATALOGUE`; by default class ``k >= 1`` is
``CATALOGUE[k - 1]``, ordered so that the default 7 foreground classes contain shapes
that share a texture and textures that share a shape: neither the shape nor the texture
alone names the class. ``foreground=`` chooses any other list of (shape, texture)
pairs, for example one with a plain line as a thin-structure class. Every instance
paints its texture with two colours drawn uniformly from the RGB cube (at least 0.4
apart, so the texture is visible), whatever its class, and the
background's colours come from the same cube: a pixel's colour says nothing about its
class, and a classifier has to look at the texture and at the outline around it.

An image holds between ``objects[0]`` and ``objects[1]`` instances of uniformly drawn
foreground classes, each rotated at random, centred anywhere in the image (so some are
cut by the border), with a size (the radius of the circle around it) drawn log-uniformly
from ``scale`` times the shorter side and enlarged by a fixed factor for the slimmer
shapes (1.09 ring to 1.29 bar, halving the spread of the shapes' mean areas). Later
instances cover earlier ones (occlusion). With the defaults about 58 % of the pixels
are background and each foreground class holds 4 to 7 %.
Gaussian noise of standard deviation ``noise`` is added to every pixel and channel,
and the image is normalised with the fixed `SYNTHETIC_MEAN` and `SYNTHETIC_STD`.

Edges are hard (no anti-aliasing), so every pixel has one true class and the generator
itself never writes ``ignore_index``. ``ignore_boundary=w > 0`` marks every pixel that
has a pixel of another class within ``w`` pixels (Chebyshev distance) as
``ignore_index``, a band of ``2w`` pixels along every class edge, for users who want to
score interiors only.

Generation is vectorised with numpy on each instance's bounding box (no per-pixel Python
loop): about a millisecond per 128 x 128 sample on one CPU core.

The folder layout
-----------------
::

    root/
        images/  a.png  b.jpg  c.jpeg ...   RGB (any mode PIL converts to RGB)
        labels/  a.png  b.png  c.png  ...   single channel: one class index per pixel

Images and labels are matched by file stem (``images/a.jpg`` goes with ``labels/a.png``);
every image needs exactly one label and every label one image. Label PNGs are 8- or
16-bit grey (mode ``L``, ``I;16``, ``I``) or palette (mode ``P``: the palette indices
are the classes); pixels equal to ``ignore_index`` are skipped by the metrics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "CATALOGUE",
    "SHAPES",
    "TEXTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SYNTHETIC_MEAN",
    "SYNTHETIC_STD",
    "FolderSegmentation",
    "SyntheticSegmentation",
    "make_loaders",
]

Split = Literal["train", "val", "test"]
Sample = tuple[Tensor, Tensor]
JointTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]

#: Foreground classes as (shape, texture); class k >= 1 is CATALOGUE[k - 1].
CATALOGUE: tuple[tuple[str, str], ...] = (
    ("disc", "stripes"),
    ("disc", "checker"),
    ("rectangle", "stripes"),
    ("rectangle", "dots"),
    ("triangle", "checker"),
    ("ring", "dots"),
    ("bar", "stripes"),
    ("triangle", "stripes"),
    ("ring", "checker"),
    ("bar", "dots"),
    ("disc", "dots"),
    ("rectangle", "checker"),
    ("triangle", "dots"),
    ("ring", "stripes"),
    ("bar", "checker"),
)
_ADJECTIVES = {"stripes": "striped", "checker": "checkered", "dots": "dotted", "plain": "plain"}
SHAPES: tuple[str, ...] = ("disc", "rectangle", "triangle", "ring", "bar", "line")
TEXTURES: tuple[str, ...] = tuple(_ADJECTIVES)
_SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}

#: Per-channel statistics of the default synthetic images (measured over 512 samples, rounded).
SYNTHETIC_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SYNTHETIC_STD: tuple[float, float, float] = (0.31, 0.31, 0.31)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_MIN_CONTRAST = 0.4
#: Radius multipliers, (pi / area of a unit-radius shape) ** 0.25: halves the spread of the shapes' areas.
_SHAPE_SCALE = {"disc": 1.0, "ring": 1.09, "rectangle": 1.13, "triangle": 1.25, "bar": 1.29, "line": 1.29}
#: Half-width range of a line, in pixels (1 to 2.5 pixels wide whatever the image size).
_LINE_HALF_WIDTH = (0.5, 1.25)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LABEL_MODES = ("L", "P", "I", "I;16")


# ----------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_size(size: object, name: str = "size") -> tuple[int, int]:
    msg = f"{name} must be a pair of positive ints (H, W); got {size!r}"
    if not (isinstance(size, tuple | list) and len(size) == 2 and all(_is_int(s) for s in size)):
        raise TypeError(msg)
    if min(size) < 1:
        raise ValueError(msg)
    return (int(size[0]), int(size[1]))


def _check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def _check_pair(value: object, name: str, *, integer: bool, bounds: str,
                ok: Callable[[float, float], bool]) -> tuple[float, float]:
    """A (low, high) pair of ints or numbers; ``bounds`` words the condition ``ok(low, high)``."""
    kind = "ints" if integer else "numbers"
    msg = f"{name} must be a pair of {kind} (low, high) with {bounds}; got {value!r}"

    def ok_type(v: object) -> bool:
        return _is_int(v) if integer else isinstance(v, int | float | np.number) and not isinstance(v, bool)

    if not (isinstance(value, tuple | list) and len(value) == 2 and all(ok_type(v) for v in value)):
        raise TypeError(msg)
    if not ok(value[0], value[1]):
        raise ValueError(msg)
    return (value[0], value[1])


def _check_triple(value: object, name: str, *, positive: bool) -> tuple[float, float, float]:
    what = "positive numbers" if positive else "numbers"
    msg = f"{name} must be three {what} (one per RGB channel); got {value!r}"
    if not (isinstance(value, tuple | list) and len(value) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise TypeError(msg)
    if positive and min(value) <= 0:
        raise ValueError(msg)
    return (float(value[0]), float(value[1]), float(value[2]))


def _check_foreground(foreground: object, n_classes: object) -> tuple[tuple[str, str], ...]:
    """The foreground classes from ``foreground`` or ``n_classes`` (see `SyntheticSegmentation`)."""
    if foreground is None:
        n = 8 if n_classes is None else n_classes
        if not _is_int(n) or not 2 <= n <= len(CATALOGUE) + 1:
            raise ValueError(f"n_classes must be an int from 2 to {len(CATALOGUE) + 1}; got {n_classes!r}")
        return CATALOGUE[: int(n) - 1]
    message = (f"foreground must be a non-empty sequence of distinct (shape, texture) pairs, shapes from "
               f"{SHAPES} and textures from {TEXTURES}")
    if isinstance(foreground, str | bytes) or not isinstance(foreground, Sequence) or not foreground:
        raise ValueError(f"{message}; got {foreground!r}")
    pairs = []
    for item in foreground:
        if (not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2
                or item[0] not in SHAPES or item[1] not in TEXTURES):
            raise ValueError(f"{message}; got {item!r} in foreground")
        pairs.append((str(item[0]), str(item[1])))
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"{message}; {foreground!r} repeats a pair")
    if n_classes is not None and n_classes != len(pairs) + 1:
        raise ValueError(f"n_classes must be len(foreground) + 1 = {len(pairs) + 1} when foreground is given "
                         f"(or left out); got {n_classes!r}")
    return tuple(pairs)


def _check_ignore_index(ignore_index: object) -> int:
    if not _is_int(ignore_index) or ignore_index < 0:
        raise ValueError(f"ignore_index must be a non-negative int; got {ignore_index!r}")
    return int(ignore_index)


def _normalise(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> Tensor:
    """(3, H, W) float32 in [0, 1] -> normalised tensor.

    In numpy on purpose: torch's intra-op threads cost milliseconds per image on a
    loaded CPU (data-loader workers beside a training process).
    """
    out = np.subtract(image, mean[:, None, None], dtype=np.float32)
    out /= std[:, None, None]
    return torch.from_numpy(out)


def _chebyshev_range(a: np.ndarray, radius: int, op: Callable[..., np.ndarray]) -> np.ndarray:
    """Running ``op`` (np.minimum or np.maximum) over a (2 radius + 1)^2 window, edges replicated."""
    out = a.copy()
    for axis in (0, 1):
        src = out.copy()
        n = src.shape[axis]
        for d in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - d), slice(d, n)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def _boundary_band(label: np.ndarray, width: int) -> np.ndarray:
    """Pixels with a pixel of another class within Chebyshev distance ``width``."""
    return _chebyshev_range(label, width, np.minimum) != _chebyshev_range(label, width, np.maximum)


# ----------------------------------------------------------------------------- synthetic data


class SyntheticSegmentation(Dataset[Sample]):
    """Textured shapes on a textured background, generated on the fly.

    Each foreground class is a (shape, texture) pair from `CATALOGUE`, painted with
    random colours, so a pixel cannot be classified by its colour; class 0 is the
    background. Sample ``i`` depends only on ``(seed, split, i)`` and the arguments
    below. See the module docstring for the details of the generator.

    Parameters
    ----------
    length : int
        Number of samples (``len(dataset)``).
    split : {"train", "val", "test"}
        Seed stream: the splits never share a sample for the same ``seed``.
    seed : int
        Non-negative base seed.
    size : tuple of int
        Image size ``(H, W)``.
    n_classes : int, optional
        Number of classes, background included, from 2 to ``len(CATALOGUE) + 1`` (16);
        the foreground classes are the first ``n_classes - 1`` of `CATALOGUE`. Default 8,
        or ``len(foreground) + 1`` when ``foreground`` is given.
    foreground : sequence of (str, str), optional
        The foreground classes in order, as (shape, texture) pairs from `SHAPES` and
        `TEXTURES`, distinct (e.g. ``CATALOGUE[:2] + (("line", "plain"),)`` for two
        textured discs and a thin-structure class). Default: the first ``n_classes - 1``
        entries of `CATALOGUE`.
    objects : tuple of int
        Inclusive range of the number of shape instances per image.
    scale : tuple of float
        Range of an instance's radius as a fraction of ``min(H, W)`` (log-uniform).
    period : tuple of float
        Range of the texture period in pixels (uniform), independent of the image size.
    noise : float
        Standard deviation of the additive Gaussian pixel noise (colours lie in [0, 1]).
    ignore_boundary : int
        0: every pixel is labelled. ``w > 0``: pixels within ``w`` pixels of a pixel of
        another class are labelled ``ignore_index``.
    ignore_index : int
        Label of ignored pixels (only written when ``ignore_boundary > 0``).

    Attributes
    ----------
    class_names : tuple of str
        ``("background", "striped disc", "checkered disc", ...)``.
    foreground : tuple of (str, str)
        The foreground classes' (shape, texture) pairs; class ``k >= 1`` is ``foreground[k - 1]``.
    mean, std : tuple of float
        The per-channel normalisation applied by ``__getitem__`` (`SYNTHETIC_MEAN`,
        `SYNTHETIC_STD`); ``image * std + mean`` recovers `render`'s colours.

    Examples
    --------
    >>> train = SyntheticSegmentation(2000, split="train", seed=0)
    >>> val = SyntheticSegmentation(200, split="val", seed=0)
    >>> image, label = train[0]          # (3, 128, 128) float32, (128, 128) int64
    """

    def __init__(
        self,
        length: int = 1000,
        *,
        split: Split = "train",
        seed: int = 0,
        size: tuple[int, int] = (128, 128),
        n_classes: int | None = None,
        foreground: Sequence[tuple[str, str]] | None = None,
        objects: tuple[int, int] = (4, 8),
        scale: tuple[float, float] = (0.12, 0.32),
        period: tuple[float, float] = (4.0, 9.0),
        noise: float = 0.08,
        ignore_boundary: int = 0,
        ignore_index: int = 255,
    ) -> None:
        self.length = _check_positive_int(length, "length")
        if not isinstance(split, str) or split not in _SPLITS:
            raise ValueError(f"split must be one of 'train', 'val', 'test'; got {split!r}")
        self.split = split
        self.seed = _check_positive_int(seed, "seed", minimum=0)
        self.size = _check_size(size)
        self.foreground = _check_foreground(foreground, n_classes)
        self.n_classes = len(self.foreground) + 1
        lo, hi = _check_pair(objects, "objects", integer=True, bounds="1 <= low <= high",
                             ok=lambda a, b: 1 <= a <= b)
        self.objects = (int(lo), int(hi))
        lo, hi = _check_pair(scale, "scale", integer=False, bounds="0 < low <= high <= 1",
                             ok=lambda a, b: 0 < a <= b <= 1)
        self.scale = (float(lo), float(hi))
        lo, hi = _check_pair(period, "period", integer=False, bounds="2 <= low <= high",
                             ok=lambda a, b: 2 <= a <= b < math.inf)
        self.period = (float(lo), float(hi))
        if not isinstance(noise, int | float) or isinstance(noise, bool) or not 0 <= noise < math.inf:
            raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
        self.noise = float(noise)
        self.ignore_boundary = _check_positive_int(ignore_boundary, "ignore_boundary", minimum=0)
        self.ignore_index = _check_ignore_index(ignore_index)
        if self.ignore_index < self.n_classes:
            raise ValueError(f"ignore_index must not be a class index (< n_classes={self.n_classes}); "
                             f"got {ignore_index!r}")
        self.class_names: tuple[str, ...] = ("background",) + tuple(
            f"{_ADJECTIVES[texture]} {shape}" for shape, texture in self.foreground)
        self.mean = SYNTHETIC_MEAN
        self.std = SYNTHETIC_STD
        self._mean = np.asarray(self.mean, dtype=np.float32)
        self._std = np.asarray(self.std, dtype=np.float32)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"SyntheticSegmentation(length={self.length}, split={self.split!r}, seed={self.seed}, "
                f"size={self.size}, n_classes={self.n_classes})")

    def _index(self, index: object) -> int:
        if not _is_int(index):
            raise TypeError(f"index must be an int; got {type(index).__name__}")
        i = int(index)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} is out of range for a data set of length {self.length}")
        return i % self.length

    def __getitem__(self, index: int) -> Sample:
        image, label = self.render(index)
        return _normalise(image, self._mean, self._std), torch.from_numpy(label.astype(np.int64))

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` before normalisation.

        Returns
        -------
        image : numpy.ndarray
            ``(3, H, W)`` float32, colours in [0, 1] plus the noise (not clipped).
        label : numpy.ndarray
            ``(H, W)`` uint8 class indices (``ignore_index`` in the boundary band if set).
        """
        i = self._index(index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SPLITS[self.split], i]))
        h, w = self.size
        image = self._background(rng)
        label = np.zeros((h, w), dtype=np.uint8)
        for _ in range(int(rng.integers(self.objects[0], self.objects[1] + 1))):
            self._paint(rng, image, label, int(rng.integers(1, self.n_classes)))
        if self.noise > 0:
            image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.noise)
        if self.ignore_boundary:
            label[_boundary_band(label, self.ignore_boundary)] = self.ignore_index
        return image, label

    # ------------------------------------------------------------------ drawing
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.size
        block = int(rng.integers(4, 17))
        base = rng.random(3, dtype=np.float32)
        jitter = rng.uniform(-0.3, 0.3, (3, -(-h // block), -(-w // block))).astype(np.float32)
        coarse = base[:, None, None] + jitter
        np.clip(coarse, 0.0, 1.0, out=coarse)
        return np.ascontiguousarray(coarse.repeat(block, axis=1).repeat(block, axis=2)[:, :h, :w])

    def _colours(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        while True:
            a, b = rng.random((2, 3), dtype=np.float32)
            if float(np.sum((a - b) ** 2)) >= _MIN_CONTRAST**2:
                return a, b

    def _paint(self, rng: np.random.Generator, image: np.ndarray, label: np.ndarray, cls: int) -> None:
        shape, texture = self.foreground[cls - 1]
        h, w = self.size
        side = min(h, w)
        relative = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        radius = side * _SHAPE_SCALE[shape] * relative
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        theta = rng.uniform(0, 2 * math.pi)
        period = rng.uniform(self.period[0], self.period[1])
        phi = rng.uniform(0, 2 * math.pi)
        phase = rng.uniform(0, 1, 2)
        first, second = self._colours(rng)
        shape_draw = rng.uniform(0, 1, 2)  # shape-specific proportions (a line: width and curvature)

        y0, y1 = max(0, int(cy - radius)), min(h, int(math.ceil(cy + radius)) + 1)
        x0, x1 = max(0, int(cx - radius)), min(w, int(math.ceil(cx + radius)) + 1)
        if y0 >= y1 or x0 >= x1:
            return
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5)
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + np.float32(0.5)
        dy, dx = ys - np.float32(cy), xs - np.float32(cx)
        c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        u = dx * c + dy * s
        v = dy * c - dx * s

        if shape in ("disc", "ring"):
            d2 = u * u + v * v
            mask = d2 <= radius * radius
            if shape == "ring":
                inner = radius * (0.45 + 0.2 * shape_draw[0])
                mask &= d2 >= inner * inner
        elif shape == "rectangle":
            a = radius / math.sqrt(1 + (0.5 + 0.5 * shape_draw[0]) ** 2)
            b = a * (0.5 + 0.5 * shape_draw[0])
            mask = (np.abs(u) <= a) & (np.abs(v) <= b)
        elif shape == "bar":
            b = max(radius * (0.22 + 0.13 * shape_draw[0]), 0.75 * period)
            mask = (np.abs(u) <= radius) & (np.abs(v) <= b)
        elif shape == "line":  # a parabolic arc whose sagitta is at most a quarter of its half-length
            half = _LINE_HALF_WIDTH[0] + (_LINE_HALF_WIDTH[1] - _LINE_HALF_WIDTH[0]) * shape_draw[0]
            curve = np.float32(0.25 * (2 * shape_draw[1] - 1) / radius) * u * u
            mask = (np.abs(u) <= radius) & (np.abs(v - curve) <= half)
        else:  # triangle: three half-planes at distance radius / 2 (the inradius) from the centre
            mask = u <= radius / 2
            for k in (1, 2):
                ck, sk = math.cos(2 * math.pi * k / 3), math.sin(2 * math.pi * k / 3)
                mask &= u * np.float32(ck) + v * np.float32(sk) <= radius / 2

        cp, sp = np.float32(math.cos(phi) / period), np.float32(math.sin(phi) / period)
        p = xs * cp + ys * sp + np.float32(phase[0])
        if texture == "plain":
            pattern = np.ones_like(mask)
        elif texture == "stripes":
            pattern = p - np.floor(p) < 0.5
        else:
            q = ys * cp - xs * sp + np.float32(phase[1])
            if texture == "checker":
                pattern = (np.floor(2 * p) + np.floor(2 * q)) % 2 == 0
            else:  # dots
                fp, fq = p - np.floor(p) - 0.5, q - np.floor(q) - 0.5
                pattern = fp * fp + fq * fq < 0.32**2
        colour = np.where(pattern[None], first[:, None, None], second[:, None, None])
        np.copyto(image[:, y0:y1, x0:x1], colour, where=mask[None])
        label[y0:y1, x0:x1][mask] = cls


# ----------------------------------------------------------------------------- folder data


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


class FolderSegmentation(Dataset[Sample]):
    """Image / label-PNG pairs from a folder (``root/images``, ``root/labels``).

    Images (``.png``, ``.jpg``, ``.jpeg``) and labels (``.png``) are matched by file
    stem; every image needs a label and every label an image. Labels are single-channel
    class indices (modes ``L``, ``P``, ``I``, ``I;16``). See the module docstring for
    the layout.

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``images/`` and ``labels/``.
    size : tuple of int, optional
        Resize every pair to ``(H, W)``: bilinear for images, nearest for labels.
        Default: keep each file's size (batching then needs equal sizes).
    mean, std : tuple of float
        Per-channel normalisation of the [0, 1] RGB image (default: ImageNet's).
    n_classes : int, optional
        If given, every label value must be below ``n_classes`` or equal to
        ``ignore_index``; a sample breaking this raises ``ValueError``.
    ignore_index : int
        Label value of pixels to skip.
    transform : callable, optional
        ``transform(image, label) -> (image, label)`` applied to the tensors last
        (joint augmentation).

    Attributes
    ----------
    files : list of tuple of Path
        The ``(image, label)`` paths, sorted by stem.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        size: tuple[int, int] | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        n_classes: int | None = None,
        ignore_index: int = 255,
        transform: JointTransform | None = None,
    ) -> None:
        if not isinstance(root, str | os.PathLike):
            raise TypeError(f"root must be a path (str or os.PathLike); got {type(root).__name__}")
        self.root = Path(root)
        self.size = None if size is None else _check_size(size)
        self.mean = _check_triple(mean, "mean", positive=False)
        self.std = _check_triple(std, "std", positive=True)
        self.n_classes = None if n_classes is None else _check_positive_int(n_classes, "n_classes")
        self.ignore_index = _check_ignore_index(ignore_index)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        self.transform = transform
        self._mean = np.asarray(self.mean, dtype=np.float32)
        self._std = np.asarray(self.std, dtype=np.float32)
        self.files = self._match()

    def _match(self) -> list[tuple[Path, Path]]:
        root = self.root
        if not root.is_dir():
            raise FileNotFoundError(f"root: {root} is not a folder")
        images_dir, labels_dir = root / "images", root / "labels"
        for sub in (images_dir, labels_dir):
            if not sub.is_dir():
                raise FileNotFoundError(f"root: {root} has no {sub.name}/ folder "
                                        "(expected root/images/*.png|jpg|jpeg and root/labels/*.png)")
        images: dict[str, Path] = {}
        for path in sorted(images_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
                if path.stem in images:
                    raise ValueError(f"root: images {images[path.stem].name} and {path.name} "
                                     "share a stem; keep one")
                images[path.stem] = path
        labels = {p.stem: p for p in sorted(labels_dir.iterdir())
                  if p.is_file() and p.suffix.lower() == ".png"}
        if not images:
            raise ValueError(f"root: {images_dir} holds no .png, .jpg or .jpeg image")
        missing = [images[s].name for s in sorted(images) if s not in labels]
        if missing:
            raise ValueError(f"root: no label in {labels_dir} for {len(missing)} image(s): "
                             f"{_listing(missing)} (labels/<stem>.png expected)")
        orphans = [labels[s].name for s in sorted(labels) if s not in images]
        if orphans:
            raise ValueError(f"root: no image in {images_dir} for {len(orphans)} label(s): "
                             f"{_listing(orphans)}")
        return [(images[s], labels[s]) for s in sorted(images)]

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"FolderSegmentation({str(self.root)!r}, {len(self)} pairs, size={self.size})"

    def __getitem__(self, index: int) -> Sample:
        if not _is_int(index):
            raise TypeError(f"index must be an int; got {type(index).__name__}")
        image, label = self._read(int(index))
        if self.size is not None:
            from PIL import Image

            wh = (self.size[1], self.size[0])
            image = image.resize(wh, Image.Resampling.BILINEAR)
            label = label.resize(wh, Image.Resampling.NEAREST)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        x, y = _normalise(array, self._mean, self._std), torch.from_numpy(np.asarray(label).astype(np.int64))
        if self.transform is not None:
            x, y = self.transform(x, y)
        return x, y

    def validate(self, workers: int | None = None) -> None:
        """Read every pair once, as training will, and raise on the first bad file.

        One header read and one decode per file (in ``workers`` threads, default: up to
        8): unreadable, truncated or corrupt files, images over the pixel limit (a
        decompression bomb), label modes, image/label size mismatches and label values
        are all found here, before any training. Raises ``ValueError`` naming the file.
        """
        from concurrent.futures import ThreadPoolExecutor

        n = workers if workers is not None else min(8, os.cpu_count() or 1, max(1, len(self.files)))
        pool = ThreadPoolExecutor(max_workers=n)
        try:
            for _ in pool.map(self._read, range(len(self.files))):
                pass
        finally:  # on the first bad file, files not yet started are not read
            pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, index: int) -> tuple[object, object]:
        """The checked pair ``index``: an RGB ``PIL.Image`` and a label ``PIL.Image`` (its
        values checked against ``n_classes``); every problem a ``ValueError`` naming the file."""
        image_path, label_path = self.files[index]
        image = _decode(image_path, convert="RGB")
        label = _decode(label_path, convert=None)
        if label.mode not in _LABEL_MODES:
            raise ValueError(f"{label_path}: mode {label.mode!r}; labels must be single-channel class-index "
                             "PNGs (mode 'L', 'P', 'I' or 'I;16')")
        if image.size != label.size:
            raise ValueError(f"{image_path}: {image.size[0]}x{image.size[1]} but its label {label_path.name} is "
                             f"{label.size[0]}x{label.size[1]} (width x height)")
        if self.n_classes is not None:
            classes = np.asarray(label)
            bad = classes[(classes >= self.n_classes) & (classes != self.ignore_index)]
            low = int(classes.min())
            if bad.size or low < 0:
                value = int(bad.max()) if bad.size else low
                raise ValueError(f"{label_path}: holds class index {value}; expected values below "
                                 f"n_classes={self.n_classes} or ignore_index={self.ignore_index}")
        return image, label


def _decode(path: Path, convert: str | None) -> object:
    """Open (header: format and pixel count checked first) and decode one image file."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below instead
            with Image.open(path, formats=("PNG", "JPEG")) as im:  # what the folder layout admits
                w, h = im.size
                if limit is not None and w * h > limit:
                    raise _TooLarge(w, h)
                im.load()
                return im.convert(convert) if convert is not None and im.mode != convert else im.copy()
    except _TooLarge as big:
        raise ValueError(f"{path}: {big.w}x{big.h} = {big.w * big.h} pixels, more than "
                         f"PIL.Image.MAX_IMAGE_PIXELS = {limit}; refused as a possible decompression bomb") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: more than PIL.Image.MAX_IMAGE_PIXELS = {limit} pixels; refused as a possible "
                         "decompression bomb") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image PIL can read (unknown format or a damaged header)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated, corrupt, bad chunks
        raise ValueError(f"{path}: cannot be decoded ({type(exc).__name__}: {exc})") from None


class _TooLarge(Exception):
    def __init__(self, w: int, h: int) -> None:
        super().__init__(w, h)
        self.w, self.h = w, h


# ----------------------------------------------------------------------------- loaders


def make_loaders(
    train: Dataset[Sample],
    val: Dataset[Sample],
    *,
    batch_size: int = 8,
    val_batch_size: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = True,
) -> tuple[DataLoader[Sample], DataLoader[Sample]]:
    """A shuffled training loader and an ordered validation loader.

    Parameters
    ----------
    train, val : Dataset
        E.g. two `SyntheticSegmentation` splits or two `FolderSegmentation` folders.
    batch_size : int
        Training batch size.
    val_batch_size : int, optional
        Validation batch size (default: ``batch_size``).
    num_workers : int
        Worker processes of each loader (0: load in the main process).
    seed : int
        Seeds the training shuffle, so epochs are reproducible.
    drop_last : bool
        Drop the training set's last incomplete batch (BatchNorm dislikes tiny batches);
        the validation loader keeps every sample.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    if val_batch_size is None:
        val_batch_size = batch_size
    val_batch_size = _check_positive_int(val_batch_size, "val_batch_size")
    num_workers = _check_positive_int(num_workers, "num_workers", minimum=0)
    seed = _check_positive_int(seed, "seed", minimum=0)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                              drop_last=drop_last, generator=generator, persistent_workers=num_workers > 0)
    val_loader = DataLoader(val, batch_size=val_batch_size, shuffle=False, num_workers=num_workers,
                            persistent_workers=num_workers > 0)
    return train_loader, val_loader
