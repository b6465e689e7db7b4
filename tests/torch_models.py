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


def random_mask(layout, density=0.3, seed=0):
    """A flat bool mask keeping round(density * D) elements drawn by a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(layout), dtype=torch.bool)
    mask[torch.randperm(len(layout), generator=generator)[: round(density * len(layout))]] = True
    return mask


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


# ---------------------------------------------------------------------------- zoo parts
# torchvision's wheels on PyPI are built against the CUDA build of torch and do not import
# beside the CPU build used here, so the parts of its models that matter to pruning are
# rebuilt below: attention (nn.MultiheadAttention with its raw in_proj_weight), a ViT's
# patch embedding, class token and position embedding, depthwise and grouped convolutions,
# Hardswish, squeeze-and-excitation with Hardsigmoid, and tied embedding / output weights.


class TransformerClassifier(nn.Module):
    """Token features -> Linear -> one nn.TransformerEncoderLayer -> mean -> Linear head.

    Input (seq, features). ``batch_first`` and no dropout, so train and eval agree.
    """

    def __init__(self, features: int = 6, width: int = 8, heads: int = 2, classes: int = 3):
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.block = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                                batch_first=True)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(x)).mean(dim=1))


def transformer_classifier(*, dtype=torch.float32, seed=0) -> TransformerClassifier:
    torch.manual_seed(seed)
    return TransformerClassifier().to(dtype)


class TinyViT(nn.Module):
    """A vision transformer in small: 4x4 patches of a (3, 8, 8) image embedded by a strided
    convolution, a class token and a learnt position embedding (raw Parameters), two encoder
    layers, LayerNorm and a linear head on the class token."""

    def __init__(self, width: int = 8, heads: int = 2, layers: int = 2, classes: int = 4):
        super().__init__()
        self.patch = nn.Conv2d(3, width, kernel_size=4, stride=4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, 5, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def tiny_vit(*, dtype=torch.float32, seed=0) -> TinyViT:
    torch.manual_seed(seed)
    return TinyViT().to(dtype)


class SqueezeExcitation(nn.Module):
    """MobileNetV3's SE block: pool, 1x1 conv down, ReLU, 1x1 conv up, Hardsigmoid, scale."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.scale = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.scale(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * weights


class MobileBlockNet(nn.Module):
    """MobileNetV3 / EfficientNet parts: stem, depthwise 3x3, SE, grouped 1x1, Hardswish,
    BatchNorm, linear head. Input (3, 8, 8)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.se = SqueezeExcitation(8, 4)
        self.grouped = nn.Conv2d(8, 12, 1, groups=2, bias=False)
        self.bn3 = nn.BatchNorm2d(12)
        self.act = nn.Hardswish()
        self.head = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.stem(x)))
        x = self.se(self.act(self.bn2(self.depthwise(x))))
        x = self.act(self.bn3(self.grouped(x)))
        return self.head(x.mean(dim=(2, 3)))


def mobile_block_net(*, dtype=torch.float32, seed=0) -> MobileBlockNet:
    torch.manual_seed(seed)
    return MobileBlockNet().to(dtype)


class TiedLanguageModel(nn.Module):
    """Token ids -> Embedding -> Linear -> ReLU -> output layer whose weight IS the embedding's.

    Input (seq,) integer ids below ``vocabulary``; output (seq, vocabulary) logits.
    """

    def __init__(self, vocabulary: int = 11, width: int = 6):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, vocabulary, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.embed(ids))))


def tied_language_model(*, seed=0) -> TiedLanguageModel:
    torch.manual_seed(seed)
    return TiedLanguageModel()


class SharedLinearNet(nn.Module):
    """Two Linear modules that share one weight tensor, and one Linear called twice."""

    def __init__(self, width: int = 5, classes: int = 3):
        super().__init__()
        self.first = nn.Linear(width, width)
        self.second = nn.Linear(width, width)
        self.second.weight = self.first.weight
        self.twice = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.second(torch.relu(self.first(x))))
        x = torch.relu(self.twice(torch.relu(self.twice(x))))
        return self.head(x)


def shared_linear_net(*, seed=0) -> SharedLinearNet:
    torch.manual_seed(seed)
    return SharedLinearNet()


def token_batches(vocabulary=11, *, n_batches=2, length=7, seed=1):
    """(ids, next ids) pairs for :class:`TiedLanguageModel`."""
    generator = torch.Generator().manual_seed(seed)
    return [(ids[:-1], ids[1:]) for ids in
            (torch.randint(0, vocabulary, (length + 1,), generator=generator) for _ in range(n_batches))]


ZOO = {
    "transformer": (transformer_classifier, (4, 6), 3),
    "vit": (tiny_vit, (3, 8, 8), 4),
    "mobile": (mobile_block_net, (3, 8, 8), 4),
    "shared": (shared_linear_net, (5,), 3),
}
