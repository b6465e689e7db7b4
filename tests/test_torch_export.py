"""The compact export of a pruned model (kept values and their positions) and its loader."""

import io

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from torch_adapter import (Layout, apply_mask, current_mask, export_sparse, load_sparse, make_permanent,  # noqa: E402
                           serialized_bytes)
from torch_models import batches, random_mask, shared_linear_net, single_torch_thread, small_resnet  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def saved_and_loaded(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("make, shape", [(small_resnet, (3, 8, 8)), (shared_linear_net, (5,))])
def test_an_exported_model_loads_into_a_fresh_one_and_computes_the_same(make, shape):
    model = make()
    layout = Layout.from_model(model)
    mask = random_mask(layout, density=0.2)
    apply_mask(model, mask, layout)
    exported = saved_and_loaded(export_sparse(model))
    for name, stored in exported["sparse"].items():
        assert stored["values"].numel() == int(layout.to_dict(mask)[name].sum())
    fresh = make(seed=9)
    load_sparse(fresh, exported)
    assert torch.equal(current_mask(fresh, layout), mask)
    model.eval(), fresh.eval()
    x = batches(shape, 3)[0][0]
    assert torch.equal(fresh(x), model(x))
    optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1)
    fresh.train()
    CE(fresh(x), torch.zeros(x.shape[0], dtype=torch.long)).backward()
    optimizer.step()
    for value, part in zip(layout.values(fresh), layout.split(mask)):
        assert bool((value[~part] == 0).all())


def test_the_smaller_encoding_is_chosen_and_the_file_shrinks():
    model = nn.Sequential(nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 10))
    layout = Layout.from_model(model)
    dense = serialized_bytes(model.state_dict())
    sizes = {}
    for density, encoding in ((0.2, "bitmap"), (0.01, "indices")):
        pruned = nn.Sequential(nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 10))
        apply_mask(pruned, random_mask(layout, density=density), layout, on_collapse="ignore")
        exported = export_sparse(pruned)
        assert exported["sparse"]["0.weight"]["encoding"] == encoding
        sizes[density] = serialized_bytes(exported)
        kept = round(density * len(layout))
        positions = len(layout) // 8 if encoding == "bitmap" else 4 * kept
        assert sizes[density] < 4 * kept + positions + 4 * 110 + 4000  # values, positions, biases, pickle
    assert sizes[0.01] < sizes[0.2] < dense


def test_a_permanent_model_exports_its_non_zero_weights_and_loads_without_masks():
    model = small_resnet()
    layout = Layout.from_model(model)
    apply_mask(model, random_mask(layout, density=0.1), layout)
    make_permanent(model, layout)
    exported = export_sparse(model)
    fresh = small_resnet(seed=3)
    load_sparse(fresh, exported, masks=False)
    assert not hasattr(fresh.stem, "parametrizations")
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value), name


def test_freeze_mode_and_foreign_dicts_are_refused():
    model = small_resnet()
    layout = Layout.from_model(model)
    apply_mask(model, random_mask(layout), layout, mode="freeze")
    with pytest.raises(ValueError, match="freeze mode"):
        export_sparse(model)
    with pytest.raises(ValueError, match="made by export_sparse"):
        load_sparse(small_resnet(), model.state_dict())
