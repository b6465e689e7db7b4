"""Networks of bench/train.py, built in code at initialisation for a given input shape.

* ``lenet300``: LeNet-300-100 (LeCun et al., 1998): flatten, fc1 300, ReLU, fc2 100, ReLU,
  fc3 classes; 266,200 weights on 28x28 inputs.
* ``lenet5``: LeNet-5-Caffe, the network of the SNIP and FreezeNet papers: conv1 20@5x5,
  ReLU, max-pool 2, conv2 50@5x5, ReLU, max-pool 2, fc3 500, ReLU, fc4 classes (no padding);
  430,500 weights on 28x28 inputs. Needs inputs of at least 16x16.
* ``mlp20``: a 20-layer ReLU MLP, flatten -> 100 x 19 -> classes (fc1 .. fc20), where
  layer collapse matters: plain SNIP prunes whole middle layers away at low density;
  259,400 weights on 28x28 inputs.

Every weight is drawn Kaiming-normal (fan-in, ReLU gain, He et al. 2015) and every bias is
zero, from ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the caller's
global random state is left alone): a seed gives the same network every time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["NETWORKS", "build", "lenet300", "lenet5", "mlp20"]


def _linear_chain(sizes: Sequence[int]) -> "OrderedDict[str, nn.Module]":
    """``fc1, relu1, fc2, ..., fc{n}``: Linear layers between consecutive sizes, ReLU between them."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        if i > 1:
            layers[f"relu{i - 1}"] = nn.ReLU()
        layers[f"fc{i}"] = nn.Linear(n_in, n_out)
    return layers


def lenet300(input_shape: Sequence[int], classes: int) -> nn.Sequential:
    """LeNet-300-100 for inputs of any shape (flattened)."""
    return nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                      *_linear_chain([math.prod(input_shape), 300, 100, classes]).items()]))


def mlp20(input_shape: Sequence[int], classes: int) -> nn.Sequential:
    """20 Linear layers, 100 units wide, ReLU between them."""
    return nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                      *_linear_chain([math.prod(input_shape)] + [100] * 19 + [classes]).items()]))


def lenet5(input_shape: Sequence[int], classes: int) -> nn.Sequential:
    """LeNet-5-Caffe for (C, H, W) inputs with H, W >= 16."""
    channels, height, width = _image_shape(input_shape, "lenet5")
    if min(height, width) < 16:
        raise ValueError(f"lenet5 needs images of at least 16x16 (two 5x5 convolutions and two 2x2 pools), "
                         f"got input_shape {tuple(input_shape)}")
    side = [((n - 4) // 2 - 4) // 2 for n in (height, width)]
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(channels, 20, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(20, 50, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc3", nn.Linear(50 * side[0] * side[1], 500)), ("relu3", nn.ReLU()),
        ("fc4", nn.Linear(500, classes)),
    ]))


def _image_shape(input_shape: Sequence[int], network: str) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in input_shape)
    if len(shape) != 3:
        raise ValueError(f"{network} needs (channels, height, width) inputs, got input_shape {shape}")
    return shape  # type: ignore[return-value]


#: name -> builder(input_shape, classes) (uninitialised layers; :func:`build` initialises)
NETWORKS: dict[str, Callable[[Sequence[int], int], nn.Module]] = {
    "lenet300": lenet300,
    "lenet5": lenet5,
    "mlp20": mlp20,
}


def build(name: str, input_shape: Sequence[int], classes: int, *, seed: int) -> nn.Module:
    """One of :data:`NETWORKS`, Kaiming-normal weights and zero biases drawn from ``seed``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose from {sorted(NETWORKS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NETWORKS[name](input_shape, classes)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return model
