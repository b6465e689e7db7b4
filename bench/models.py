"""Networks for the real-score benchmark, built in code (no torchvision), at initialisation.

* :func:`vgg16` - VGG-16 with batch norm for 32x32 inputs (CIFAR layout: 13 3x3 convolutions,
  five max-pools, global average pooling, one linear layer), 14.7M prunable weights.
* :func:`resnet18` - ResNet-18 for 32x32 inputs (3x3 stem, no max-pool, basic blocks
  [2, 2, 2, 2]), 11.2M prunable weights.
* :func:`resnet50` - ResNet-50 for 224x224 inputs (7x7 stem, max-pool, bottleneck blocks
  [3, 4, 6, 3], 1000 classes), 25.5M prunable weights.
* :func:`resnet20` - ResNet-20 for 32x32 inputs (He et al. 2016's CIFAR network: 16, 32, 64
  channels, three stages of three basic blocks, 1x1 convolution shortcuts where the shape
  changes), 0.27M prunable weights.
* :func:`lenet300` - LeNet-300-100 for 28x28 inputs (fully connected 784-300-100-10, ReLU),
  0.27M prunable weights.

``width`` scales every channel count (``width=1/16`` gives tiny versions for tests).
Initialisation as torchvision does it: Kaiming-normal convolutions (fan_out, ReLU), batch
norm weight 1 and bias 0, PyTorch's default for linear layers; ``seed`` fixes it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["vgg16", "resnet18", "resnet50", "resnet20", "lenet300", "MODELS", "build"]

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _init(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class VGG(nn.Module):
    def __init__(self, layout=VGG16_LAYOUT, classes: int = 10, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = _ch(item, width)
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, n_in: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or n_in != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(n_in, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, n_in: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(n_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or n_in != out:
            self.shortcut = nn.Sequential(nn.Conv2d(n_in, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, counts, *, classes: int, width: float = 1.0, imagenet_stem: bool = False):
        super().__init__()
        stem = _ch(64, width)
        if imagenet_stem:
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem),
                                      nn.ReLU(inplace=True))
        channels = stem
        stages = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
            planes = _ch(planes, width)
            blocks = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(channels, planes, stride))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def vgg16(*, classes: int = 10, width: float = 1.0, seed: int = 0) -> nn.Module:
    """VGG-16 (batch norm) for 3x32x32 inputs."""
    torch.manual_seed(seed)
    return _init(VGG(VGG16_LAYOUT, classes, width))


def resnet18(*, classes: int = 10, width: float = 1.0, seed: int = 0) -> nn.Module:
    """ResNet-18 for 3x32x32 inputs (CIFAR stem)."""
    torch.manual_seed(seed)
    return _init(ResNet(BasicBlock, (2, 2, 2, 2), classes=classes, width=width))


def resnet50(*, classes: int = 1000, width: float = 1.0, seed: int = 0) -> nn.Module:
    """ResNet-50 for 3x224x224 inputs (ImageNet stem)."""
    torch.manual_seed(seed)
    return _init(ResNet(Bottleneck, (3, 4, 6, 3), classes=classes, width=width, imagenet_stem=True))


class CifarResNet(nn.Module):
    """ResNet-6n+2 for 32x32 inputs: a 3x3 stem and three stages of n basic blocks."""

    def __init__(self, blocks: int, *, classes: int, width: float = 1.0):
        super().__init__()
        channels = _ch(16, width)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True))
        stages = []
        for i, planes in enumerate((16, 32, 64)):
            planes = _ch(planes, width)
            stage = []
            for j in range(blocks):
                stage.append(BasicBlock(channels, planes, 2 if i > 0 and j == 0 else 1))
                channels = planes
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet20(*, classes: int = 10, width: float = 1.0, seed: int = 0) -> nn.Module:
    """ResNet-20 for 3x32x32 inputs."""
    torch.manual_seed(seed)
    return _init(CifarResNet(3, classes=classes, width=width))


def lenet300(*, classes: int = 10, width: float = 1.0, seed: int = 0) -> nn.Module:
    """LeNet-300-100 for 1x28x28 inputs (flattened), PyTorch's default linear initialisation."""
    torch.manual_seed(seed)
    hidden = (_ch(300, width), _ch(100, width))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                         nn.ReLU(), nn.Linear(hidden[1], classes))


#: name -> (builder, input shape, number of classes)
MODELS = {
    "vgg16": (vgg16, (3, 32, 32), 10),
    "resnet18": (resnet18, (3, 32, 32), 10),
    "resnet50": (resnet50, (3, 224, 224), 1000),
    "resnet20": (resnet20, (3, 32, 32), 10),
    "lenet300": (lenet300, (1, 28, 28), 10),
}


def build(name: str, *, width: float = 1.0, seed: int = 0):
    """``(model, input_shape, classes)`` for one of :data:`MODELS`."""
    builder, shape, classes = MODELS[name]
    return builder(classes=classes, width=width, seed=seed), shape, classes
