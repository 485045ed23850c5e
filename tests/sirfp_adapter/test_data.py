"""Built-in data: the synthetic generator's determinism and content, the folder loader, the loaders."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
from scipy import ndimage  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from sirfp_adapter.demo.data import (  # noqa: E402
    CATALOGUE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    FolderSegmentation,
    SyntheticSegmentation,
    make_loaders,
)


def digest(sample: tuple[torch.Tensor, torch.Tensor]) -> str:
    image, label = sample
    return hashlib.sha256(image.numpy().tobytes() + label.numpy().tobytes()).hexdigest()


# ----------------------------------------------------------------------------- synthetic: form


def test_shapes_dtypes_and_label_range():
    ds = SyntheticSegmentation(4, size=(48, 80))
    assert len(ds) == 4
    for image, label in ds:
        assert image.shape == (3, 48, 80) and image.dtype == torch.float32
        assert label.shape == (48, 80) and label.dtype == torch.int64
        assert torch.isfinite(image).all()
        assert 0 <= int(label.min()) and int(label.max()) < ds.n_classes


@pytest.mark.parametrize("n_classes", [2, 3, 16])
def test_n_classes_bounds_the_labels_and_names_the_classes(n_classes):
    ds = SyntheticSegmentation(24, n_classes=n_classes, size=(64, 64))
    labels = torch.stack([ds[i][1] for i in range(len(ds))])
    assert int(labels.max()) < n_classes and int(labels.min()) >= 0
    assert len(ds.class_names) == n_classes and ds.class_names[0] == "background"
    assert len(set(ds.class_names)) == n_classes


def test_class_names_follow_the_catalogue():
    ds = SyntheticSegmentation(1)
    assert ds.class_names[:3] == ("background", "striped disc", "checkered disc")
    assert len(set(CATALOGUE)) == len(CATALOGUE) == 15
    shapes = {s for s, _ in CATALOGUE[:7]}
    textures = {t for _, t in CATALOGUE[:7]}
    assert shapes == {"disc", "rectangle", "triangle", "ring", "bar"}
    assert textures == {"stripes", "checker", "dots"}


THIN = CATALOGUE[:2] + (("line", "plain"),)


def test_foreground_chooses_the_classes_and_lines_are_thin():
    ds = SyntheticSegmentation(40, foreground=THIN, size=(64, 64), objects=(2, 4))
    assert ds.n_classes == 4 and ds.foreground == THIN
    assert ds.class_names == ("background", "striped disc", "checkered disc", "plain line")
    line = np.stack([ds.render(i)[1] == 3 for i in range(len(ds))])
    assert line.sum() > 200  # lines are drawn ...
    # ... and are at most 2.5 pixels wide: a 3x3 erosion (every 8-neighbour a line pixel too) leaves
    # a handful of pixels at most, where the stroke crosses the pixel grid diagonally
    inner = line[:, 1:-1, 1:-1].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= line[:, 1 + dy:line.shape[1] - 1 + dy, 1 + dx:line.shape[2] - 1 + dx]
    assert inner.sum() <= 0.02 * line.sum()
    # a disc of the same data set is solid: most of its pixels survive the erosion
    disc = np.stack([ds.render(i)[1] == 1 for i in range(len(ds))])
    kept = disc[:, 1:-1, 1:-1].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            kept &= disc[:, 1 + dy:disc.shape[1] - 1 + dy, 1 + dx:disc.shape[2] - 1 + dx]
    assert kept.sum() > 0.5 * disc.sum()


def test_default_foreground_is_the_catalogue_prefix():
    assert SyntheticSegmentation(1, n_classes=5).foreground == CATALOGUE[:4]
    a = SyntheticSegmentation(3, n_classes=4, size=(32, 32))
    b = SyntheticSegmentation(3, foreground=CATALOGUE[:3], size=(32, 32))
    assert all(torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1]) for i in range(3))


def test_every_class_appears_in_a_few_dozen_samples():
    ds = SyntheticSegmentation(32)
    seen = set()
    for i in range(len(ds)):
        seen |= set(np.unique(ds[i][1].numpy()).tolist())
    assert seen == set(range(ds.n_classes))


def test_images_are_roughly_standardised():
    ds = SyntheticSegmentation(48, size=(64, 64))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    assert torch.all(mean.abs() < 0.15), mean
    assert torch.all((std > 0.85) & (std < 1.15)), std
    image, _ = ds.render(0)
    back = x[0] * torch.tensor(ds.std)[:, None, None] + torch.tensor(ds.mean)[:, None, None]
    np.testing.assert_allclose(back.numpy(), image, atol=1e-5)


def test_negative_indices_and_out_of_range():
    ds = SyntheticSegmentation(5, size=(32, 32))
    assert digest(ds[-1]) == digest(ds[4])
    with pytest.raises(IndexError, match=re.escape("index 5 is out of range for a data set of length 5")):
        ds[5]
    with pytest.raises(TypeError, match=re.escape("index must be an int; got str")):
        ds["0"]


# ----------------------------------------------------------------------------- synthetic: determinism


def test_same_seed_and_index_give_identical_bytes_in_any_order():
    a = SyntheticSegmentation(10, seed=3, size=(64, 64))
    b = SyntheticSegmentation(10, seed=3, size=(64, 64))
    forward = [digest(a[i]) for i in range(10)]
    backward = [digest(b[i]) for i in reversed(range(10))][::-1]
    assert forward == backward
    assert digest(a[7]) == digest(a[7])
    assert len(set(forward)) == 10


def test_same_bytes_in_data_loader_workers():
    ds = SyntheticSegmentation(8, seed=1, size=(32, 32))
    images, labels = next(iter(DataLoader(ds, batch_size=8, num_workers=2)))
    for i in range(8):
        assert torch.equal(images[i], ds[i][0]) and torch.equal(labels[i], ds[i][1])


def test_splits_and_seeds_are_different_streams():
    train = {digest(SyntheticSegmentation(20, split="train", size=(32, 32))[i]) for i in range(20)}
    val = {digest(SyntheticSegmentation(20, split="val", size=(32, 32))[i]) for i in range(20)}
    test = {digest(SyntheticSegmentation(20, split="test", size=(32, 32))[i]) for i in range(20)}
    other_seed = {digest(SyntheticSegmentation(20, seed=1, size=(32, 32))[i]) for i in range(20)}
    assert len(train | val | test | other_seed) == 80


def test_length_does_not_change_the_samples():
    short, long = SyntheticSegmentation(3, size=(32, 32)), SyntheticSegmentation(300, size=(32, 32))
    assert digest(short[2]) == digest(long[2])


# ----------------------------------------------------------------------------- synthetic: content


def quantised_colours(ds: SyntheticSegmentation, n: int, levels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    bins, labels = [], []
    for i in range(n):
        image, label = ds.render(i)
        q = np.clip((image * levels).astype(np.int64), 0, levels - 1)
        bins.append((q[0] * levels + q[1]) * levels + q[2])
        labels.append(label.astype(np.int64))
    return np.concatenate([b.ravel() for b in bins]), np.concatenate([lb.ravel() for lb in labels])


def test_colour_alone_does_not_tell_the_foreground_classes_apart():
    """The best colour look-up table, fitted on train pixels, is near chance on val pixels."""
    k, levels = 8, 8
    bins, labels = quantised_colours(SyntheticSegmentation(64, split="train"), 64, levels)
    counts = np.zeros((levels**3, k))
    np.add.at(counts, (bins, labels), 1)
    # every foreground class uses colours all over the cube: its histogram overlaps every other's
    hist = counts / counts.sum(axis=0)
    overlap = np.sqrt(hist[:, :, None] * hist[:, None, :]).sum(axis=0)
    assert overlap.min() > 0.7, overlap.round(2)
    table = counts[:, 1:].argmax(axis=1) + 1          # the colour's most frequent foreground class
    vbins, vlabels = quantised_colours(SyntheticSegmentation(32, split="val"), 32, levels)
    fg = vlabels > 0
    accuracy = float(np.mean(table[vbins[fg]] == vlabels[fg]))
    assert accuracy < 0.25, accuracy      # chance: 1/7 = 0.14; a usable colour cue would be far above


def test_instance_sizes_vary_and_objects_bound_the_instances():
    ds = SyntheticSegmentation(40, size=(96, 96))
    areas = []
    for i in range(len(ds)):
        label = ds.render(i)[1]
        areas += [int(np.sum(label == c)) for c in range(1, ds.n_classes) if np.any(label == c)]
        assert np.mean(label == 0) < 0.98
    assert max(areas) > 10 * min(areas)
    one = SyntheticSegmentation(40, objects=(1, 1), size=(96, 96))
    assert max(len(np.unique(one.render(i)[1])) for i in range(len(one))) <= 2


def test_ignore_boundary_marks_a_band_along_class_edges():
    plain = SyntheticSegmentation(6, size=(64, 64))
    for width in (1, 2):
        banded = SyntheticSegmentation(6, size=(64, 64), ignore_boundary=width)
        for i in range(len(plain)):
            image0, label0 = plain.render(i)
            image1, label1 = banded.render(i)
            np.testing.assert_array_equal(image0, image1)
            window = 2 * width + 1
            band = (ndimage.minimum_filter(label0, size=window, mode="nearest")
                    != ndimage.maximum_filter(label0, size=window, mode="nearest"))
            np.testing.assert_array_equal(label1 == 255, band)
            np.testing.assert_array_equal(label1[~band], label0[~band])
    assert not any((plain[i][1] == 255).any() for i in range(len(plain)))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"length": 0}, ValueError, "length must be an int >= 1; got 0"),
    ({"split": "dev"}, ValueError, "split must be one of 'train', 'val', 'test'; got 'dev'"),
    ({"seed": -1}, ValueError, "seed must be an int >= 0; got -1"),
    ({"size": (64,)}, TypeError, "size must be a pair of positive ints (H, W); got (64,)"),
    ({"size": (0, 64)}, ValueError, "size must be a pair of positive ints (H, W); got (0, 64)"),
    ({"n_classes": 17}, ValueError, "n_classes must be an int from 2 to 16; got 17"),
    ({"objects": (3, 2)}, ValueError, "objects must be a pair of ints (low, high) with 1 <= low <= high; "
                                      "got (3, 2)"),
    ({"objects": (1.0, 2)}, TypeError, "objects must be a pair of ints (low, high) with 1 <= low <= high; "
                                       "got (1.0, 2)"),
    ({"scale": (0.1, 2.0)}, ValueError, "scale must be a pair of numbers (low, high) with "
                                        "0 < low <= high <= 1; got (0.1, 2.0)"),
    ({"period": (1.0, 4.0)}, ValueError, "period must be a pair of numbers (low, high) with "
                                         "2 <= low <= high; got (1.0, 4.0)"),
    ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0; got -0.1"),
    ({"ignore_boundary": -1}, ValueError, "ignore_boundary must be an int >= 0; got -1"),
    ({"ignore_index": 3}, ValueError, "ignore_index must not be a class index (< n_classes=8); got 3"),
    ({"foreground": ()}, ValueError, "foreground must be a non-empty sequence of distinct (shape, texture) "
                                     "pairs, shapes from ('disc', 'rectangle', 'triangle', 'ring', 'bar', 'line') "
                                     "and textures from ('stripes', 'checker', 'dots', 'plain'); got ()"),
    ({"foreground": [("line", "wavy")]}, ValueError, "got ('line', 'wavy') in foreground"),
    ({"foreground": [("disc", "dots"), ("disc", "dots")]}, ValueError, "repeats a pair"),
    ({"foreground": THIN, "n_classes": 3}, ValueError,
     "n_classes must be len(foreground) + 1 = 4 when foreground is given (or left out); got 3"),
])
def test_synthetic_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        SyntheticSegmentation(**kwargs)


# ----------------------------------------------------------------------------- folder


def write_pair(root: Path, stem: str, image: np.ndarray, label: np.ndarray, *, suffix: str = ".png",
               label_mode: str | None = None) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}{suffix}")
    lab = Image.fromarray(label)
    if label_mode == "P":
        lab = lab.convert("P")
    lab.save(root / "labels" / f"{stem}.png")


def random_pair(seed: int, h: int = 20, w: int = 30, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, k, (h, w), dtype=np.uint8)


def test_folder_round_trip(tmp_path):
    pairs = {stem: random_pair(i) for i, stem in enumerate(["b", "a", "c"])}
    for stem, (image, label) in pairs.items():
        write_pair(tmp_path, stem, image, label, label_mode="P" if stem == "c" else None)
    pairs["a"][1][0, 0] = 255                          # an ignored pixel survives
    write_pair(tmp_path, "a", *pairs["a"])
    ds = FolderSegmentation(tmp_path, n_classes=5)
    assert len(ds) == 3 and [p[0].stem for p in ds.files] == ["a", "b", "c"]
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    for i, stem in enumerate("abc"):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (3, 20, 30)
        assert y.dtype == torch.int64 and y.shape == (20, 30)
        back = (x * std + mean).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(back, pairs[stem][0] / 255.0, atol=1e-6)
        np.testing.assert_array_equal(y.numpy(), pairs[stem][1])


def test_folder_jpg_16_bit_labels_and_custom_normalisation(tmp_path):
    image, label = random_pair(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "x.jpg", quality=95)
    Image.fromarray(label.astype(np.uint16) * 300).save(tmp_path / "labels" / "x.png")
    ds = FolderSegmentation(tmp_path, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x, y = ds[0]
    assert x.shape == (3, 20, 30) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    np.testing.assert_array_equal(y.numpy(), label.astype(np.int64) * 300)


def test_folder_resize_bilinear_images_nearest_labels(tmp_path):
    image, label = random_pair(1, 20, 30)
    write_pair(tmp_path, "a", image, label)
    x, y = FolderSegmentation(tmp_path, size=(13, 41))[0]
    assert x.shape == (3, 13, 41) and y.shape == (13, 41)
    nearest = np.asarray(Image.fromarray(label).resize((41, 13), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(y.numpy(), nearest)
    bilinear = np.asarray(Image.fromarray(image).resize((41, 13), Image.Resampling.BILINEAR)) / 255.0
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    np.testing.assert_allclose((x * std + mean).permute(1, 2, 0).numpy(), bilinear, atol=1e-6)


def test_folder_transform_is_applied_last(tmp_path):
    write_pair(tmp_path, "a", *random_pair(2))
    plain = FolderSegmentation(tmp_path)[0]
    flipped = FolderSegmentation(tmp_path, transform=lambda x, y: (x.flip(-1), y.flip(-1)))[0]
    assert torch.equal(flipped[0], plain[0].flip(-1)) and torch.equal(flipped[1], plain[1].flip(-1))


def test_folder_layout_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(f"root: {missing} is not a folder")):
        FolderSegmentation(missing)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"root: {tmp_path} has no labels/ folder "
            "(expected root/images/*.png|jpg|jpeg and root/labels/*.png)")):
        FolderSegmentation(tmp_path)
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match=re.escape(
            f"root: {tmp_path / 'images'} holds no .png, .jpg or .jpeg image")):
        FolderSegmentation(tmp_path)


def test_folder_unmatched_files_are_named(tmp_path):
    image, label = random_pair(0)
    write_pair(tmp_path, "a", image, label)
    for stem in "bcdefgh":
        Image.fromarray(image).save(tmp_path / "images" / f"{stem}.png")
    with pytest.raises(ValueError, match=re.escape(
            f"root: no label in {tmp_path / 'labels'} for 7 image(s): "
            "b.png, c.png, d.png, e.png, f.png and 2 more (labels/<stem>.png expected)")):
        FolderSegmentation(tmp_path)
    for stem in "bcdefgh":
        (tmp_path / "images" / f"{stem}.png").unlink()
    Image.fromarray(label).save(tmp_path / "labels" / "z.png")
    with pytest.raises(ValueError, match=re.escape(
            f"root: no image in {tmp_path / 'images'} for 1 label(s): z.png")):
        FolderSegmentation(tmp_path)
    (tmp_path / "labels" / "z.png").unlink()
    Image.fromarray(image).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(ValueError, match=re.escape("root: images a.jpg and a.png share a stem; keep one")):
        FolderSegmentation(tmp_path)


def test_folder_content_errors(tmp_path):
    image, label = random_pair(0)
    write_pair(tmp_path, "a", image, label)
    Image.fromarray(image).save(tmp_path / "images" / "b.png")
    Image.fromarray(image).save(tmp_path / "labels" / "b.png")             # RGB label
    Image.fromarray(image[:10]).save(tmp_path / "images" / "c.png")
    Image.fromarray(label).save(tmp_path / "labels" / "c.png")             # size mismatch
    ds = FolderSegmentation(tmp_path, n_classes=3)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'labels' / 'a.png'}: holds class index 4; "
                                                   "expected values below n_classes=3 or ignore_index=255")):
        ds[0]
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'labels' / 'b.png'}: mode 'RGB'; "
            "labels must be single-channel class-index PNGs (mode 'L', 'P', 'I' or 'I;16')")):
        ds[1]
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'images' / 'c.png'}: 30x10 but its label c.png "
                                                   "is 30x20 (width x height)")):
        ds[2]
    assert FolderSegmentation(tmp_path, n_classes=5)[0][1].max() == 4


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"size": (0, 4)}, ValueError, "size must be a pair of positive ints (H, W); got (0, 4)"),
    ({"std": (1.0, 0.0, 1.0)}, ValueError, "std must be three positive numbers (one per RGB channel); "
                                           "got (1.0, 0.0, 1.0)"),
    ({"mean": (0.5,)}, TypeError, "mean must be three numbers (one per RGB channel); got (0.5,)"),
    ({"n_classes": 0}, ValueError, "n_classes must be an int >= 1; got 0"),
    ({"transform": 3}, TypeError, "transform must be callable or None; got int"),
])
def test_folder_argument_errors(tmp_path, kwargs, error, message):
    write_pair(tmp_path, "a", *random_pair(0))
    with pytest.raises(error, match=re.escape(message)):
        FolderSegmentation(tmp_path, **kwargs)


# ----------------------------------------------------------------------------- loaders


def test_make_loaders_shuffle_by_seed_and_keep_validation_order():
    train = SyntheticSegmentation(10, size=(16, 16))
    val = SyntheticSegmentation(5, split="val", size=(16, 16))
    tl, vl = make_loaders(train, val, batch_size=4, val_batch_size=2, seed=7)
    batches = [y for _, y in tl]
    assert len(batches) == 2 and all(b.shape == (4, 16, 16) for b in batches)       # drop_last
    again = [y for _, y in make_loaders(train, val, batch_size=4, seed=7)[0]]
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    vals = torch.cat([y for _, y in vl])
    assert vals.shape == (5, 16, 16)
    assert torch.equal(vals, torch.stack([val[i][1] for i in range(5)]))
    with pytest.raises(ValueError, match=re.escape("batch_size must be an int >= 1; got 0")):
        make_loaders(train, val, batch_size=0)
