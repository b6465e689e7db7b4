"""Tiny torch models and generated data for the torch_adapter tests (CPU, a few ms each)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread():
    """Run the tiny models on one thread: intra-op threads only cost time at these sizes
    (several times slower on a busy 2-core machine). Imported by the test modules."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(sizes=(6, 8, 5, 3), *, bias=True, activation=nn.ReLU, dtype=torch.float32, seed=0) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(n_in, n_out, bias=bias))
    return nn.Sequential(*layers).to(dtype)


def small_cnn(*, in_channels=1, classes=3, dtype=torch.float32, seed=0) -> nn.Sequential:
    """Two 3x3 convolutions, global average pooling, a linear head; input (in_channels, 8, 8)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    ).to(dtype)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN plus an identity or 1x1-conv-BN shortcut."""

    def __init__(self, n_in: int, n_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(n_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or n_in != n_out:
            self.shortcut = nn.Sequential(nn.Conv2d(n_in, n_out, 1, stride=stride, bias=False), nn.BatchNorm2d(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem, an identity block, a downsampling block with a 1x1 shortcut, a linear head.

    Input (3, 8, 8). BatchNorm running statistics are randomised so that eval mode differs
    from train mode and a forgotten restore shows up.
    """

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.layer1 = BasicBlock(4, 4)
        self.layer2 = BasicBlock(4, 6, stride=2)
        self.head = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.stem(x)))
        out = self.layer2(self.layer1(out))
        return self.head(out.mean(dim=(2, 3)))


def small_resnet(*, classes=4, dtype=torch.float32, seed=0) -> SmallResNet:
    torch.manual_seed(seed)
    model = SmallResNet(classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.to(dtype)


def batches(input_shape, classes, *, n_batches=2, batch_size=5, dtype=torch.float32, seed=1):
    """Generated (inputs, integer labels) pairs."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn((batch_size, *input_shape), generator=generator, dtype=dtype),
         torch.randint(0, classes, (batch_size,), generator=generator))
        for _ in range(n_batches)
    ]


#: name -> (constructor, input shape, classes)
MODELS = {
    "mlp": (lambda **kw: mlp(**kw), (6,), 3),
    "cnn": (lambda **kw: small_cnn(**kw), (1, 8, 8), 3),
    "resnet": (lambda **kw: small_resnet(**kw), (3, 8, 8), 4),
}
