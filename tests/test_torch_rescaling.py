"""Rescaling after pruning: per-unit pre-activation variance restored; Stable ResNet branch scaling."""

import copy
import math

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_adapter import (  # noqa: E402
    Layout,
    apply_mask,
    interspace,
    iterative_prune,
    prune_with_cops,
    rescale_after_pruning,
    scale_residual_branches,
    scores,
)
from torch_models import mlp, single_torch_thread  # noqa: E402,F401

SAMPLES = 4000
# relative standard deviation of a sample variance of Gaussian data is sqrt(2 / (n - 1));
# 6 of them bound the largest deviation over a few hundred units
TOLERANCE = 6 * math.sqrt(2 / (SAMPLES - 1))



def stored(module, name="weight"):
    """The values a mask parametrization keeps under ``module.<name>`` (pruned ones included)."""
    return module.parametrizations[name].original

def deep_mlp(depth=8, width=48, seed=0):
    return mlp(sizes=(width,) * (depth + 1), seed=seed, dtype=torch.float64)


def deep_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Conv2d(16, 12, 3, groups=2),
        nn.ReLU(), nn.Conv2d(12, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    ).double()


def random_mask(layout, density, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(len(layout), generator=generator, dtype=torch.float64) < density


def unit_variances(module, weight, generator):
    """Per-unit variance of the pre-activation (no bias) of ``module`` with ``weight`` on i.i.d. N(0, 1) inputs.

    Linear: variance over samples of each output. Conv (no padding): over samples and positions of each channel.
    """
    if isinstance(module, nn.Linear):
        x = torch.randn(SAMPLES, module.in_features, generator=generator, dtype=torch.float64)
        return F.linear(x, weight).var(dim=0)
    x = torch.randn(SAMPLES // 16 + 1, module.in_channels, 6, 6, generator=generator, dtype=torch.float64)
    z = F.conv2d(x, weight, None, module.stride, 0, module.dilation, module.groups)
    return z.transpose(0, 1).reshape(z.shape[1], -1).var(dim=1)


def check_restored(model_before, model_after, layout, *, rescaled=True):
    """Every layer's per-unit variance after pruning (with rescaling) equals the one before."""
    ratios = []
    for before, after in zip(layout.modules(model_before), layout.modules(model_after)):
        weight_before = before.weight.detach()
        weight_after = after.weight.detach()
        seed = len(ratios)
        v_before = unit_variances(before, weight_before, torch.Generator().manual_seed(seed))
        v_after = unit_variances(before, weight_after, torch.Generator().manual_seed(seed))
        ratios.append(v_after / v_before)
    ratios = torch.cat(ratios)
    if rescaled:
        assert float((ratios - 1).abs().max()) < TOLERANCE
    return ratios


@pytest.mark.parametrize("make", [deep_mlp, deep_cnn])
def test_per_unit_preactivation_variance_is_restored(make):
    model = make()
    layout = Layout.from_model(model)
    mask = random_mask(layout, 0.2)
    pruned, rescaled = copy.deepcopy(model), copy.deepcopy(model)
    apply_mask(pruned, mask, layout)
    apply_mask(rescaled, mask, layout, rescale=True)
    check_restored(model, rescaled, layout)
    # without rescaling the variance drops to about the density (far outside the tolerance)
    plain = check_restored(model, pruned, layout, rescaled=False)
    assert 0.1 < float(plain.mean()) < 0.3
    # and, exactly, the squared norm of every unit is what it was
    for before, after in zip(layout.modules(model), layout.modules(rescaled)):
        kept = after.weight.flatten(1).pow(2).sum(1)
        torch.testing.assert_close(kept, before.weight.flatten(1).pow(2).sum(1), rtol=1e-12, atol=0)


def test_signal_scale_survives_a_deep_pruned_relu_network():
    """Edge of chaos: in a 20-layer ReLU MLP (He init, width 128, 10% density) the output second
    moment of the rescaled network stays within a decade of the dense one (over seeds 0..9 the ratio
    ranged 0.35..8.5: post-ReLU inputs are neither zero-mean nor independent, and each pruned network
    is another random draw); unrescaled it vanishes (about 0.1 ** 20)."""
    torch.manual_seed(0)
    width, depth = 128, 20
    layers = []
    for i in range(depth):
        linear = nn.Linear(width, width, bias=False)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers += [linear, nn.ReLU()] if i < depth - 1 else [linear]
    model = nn.Sequential(*layers).double()
    layout = Layout.from_model(model)
    mask = random_mask(layout, 0.1, seed=1)
    pruned, rescaled = copy.deepcopy(model), copy.deepcopy(model)
    apply_mask(pruned, mask, layout, on_collapse="raise")
    apply_mask(rescaled, mask, layout, rescale=True, on_collapse="raise")
    x = torch.randn(2000, width, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        dense = model(x).pow(2).mean()
        ratio_rescaled = float(rescaled(x).pow(2).mean() / dense)
        ratio_pruned = float(pruned(x).pow(2).mean() / dense)
    assert 0.1 < ratio_rescaled < 10
    assert ratio_pruned < 1e-10


def test_count_factor_and_dead_units():
    model = mlp(sizes=(6, 5, 4), dtype=torch.float64)
    layout = Layout.from_model(model)
    mask = random_mask(layout, 0.5, seed=3)
    mask[: 6] = False  # unit 0 of the first layer keeps nothing
    before = [m.weight.detach().clone() for m in layout.modules(model)]
    apply_mask(model, mask, layout)
    report = rescale_after_pruning(model, layout, by="count")
    assert [r.name for r in report] == list(layout.names)
    assert report[0].dead_units == 1 and report[0].factors[0] == 1
    for r, module, old, part in zip(report, layout.modules(model), before, layout.split(mask)):
        kept = part.flatten(1).sum(1)
        alive = kept > 0
        expected = torch.ones(part.shape[0], dtype=torch.float64)
        expected[alive] = (part.shape[1] / kept[alive].double()).sqrt()
        torch.testing.assert_close(r.factors, expected, rtol=1e-15, atol=0)
        assert r.dead_units == int((~alive).sum())
        torch.testing.assert_close(stored(module), torch.where(part, old * expected[:, None], old),
                                   rtol=1e-15, atol=0)


def test_interspace_coefficients_are_rescaled_by_their_filters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3)).double()
    dense = copy.deepcopy(model)
    interspace.convert(model, basis="dct")
    score = scores.random(model, seed=1)
    prune_with_cops(model, score, budget=round(0.3 * len(score)), rescale=True)
    for name in ("0", "2"):
        before = dense.get_submodule(name).weight.flatten(1).pow(2).sum(1)
        after = model.get_submodule(name).filters.flatten(1).pow(2).sum(1)
        torch.testing.assert_close(after, before, rtol=1e-12, atol=0)


def test_prune_with_cops_rescale_equals_rescaling_afterwards():
    model = deep_mlp(depth=3, width=10)
    score = scores.magnitude(model)
    one, two = copy.deepcopy(model), copy.deepcopy(model)
    prune_with_cops(one, score, budget=round(0.25 * len(score)), rescale=True)
    prune_with_cops(two, score, budget=round(0.25 * len(score)))
    rescale_after_pruning(two)
    for a, b in zip(Layout.from_model(one).modules(one), Layout.from_model(two).modules(two)):
        assert torch.equal(stored(a), stored(b))


def test_rescaling_refuses_what_it_cannot_rescale():
    model = deep_mlp(depth=2, width=4)
    layout = Layout.from_model(model)
    mask = random_mask(layout, 0.5)
    with pytest.raises(ValueError, match="not pruned"):
        rescale_after_pruning(model, layout)
    with pytest.raises(ValueError, match="by must be one of"):
        rescale_after_pruning(model, layout, by="norm")
    with pytest.raises(ValueError, match='rescale needs mode="mask"'):
        apply_mask(copy.deepcopy(model), mask, layout, mode="freeze", rescale=True)
    with pytest.raises(ValueError, match="rescale must be"):
        apply_mask(copy.deepcopy(model), mask, layout, rescale="yes")
    with pytest.raises(TypeError, match="rescale must be"):
        apply_mask(copy.deepcopy(model), mask, layout, rescale=1)
    frozen = copy.deepcopy(model)
    apply_mask(frozen, mask, layout, mode="freeze")
    with pytest.raises(ValueError, match="frozen"):
        rescale_after_pruning(frozen, layout)
    embedding = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    emb_layout = Layout.from_model(embedding, types=(nn.Embedding, nn.Linear))
    apply_mask(embedding, torch.ones(len(emb_layout), dtype=torch.bool), emb_layout)
    with pytest.raises(ValueError, match="Embedding"):
        rescale_after_pruning(embedding, emb_layout)
    # bias entries are left alone
    biased = deep_mlp(depth=2, width=4)
    bias_layout = Layout.from_model(biased, include_bias=True)
    bias_before = [m.bias.detach().clone() for m in bias_layout.modules(biased)[1::2]]
    apply_mask(biased, torch.ones(len(bias_layout), dtype=torch.bool), bias_layout, rescale=True)
    for module, old in zip(bias_layout.modules(biased)[1::2], bias_before):
        assert torch.equal(stored(module, "bias"), old)


class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.branch(x)


def test_stable_resnet_scales_each_residual_branch():
    torch.manual_seed(0)
    model = nn.Sequential(*(Residual(5) for _ in range(4))).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    with torch.no_grad():
        dense = model(x)
        manual = x
        for block in model:
            manual = manual + block.branch(manual) / 2  # 1 / sqrt(L), L = 4
        for branches in ([f"{i}.branch" for i in range(4)], [f"{i}.branch.2" for i in range(4)]):
            handles = scale_residual_branches(model, branches)
            torch.testing.assert_close(model(x), manual, rtol=1e-14, atol=0)
            for handle in handles:
                handle.remove()
            assert torch.equal(model(x), dense)
        handles = scale_residual_branches(model, ["0.branch"], factor=3.0)
        assert not torch.equal(model(x), dense)
        for handle in handles:
            handle.remove()
    with pytest.raises(ValueError, match="empty"):
        scale_residual_branches(model, [])
    with pytest.raises(ValueError, match="names no module"):
        scale_residual_branches(model, ["9.branch"])
    with pytest.raises(ValueError, match="twice"):
        scale_residual_branches(model, ["0.branch", "0.branch"])
    with pytest.raises(ValueError, match="factor"):
        scale_residual_branches(model, ["0.branch"], factor=0.0)
    with pytest.raises(TypeError, match="sequence of module names"):
        scale_residual_branches(model, "0.branch")


def test_rescaling_twice_is_refused():
    """Regression: a second rescale measured the energies of already rescaled weights and
    overshot by about 1.5x; it is refused, with the reason."""
    model = deep_mlp(depth=2, width=50)
    layout = Layout.from_model(model)
    apply_mask(model, random_mask(layout, 0.5, seed=1), layout, rescale=True)
    with pytest.raises(ValueError, match="rescaled already"):
        apply_mask(model, random_mask(layout, 0.5, seed=2), layout, rescale=True)


def test_apply_options_are_checked_before_any_work():
    calls = []

    def score_fn(model):
        calls.append(1)
        return scores.magnitude(model)
    model = deep_mlp(depth=2, width=4)
    with pytest.raises(ValueError, match="mode must be one of"):
        iterative_prune(model, score_fn, density=0.5, rounds=3, apply=True, mode="x")
    assert calls == []
    with pytest.raises(ValueError, match="on_collapse must be one of"):
        prune_with_cops(model, scores.magnitude(model), 3, on_collapse="x")
