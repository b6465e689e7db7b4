"""Pruned models saved and loaded through their state_dict (load_pruned), deep-copied, pickled."""

import copy
import io
import pickle

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.utils import parametrize, prune  # noqa: E402

from torch_adapter import Layout, apply_mask, current_mask, load_pruned, make_permanent, masked_tensors  # noqa: E402
from torch_models import (batches, random_mask, shared_linear_net, single_torch_thread,  # noqa: E402,F401
                          small_resnet, tiny_vit)

CE = nn.CrossEntropyLoss()


def train(model, data, steps=2):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    model.train()
    for step in range(steps):
        x, y = data[step % len(data)]
        optimizer.zero_grad()
        CE(model(x), y).backward()
        optimizer.step()


def saved_and_loaded(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer)


@pytest.mark.parametrize("mode", ["mask", "freeze"])
@pytest.mark.parametrize("make, shape, classes", [(small_resnet, (3, 8, 8), 4), (shared_linear_net, (5,), 3),
                                                  (tiny_vit, (3, 8, 8), 4)])
def test_a_loaded_model_computes_and_trains_as_the_saved_one(make, shape, classes, mode):
    data = batches(shape, classes)
    pruned = make(seed=0)
    layout = Layout.from_model(pruned, warn_left_out=False)
    mask = random_mask(layout, density=0.3)
    apply_mask(pruned, mask, layout, mode=mode)
    train(pruned, data)  # the stored values now differ from the initial ones
    state = saved_and_loaded(pruned.state_dict())

    fresh = make(seed=7)  # other initial values everywhere
    loaded_layout = load_pruned(fresh, state)
    assert loaded_layout.names == layout.names
    assert torch.equal(current_mask(fresh, layout), current_mask(pruned, layout))
    assert set(fresh.state_dict()) == set(pruned.state_dict())
    for model in (pruned, fresh):
        model.eval()
    x = data[0][0]
    assert torch.equal(fresh(x), pruned(x))
    # training both the same way keeps them equal, bit for bit, and keeps the mask
    frozen = [v.detach().clone() for v in layout.values(pruned)]
    for model in (pruned, fresh):
        torch.manual_seed(3)
        train(model, data, steps=3)
        model.eval()
    assert torch.equal(fresh(x), pruned(x))
    for value, part, before in zip(layout.values(fresh), layout.split(mask), frozen):
        expected = torch.zeros_like(before) if mode == "mask" else before
        assert torch.equal(value.detach()[~part], expected[~part])


def test_tied_tensors_load_as_one_tensor_with_one_mask():
    pruned = shared_linear_net()
    layout = Layout.from_model(pruned)
    apply_mask(pruned, random_mask(layout), layout)
    fresh = shared_linear_net(seed=5)
    load_pruned(fresh, saved_and_loaded(pruned.state_dict()))
    assert fresh.first.parametrizations.weight is not None
    assert fresh.first.parametrizations.weight.original is fresh.second.parametrizations.weight.original
    assert fresh.first.parametrizations.weight[0] is fresh.second.parametrizations.weight[0]


def test_the_keys_are_the_documented_ones():
    model = small_resnet()
    layout = Layout.from_model(model)
    apply_mask(model, random_mask(layout), layout)
    keys = set(model.state_dict())
    assert {"stem.parametrizations.weight.original", "stem.parametrizations.weight.0.mask"} <= keys
    assert "stem.weight" not in keys and not any(k.endswith(".frozen") for k in keys)
    assert model.state_dict()["stem.parametrizations.weight.0.mask"].dtype == torch.bool
    frozen = small_resnet()
    apply_mask(frozen, random_mask(layout), layout, mode="freeze")
    assert "stem.parametrizations.weight.0.frozen" in frozen.state_dict()
    assert masked_tensors(frozen.state_dict()) == {name: "freeze" for name in layout.names}
    assert masked_tensors(small_resnet().state_dict()) == {}


def test_a_torch_prune_state_dict_loads_as_a_mask_parametrization():
    pruned = small_resnet()
    prune.random_unstructured(pruned.head, "weight", amount=0.5)
    fresh = small_resnet(seed=4)
    layout = load_pruned(fresh, saved_and_loaded(pruned.state_dict()))
    assert layout.names == ("head.weight",)
    assert parametrize.is_parametrized(fresh.head, "weight")
    assert torch.equal(fresh.head.weight, pruned.head.weight)
    pruned.eval(), fresh.eval()
    x = batches((3, 8, 8), 4)[0][0]
    assert torch.equal(fresh(x), pruned(x))


def test_an_unpruned_or_permanent_state_dict_loads_as_it_is():
    model = small_resnet()
    fresh = small_resnet(seed=2)
    assert load_pruned(fresh, model.state_dict()) is None
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_load_pruned_refuses_what_does_not_fit():
    pruned = small_resnet()
    layout = Layout.from_model(pruned)
    apply_mask(pruned, random_mask(layout), layout)
    other = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="no place for"):
        load_pruned(other, pruned.state_dict())
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        load_pruned(small_resnet(), [1, 2])
    state = dict(pruned.state_dict())
    state["stem.parametrizations.weight.1.mask"] = state["stem.parametrizations.weight.0.mask"]
    with pytest.raises(ValueError, match="parametrization 1"):
        load_pruned(small_resnet(), state)
    with pytest.raises(RuntimeError, match="Missing key"):  # strict loading still checks the rest
        state = dict(pruned.state_dict())
        del state["bn.running_mean"]
        load_pruned(small_resnet(), state)


@pytest.mark.parametrize("mode", ["mask", "freeze"])
def test_a_deep_copy_keeps_its_masks_and_trains_with_them(mode):
    model = small_resnet()
    layout = Layout.from_model(model)
    mask = random_mask(layout, density=0.4)
    apply_mask(model, mask, layout, mode=mode)
    initial = [v.detach().clone() for v in layout.values(model)]
    twin = copy.deepcopy(model)
    assert torch.equal(current_mask(twin, layout), mask)
    assert twin.stem.parametrizations.weight[0].mask.data_ptr() != model.stem.parametrizations.weight[0].mask.data_ptr()
    train(twin, batches((3, 8, 8), 4), steps=3)
    for value, part, before in zip(layout.values(twin), layout.split(mask), initial):
        expected = torch.zeros_like(before) if mode == "mask" else before
        assert torch.equal(value.detach()[~part], expected[~part])
    for value, before in zip(layout.values(model), initial):  # the original is not touched
        assert torch.equal(value, before)


def test_changing_the_masks_of_a_deep_copy_leaves_the_original_alone():
    """torch gives a deep copy the class of the original (which holds the parametrized
    tensors as properties): baking in the copy's masks deleted the original's weight."""
    model = small_resnet()
    layout = Layout.from_model(model)
    mask = random_mask(layout)
    apply_mask(model, mask, layout)
    twin = copy.deepcopy(model)
    make_permanent(twin, layout)
    with_bias = Layout.from_model(twin, include_bias=True)
    apply_mask(twin, torch.ones(len(with_bias), dtype=torch.bool), with_bias)  # a new tensor parametrized
    assert torch.equal(current_mask(model, layout), mask)
    assert not parametrize.is_parametrized(model.head, "bias")
    x = batches((3, 8, 8), 4)[0][0]
    model.eval(), twin.eval()
    assert torch.equal(model(x), twin(x))


def test_torch_refuses_to_pickle_a_pruned_model_and_the_state_dict_is_the_road():
    model = small_resnet()
    layout = Layout.from_model(model)
    apply_mask(model, random_mask(layout), layout)
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(model)
    pickle.dumps(model.state_dict())
