"""Masks into the model: mask parametrization, FreezeNet freezing, per-layer report, layer collapse."""

import copy
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.utils import parametrize, prune  # noqa: E402

from torch_adapter import (  # noqa: E402
    current_mask,
    LayerCollapseError,
    LayerCollapseWarning,
    Layout,
    apply_mask,
    format_layer_table,
    layer_stats,
    make_permanent,
)
from torch_models import batches, random_mask, small_cnn, small_resnet, single_torch_thread  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def test_mask_mode_parametrizes_the_right_tensors():
    model = small_resnet()
    original = copy.deepcopy(model.state_dict())
    layout = Layout.from_model(model)
    mask = random_mask(layout)
    stats = apply_mask(model, mask, layout)
    modules = dict(model.named_modules())
    for entry, part in zip(layout.entries, layout.split(mask)):
        module = modules[entry.module_name]
        assert module.parametrizations.weight[0].mask.shape == entry.shape
        assert torch.equal(module.parametrizations.weight[0].mask, part)
        assert torch.equal(module.parametrizations.weight.original, original[entry.name])
        assert torch.equal(module.weight, original[entry.name] * part)
    # exactly k kept, nothing else touched
    assert sum(int(m.parametrizations.weight[0].mask.sum()) for m in modules.values()
               if parametrize.is_parametrized(m)) == int(mask.sum())
    assert sum(s.kept for s in stats) == int(mask.sum())
    for name, value in model.state_dict().items():
        if ".parametrizations." not in name:
            assert torch.equal(value, original[name]), name
    assert not parametrize.is_parametrized(model.bn) and not parametrize.is_parametrized(model.layer1.bn1)
    # pruned weights get zero gradient and stay zero after a step
    x, y = batches((3, 8, 8), 4)[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        CE(model(x), y).backward()
        optimizer.step()
    model(x)
    for entry, part in zip(layout.entries, layout.split(mask)):
        assert bool((modules[entry.module_name].weight[~part] == 0).all())
    make_permanent(model, layout)
    assert isinstance(model.stem.weight, nn.Parameter) and not parametrize.is_parametrized(model.stem)
    assert int((layout.flatten(layout.values(model)) != 0).sum()) <= int(mask.sum())


def test_freeze_mode_keeps_unselected_weights_at_their_initial_values():
    model = small_resnet()
    layout = Layout.from_model(model)
    initial = [v.detach().clone() for v in layout.values(model)]
    mask = random_mask(layout, density=0.5)
    apply_mask(model, mask, layout, mode="freeze")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    x, y = batches((3, 8, 8), 4)[0]
    for _ in range(3):
        optimizer.zero_grad()
        CE(model(x), y).backward()
        for leaf, part in zip(layout.trainable(model), layout.split(mask)):
            assert bool((leaf.grad[~part] == 0).all())  # frozen elements get no gradient
        optimizer.step()
    for value, start, part in zip(layout.values(model), initial, layout.split(mask)):
        assert torch.equal(value[~part], start[~part])   # frozen: untouched by momentum and weight decay
        assert not torch.equal(value[part], start[part])  # selected: trained
    final = [v.detach().clone() for v in layout.values(model)]
    make_permanent(model, layout)
    assert isinstance(model.stem.weight, nn.Parameter)
    for value, expected in zip(layout.values(model), final):
        assert torch.equal(value, expected)


def test_layer_stats_and_table():
    model = small_cnn()
    layout = Layout.from_model(model, include_bias=True)
    mask = torch.zeros(len(layout), dtype=torch.bool)
    first = layout.entries[0]
    mask[first.offset:first.offset + 5] = True       # 5 weights of layer 0
    bias = layout.entries[3]                           # layer 1's bias only: collapsed
    mask[bias.offset:bias.stop] = True
    mask[layout.entries[4].offset] = True             # one weight of layer 2
    stats = layer_stats(mask, layout)
    assert [s.name for s in stats] == ["0", "2", "6"]
    assert [s.kept for s in stats] == [5, bias.numel, 1]
    assert [s.size for s in stats] == list(layout.layer_sizes)
    assert [s.collapsed for s in stats] == [False, True, False]
    assert stats[0].density == pytest.approx(5 / stats[0].size)
    table = format_layer_table({"a": stats, "b": stats}, title="t")
    assert table.splitlines()[0] == "t" and "!" in table and "Conv2d" in table
    assert table.splitlines()[-1].split()[-2:] == ["1", "1"]


def test_layer_collapse_warn_raise_ignore():
    layout = Layout.from_model(small_cnn())
    mask = torch.ones(len(layout), dtype=torch.bool)
    second = layout.entries[1]
    mask[second.offset:second.stop] = False
    model = small_cnn()
    with pytest.warns(LayerCollapseWarning, match="'2'"):
        apply_mask(model, mask, layout)
    model = small_cnn()
    with pytest.raises(LayerCollapseError) as error:
        apply_mask(model, mask, layout, on_collapse="raise")
    assert error.value.layers == ("2",)
    assert not parametrize.is_parametrized(model[0])  # refused before touching the model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_mask(small_cnn(), mask, layout, on_collapse="ignore")
        apply_mask(small_cnn(), torch.ones(len(layout), dtype=torch.bool), layout)


def test_mask_input_checks():
    model = small_cnn()
    layout = Layout.from_model(model)
    with pytest.raises(ValueError, match="shape"):
        apply_mask(model, torch.ones(len(layout) - 1, dtype=torch.bool), layout)
    with pytest.raises(ValueError, match="0 and 1"):
        apply_mask(model, torch.full((len(layout),), 0.5), layout)
    with pytest.raises(ValueError, match="mode"):
        apply_mask(model, torch.ones(len(layout), dtype=torch.bool), layout, mode="zero")
    with pytest.raises(ValueError, match="on_collapse"):
        apply_mask(model, torch.ones(len(layout), dtype=torch.bool), layout, on_collapse="maybe")
    # numpy and 0/1 masks are accepted
    stats = apply_mask(model, (random_mask(layout).numpy()).astype("int8"), layout)
    assert sum(s.kept for s in stats) == int(random_mask(layout).sum())
    with pytest.raises(ValueError, match="freeze"):
        apply_mask(model, random_mask(layout), layout, mode="freeze")  # already pruned
    frozen = small_cnn()
    apply_mask(frozen, random_mask(layout), layout, mode="freeze")
    with pytest.raises(ValueError, match="frozen"):
        apply_mask(frozen, random_mask(layout), layout)


def test_pruning_twice_combines_masks_and_reports_the_combination():
    model = small_cnn()
    layout = Layout.from_model(model)
    first, second = random_mask(layout, 0.6, seed=1), random_mask(layout, 0.6, seed=2)
    apply_mask(model, first, layout)
    stats = apply_mask(model, second, layout)
    assert torch.equal(current_mask(model, layout), first & second)
    nonzero = layout.flatten(layout.values(model)) != 0
    assert torch.equal(nonzero, first & second)
    assert sum(s.kept for s in stats) == int((first & second).sum()) < int(second.sum())
    assert [s.kept for s in stats] == [s.kept for s in layer_stats(first & second, layout)]


def test_pruning_twice_with_replace_keeps_only_the_new_mask():
    model = small_cnn()
    layout = Layout.from_model(model)
    initial = layout.flatten(layout.values(model)).detach().clone()
    first, second = random_mask(layout, 0.6, seed=1), random_mask(layout, 0.6, seed=2)
    apply_mask(model, first, layout)
    stats = apply_mask(model, second, layout, previous="replace")
    assert torch.equal(current_mask(model, layout), second)
    assert sum(s.kept for s in stats) == int(second.sum())
    # elements pruned by the first mask and kept by the second come back with their values
    assert torch.equal(layout.flatten(layout.values(model)).detach(), initial * second)
    with pytest.raises(ValueError, match="previous"):
        apply_mask(model, second, layout, previous="keep")


def test_a_model_pruned_with_torch_prune_is_combined_and_converted():
    model = small_cnn()
    layout = Layout.from_model(model)
    initial = layout.flatten(layout.values(model)).detach().clone()
    first, second = random_mask(layout, 0.6, seed=1), random_mask(layout, 0.6, seed=2)
    for module, part in zip(layout.modules(model), layout.split(first)):
        prune.custom_from_mask(module, "weight", part)
    assert torch.equal(current_mask(model, layout), first)
    stats = apply_mask(model, second, layout)
    assert sum(s.kept for s in stats) == int((first & second).sum())
    assert not hasattr(model[0], "weight_orig") and parametrize.is_parametrized(model[0], "weight")
    assert torch.equal(layout.flatten(layout.values(model)).detach(), initial * (first & second))


def test_freezing_twice_combines_and_keeps_frozen_values():
    model = small_cnn()
    layout = Layout.from_model(model)
    initial = layout.flatten(layout.values(model)).detach().clone()
    first, second = random_mask(layout, 0.6, seed=1), random_mask(layout, 0.6, seed=2)
    apply_mask(model, first, layout, mode="freeze")
    with torch.no_grad():  # a training step's worth of change on the trainable elements
        for leaf in layout.trainable(model):
            leaf.add_(1.0)
    stats = apply_mask(model, second, layout, mode="freeze")
    assert torch.equal(current_mask(model, layout), first & second)
    assert sum(s.kept for s in stats) == int((first & second).sum())
    values = layout.flatten(layout.values(model)).detach()
    assert torch.equal(values[~first], initial[~first])                       # frozen first: initial
    assert torch.equal(values[first & ~second], initial[first & ~second] + 1)  # frozen now: current


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")  # the empty layer, built on purpose
def test_layer_stats_of_an_empty_last_layer():
    """Regression: counting by reduceat failed on a layout whose last entry has no element."""
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 0))
    layout = Layout.from_model(model)
    stats = layer_stats(torch.ones(len(layout), dtype=torch.bool), layout)
    assert [s.kept for s in stats] == [32, 0] and stats[1].size == 0
    assert np.isnan(stats[1].density)  # no weight: no density (and no 0/0 warning)
