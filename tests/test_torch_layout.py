"""Layout: which parameters are prunable and how they map to the flat vector."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from torch_adapter import Layout, LeftOutWeightsWarning  # noqa: E402
from torch_models import mlp, small_cnn, small_resnet, single_torch_thread  # noqa: E402,F401


def test_default_selects_conv_and_linear_weights_in_module_order():
    model = small_resnet()
    layout = Layout.from_model(model)
    assert layout.names == (
        "stem.weight",
        "layer1.conv1.weight",
        "layer1.conv2.weight",
        "layer2.conv1.weight",
        "layer2.conv2.weight",
        "layer2.shortcut.0.weight",
        "head.weight",
    )
    params = dict(model.named_parameters())
    assert layout.shapes == tuple(tuple(params[n].shape) for n in layout.names)
    assert len(layout) == sum(params[n].numel() for n in layout.names)
    assert layout.offsets[0] == 0
    assert all(a + int(np.prod(s)) == b for a, s, b in zip(layout.offsets, layout.shapes, layout.offsets[1:]))
    assert layout.n_layers == 7
    assert layout.layer_names[5] == "layer2.shortcut.0"


def test_include_bias_and_exclude():
    model = small_cnn()
    with_bias = Layout.from_model(model, include_bias=True)
    assert with_bias.names == ("0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias")
    # weight and bias of one module share a layer (group)
    assert [e.layer for e in with_bias.entries] == [0, 0, 1, 1, 2, 2]
    assert Layout.from_model(model, exclude=("6",)).names == ("0.weight", "2.weight")
    resnet = small_resnet()
    names = Layout.from_model(resnet, exclude=["layer2"]).names
    assert not any(n.startswith("layer2.") for n in names) and "layer1.conv1.weight" in names
    with pytest.raises(ValueError, match="nonexistent"):
        Layout.from_model(model, exclude=("nonexistent",))
    with pytest.raises(ValueError, match="no prunable"):
        Layout.from_model(nn.Sequential(nn.ReLU()))


def test_conv1d_conv3d_and_custom_types():
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Conv3d(1, 2, 2), nn.LayerNorm(4), nn.Linear(4, 2))
    assert Layout.from_model(model).names == ("0.weight", "1.weight", "3.weight")
    with pytest.warns(LeftOutWeightsWarning, match=r"3 weight-like parameters.*'0.weight' \(3, 2, 3\)"):
        assert Layout.from_model(model, types=(nn.LayerNorm,)).names == ("2.weight",)


def test_flatten_split_roundtrip_and_group_index():
    model = small_cnn()
    layout = Layout.from_model(model, include_bias=True)
    values = layout.values(model)
    flat = layout.flatten(values)
    assert flat.shape == (len(layout),)
    for part, value in zip(layout.split(flat), values):
        assert torch.equal(part, value)
    by_name = layout.to_dict(flat)
    assert torch.equal(layout.flatten(by_name), flat)
    assert torch.equal(by_name["2.bias"], model[2].bias)
    groups = layout.group_index()
    assert groups.shape == (len(layout),) and groups.dtype == np.int64
    assert np.array_equal(np.bincount(groups), layout.layer_sizes)
    for entry in layout.entries:
        assert np.all(groups[entry.offset:entry.stop] == entry.layer)
    # numpy input to split, and errors
    assert layout.split(np.arange(len(layout)))[1].shape == model[0].bias.shape
    with pytest.raises(ValueError, match="length"):
        layout.split(flat[:-1])
    with pytest.raises(ValueError, match="elements"):
        layout.flatten([v[:1] for v in values])


def test_layout_fits_copies_and_refuses_other_models():
    model = mlp()
    layout = Layout.from_model(model)
    assert Layout.from_model(copy.deepcopy(model)) == layout
    layout.modules(copy.deepcopy(model))
    with pytest.raises(ValueError, match="shape"):
        layout.modules(mlp(sizes=(6, 9, 5, 3)))
    with pytest.raises(ValueError, match="no module"):
        layout.modules(small_resnet())


def test_pruned_model_keeps_names_and_gives_effective_values():
    model = mlp()
    layout = Layout.from_model(model)
    mask = torch.rand(model[0].weight.shape) > 0.5
    prune.custom_from_mask(model[0], "weight", mask)
    assert Layout.from_model(model) == layout
    assert torch.equal(layout.values(model)[0], model[0].weight_orig * mask)
    assert layout.trainable(model)[0] is model[0].weight_orig
