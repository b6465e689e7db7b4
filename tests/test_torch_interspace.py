"""Interspace pruning: same function after conversion, spatial basis = standard pruning, FB training, revert."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from torch_adapter import (  # noqa: E402
    InterspaceConv2d,
    Layout,
    apply_mask,
    interspace,
    iterative_prune,
    make_permanent,
    prune_with_cops,
    scores,
)
from torch_models import batches, small_cnn, small_resnet, single_torch_thread  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def odd_convolutions(dtype=torch.float64):
    """Grouped, dilated, strided, reflect- and circular-padded, "same" and non-square convolutions."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2),
        nn.ReLU(),
        nn.Conv2d(6, 6, (3, 2), stride=2, padding=1, padding_mode="reflect", bias=False),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding="same", padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(6, 3, 1),
    ).to(dtype)


def sgd_steps(model, data, steps=3, lr=0.1):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for step in range(steps):
        x, y = data[step % len(data)]
        optimizer.zero_grad()
        CE(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("basis", ["dct", "spatial"])
@pytest.mark.parametrize("make, shape", [(small_cnn, (1, 8, 8)), (small_resnet, (3, 8, 8)),
                                          (odd_convolutions, (4, 9, 7))])
def test_converted_model_computes_the_same_function(make, shape, basis):
    model = make(dtype=torch.float64).eval()
    x = torch.randn(5, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = model(x)
    converted = copy.deepcopy(model)
    names = interspace.convert(converted, basis=basis)
    convs = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)}
    assert set(names) == convs and names
    for name in names:
        assert isinstance(converted.get_submodule(name), InterspaceConv2d)
    got = converted(x)
    if basis == "spatial":
        assert torch.equal(got, expected)
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    # float32: the DCT to float32 round-off, the spatial basis exactly
    model32, converted32 = copy.deepcopy(model).float(), copy.deepcopy(model).float()
    interspace.convert(converted32, basis=basis)
    if basis == "spatial":
        assert torch.equal(converted32(x.float()), model32(x.float()))
    else:
        torch.testing.assert_close(converted32(x.float()), model32(x.float()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (5, 5), (3, 2)])
@pytest.mark.parametrize("basis", ["dct", "spatial"])
def test_filter_bases_are_orthonormal(basis, kernel):
    filters = interspace.BASES[basis](kernel).flatten(1)
    assert filters.shape == (kernel[0] * kernel[1], kernel[0] * kernel[1])
    torch.testing.assert_close(filters @ filters.T, torch.eye(filters.shape[0], dtype=torch.float64),
                               rtol=0, atol=1e-14)


def test_dct_basis_starts_with_the_constant_filter():
    filters = interspace.dct_basis((3, 3))
    torch.testing.assert_close(filters[0], torch.full((3, 3), 1 / 3, dtype=torch.float64), rtol=0, atol=1e-15)


def test_the_coefficients_are_the_prunable_tensors_of_the_layout():
    model = small_resnet()
    interspace.convert(model, basis="dct")
    layout = Layout.from_model(model)
    converted = {n for n, m in model.named_modules() if isinstance(m, InterspaceConv2d)}
    for entry in layout.entries:
        if entry.module_name in converted:
            module = model.get_submodule(entry.module_name)
            assert entry.tensor_name == "coefficients"
            assert entry.shape == (module.out_channels, module.in_channels // module.groups, 9)
        else:
            assert entry.tensor_name == "weight"
    # the FB is not prunable, the 1x1 shortcut and the head keep their weights
    assert not any("basis" in name for name in layout.names)
    assert "layer2.shortcut.0.weight" in layout.names and "head.weight" in layout.names
    # biases stay where they were, after their layer's coefficients
    plain, converted_cnn = small_cnn(), small_cnn()
    interspace.convert(converted_cnn)
    assert Layout.from_model(converted_cnn, include_bias=True).names == tuple(
        name.replace("weight", "coefficients") if name.startswith(("0.", "2.")) else name
        for name in Layout.from_model(plain, include_bias=True).names)
    assert converted_cnn[0].bias is not None


def test_spatial_basis_held_fixed_is_standard_pruning_exactly():
    data = batches((3, 8, 8), 4, dtype=torch.float64)
    standard = small_resnet(dtype=torch.float64)
    converted = copy.deepcopy(standard)
    names = interspace.convert(converted, basis="spatial", train_basis=False)
    # same scores, element for element (the spatial coefficients are the weights, row-major)
    s_standard = scores.snip(standard, CE, data)
    s_converted = scores.snip(converted, CE, data)
    assert torch.equal(s_standard.values, s_converted.values)
    g_standard = scores.grasp(standard, CE, data)
    g_converted = scores.grasp(converted, CE, data)
    torch.testing.assert_close(g_converted.values, g_standard.values, rtol=1e-12, atol=1e-18)
    # the same iterative masks (the loop zeroes coefficients as it zeroes weights)
    loops = [iterative_prune(m, lambda w: scores.snip(w, CE, data), density=0.1, rounds=3)
             for m in (standard, converted)]
    assert torch.equal(loops[0].mask, loops[1].mask)
    # same mask, and training keeps the two models equal
    r_standard = prune_with_cops(standard, s_standard, budget=round(0.2 * len(s_standard)))
    r_converted = prune_with_cops(converted, s_converted, budget=round(0.2 * len(s_converted)))
    assert torch.equal(r_standard.mask, r_converted.mask)
    sgd_steps(standard, data)
    sgd_steps(converted, data)
    for name in names:
        conv, inter = standard.get_submodule(name), converted.get_submodule(name)
        assert torch.equal(inter.filters, conv.weight), name  # conv.weight: the masked weight
        assert torch.equal(inter.basis, interspace.spatial_basis((3, 3))), name
    x = data[0][0]
    assert torch.equal(standard(x), converted(x))


def test_filter_basis_trains_while_pruned_coefficients_stay_zero():
    data = batches((3, 8, 8), 4)
    model = small_resnet()
    names = interspace.convert(model, basis="dct")
    initial = {name: model.get_submodule(name).basis.detach().clone() for name in names}
    score = scores.snip(model, CE, data)
    report = prune_with_cops(model, score, budget=round(0.3 * len(score)))
    sgd_steps(model, data, steps=4)
    for (entry, part) in zip(report.layout.entries, report.layout.split(report.mask)):
        if entry.module_name not in names:
            continue
        module = model.get_submodule(entry.module_name)
        assert module.basis.grad is not None and bool((module.basis.grad != 0).any()), entry.module_name
        assert not torch.allclose(module.basis, initial[entry.module_name]), entry.module_name
        effective = module.coefficients  # the mask parametrization, recomputed at each access
        original = module.parametrizations.coefficients.original
        assert bool((effective[~part.reshape(effective.shape)] == 0).all()), entry.module_name
        assert bool((original.grad[~part.reshape(effective.shape)] == 0).all()), entry.module_name
        assert bool((effective[part.reshape(effective.shape)] != 0).any()), entry.module_name


def test_freeze_mode_on_coefficients_keeps_them_at_their_values():
    data = batches((1, 8, 8), 3)
    model = small_cnn()
    interspace.convert(model, basis="dct")
    layout = Layout.from_model(model)
    before = [t.detach().clone() for t in layout.values(model)]
    mask = scores.random(model, seed=2).values < 0.3
    apply_mask(model, mask, layout, mode="freeze")
    sgd_steps(model, data)
    for value, old, part in zip(layout.values(model), before, layout.split(mask)):
        assert torch.equal(value[~part], old[~part])
        assert not torch.equal(value[part], old[part])


@pytest.mark.parametrize("prune_first", [False, True])
def test_revert_bakes_the_current_filters(prune_first):
    data = batches((3, 8, 8), 4, dtype=torch.float64)
    model = small_resnet(dtype=torch.float64)
    names = interspace.convert(model, basis="dct")
    if prune_first:
        score = scores.snip(model, CE, data)
        prune_with_cops(model, score, budget=round(0.3 * len(score)))
    sgd_steps(model, data)
    model.eval()
    x = data[0][0]
    expected = model(x)
    filters = {name: model.get_submodule(name).filters.detach().clone() for name in names}
    biases = {name: model.get_submodule(name).bias for name in names}
    assert interspace.revert(model) == names
    for name in names:
        conv = model.get_submodule(name)
        assert type(conv) is nn.Conv2d
        assert torch.equal(conv.weight, filters[name])
        assert conv.bias is biases[name]
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-12)
    assert interspace.revert(model) == ()


def test_only_what_can_be_rewritten_is_converted():
    with pytest.raises(ValueError, match="basis must be one of"):
        interspace.convert(small_cnn(), basis="wavelet")
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        interspace.convert(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="exclude names no module"):
        interspace.convert(small_cnn(), exclude=["nope"])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        interspace.convert("model")
    pruned = small_cnn()
    prune.random_unstructured(pruned[0], "weight", amount=0.5)
    with pytest.raises(ValueError, match="'0' is pruned|0 is pruned"):
        interspace.convert(pruned)
    frozen = small_cnn()
    layout = Layout.from_model(frozen)
    apply_mask(frozen, torch.ones(len(layout), dtype=torch.bool), layout, mode="freeze")
    with pytest.raises(ValueError, match="pruned or parametrized"):
        interspace.convert(frozen)
    make_permanent(frozen, layout)
    assert interspace.convert(frozen) == ("0", "2")

    class MyConv(nn.Conv2d):
        pass

    with pytest.raises(ValueError, match="subclass of nn.Conv2d"):
        interspace.convert(nn.Sequential(MyConv(1, 2, 3)))
    tied = nn.Sequential(nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
    tied[1].weight = tied[0].weight
    with pytest.raises(ValueError, match="shared"):
        interspace.convert(tied)
    hooked = small_cnn()
    hooked[0].register_forward_hook(lambda module, inputs, output: output)
    with pytest.raises(ValueError, match="forward hooks"):
        interspace.convert(hooked)
    # excluded and pointwise layers stay as they are
    model = small_resnet()
    assert interspace.convert(model, exclude=["layer2"]) == ("stem", "layer1.conv1", "layer1.conv2")
    assert type(model.layer2.conv1) is nn.Conv2d
    pointwise = small_resnet()
    assert "layer2.shortcut.0" in interspace.convert(pointwise, include_pointwise=True)
