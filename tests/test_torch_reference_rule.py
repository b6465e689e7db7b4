"""kept_count_convention="reference": the SynFlow authors' count *and* tie rule (every score
equal to the threshold is pruned), against their rule written out with torch.kthvalue; and the
per-layer budgets (ERK, uniform) against RigL's algorithm."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from test_torch_iterative import reference_iterative_synflow  # noqa: E402
from torch_adapter import Layout, iterative_prune, layer_budgets, scores, top_k_mask  # noqa: E402
from torch_models import single_torch_thread, small_cnn  # noqa: E402,F401


def reference_mask(values: torch.Tensor, density: float) -> torch.Tensor:
    """``Pruner._global_mask`` of github.com/ganguli-lab/Synaptic-Flow, on one flat score."""
    removed = int((1.0 - density) * values.numel())
    if removed < 1:
        return torch.ones_like(values, dtype=torch.bool)
    threshold, _ = torch.kthvalue(values, removed)
    return values > threshold


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_k_drops_every_score_tied_at_the_threshold(dtype):
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 6, (200,), generator=generator).to(dtype)  # many ties
    differ = 0
    for density in (0.03, 0.1, 0.37, 0.5, 0.9, 1.0):
        mask = top_k_mask(values, density, kept_count_convention="reference")
        assert torch.equal(mask, reference_mask(values, density)), density
        differ += not torch.equal(mask, top_k_mask(values, density))
    assert differ  # the rule of "round" keeps k, breaking ties by index


def test_local_reference_rule_is_the_rule_per_layer():
    model = small_cnn()
    layout = Layout.from_model(model)
    values = torch.randint(0, 4, (len(layout),), generator=torch.Generator().manual_seed(1)).double()
    mask = top_k_mask(values, 0.3, scope="local", layout=layout, kept_count_convention="reference")
    for part, layer_values in zip(layout.split(mask), layout.split(values)):
        assert torch.equal(part.reshape(-1), reference_mask(layer_values.reshape(-1), 0.3))


def test_candidates_keep_the_masks_nested():
    values = torch.tensor([5.0, 4.0, 4.0, 0.0, 3.0, 3.0, 2.0, 1.0])
    candidates = torch.tensor([True, True, True, False, True, True, True, True])
    mask = top_k_mask(values, 0.5, kept_count_convention="reference", candidates=candidates)
    assert mask.tolist() == [True, True, True, False, False, False, False, False]  # 3.0 ties at t: both go
    assert not bool((mask & ~candidates).any())


def quantised_cnn() -> nn.Sequential:
    """Every weight +-0.25 or +-0.5: SynFlow's scores tie in many places, at every level."""
    model = small_cnn(seed=3)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                levels = torch.tensor([0.25, 0.5])[torch.randint(0, 2, module.weight.shape, generator=generator)]
                signs = torch.randint(0, 2, module.weight.shape, generator=generator) * 2 - 1
                module.weight.copy_(levels * signs)
                module.bias.fill_(0.1)
    return model


def test_iterative_synflow_with_ties_reproduces_the_reference_loop_in_float32():
    model, shape, density, rounds = quantised_cnn(), (1, 8, 8), 0.05, 20
    expected, intended, counts = reference_iterative_synflow(model, shape, density, rounds, torch.float32)
    assert counts != intended  # ties straddled the threshold in some round

    def synflow(m):
        return scores.synflow(m, shape, dtype=torch.float32)

    reference = iterative_prune(model, synflow, density=density, rounds=rounds, kept_count_convention="reference")
    assert list(reference.kept_counts) == counts  # exactly k each round (intended) was the rule before
    assert torch.equal(reference.mask, expected)


# ----------------------------------------------------------------------------- layer budgets
def rigl_erk_densities(shapes, density):
    """``get_sparsities_erdos_renyi`` of RigL (google-research/rigl, sparse_utils.py), written
    out: densities per layer, the layers of the largest raw probability made dense until the
    scale keeps every density at most 1."""
    sparsity = 1.0 - density
    dense = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for name, shape in shapes.items():
            n_param = float(np.prod(shape))
            if name in dense:
                rhs -= n_param * sparsity
            else:
                rhs += n_param * (1.0 - sparsity)
                raw[name] = np.sum(shape) / np.prod(shape)
                divisor += raw[name] * n_param
        eps = rhs / divisor
        top = max(raw.values())
        if top * eps <= 1:
            return {name: 1.0 if name in dense else eps * raw[name] for name in shapes}
        dense |= {name for name, p in raw.items() if p == top}


@pytest.mark.parametrize("density", [0.5, 0.1, 0.01])
def test_erk_budgets_follow_rigl_and_sum_to_the_budget(density):
    from bench.models import vgg16

    layout = Layout.from_model(vgg16(width=0.25))
    budgets = layer_budgets(layout, density, "erk")
    assert int(budgets.sum()) == max(1, round(density * len(layout)))
    expected = rigl_erk_densities({e.name: e.shape for e in layout.entries}, density)
    for count, size, name in zip(budgets, layout.layer_sizes, layout.names):
        assert abs(count - expected[name] * size) <= 1.0 + 1e-6 * size, name
    uniform = layer_budgets(layout, density, "uniform")
    assert int(uniform.sum()) == int(budgets.sum())
    assert np.all(np.abs(uniform - density * layout.layer_sizes) < 1)


def test_layer_budgets_drive_top_k_and_cops():
    copslp = pytest.importorskip("copslp")
    model = small_cnn()
    layout = Layout.from_model(model)
    budgets = layer_budgets(layout, 0.2, "erk")
    score = scores.random(model, seed=3)
    mask = top_k_mask(score, 0.2, scope="local", layer_budgets=budgets)
    assert [int(part.sum()) for part in layout.split(mask)] == budgets.tolist()
    result = copslp.solve(score.numpy()[None, :], int(budgets.sum()), groups=layout.group_index(), floors=budgets)
    assert np.array_equal(result.mask, mask.numpy())
    with pytest.raises(ValueError, match="scope"):
        top_k_mask(score, 0.2, layer_budgets=budgets)
    with pytest.raises(ValueError, match="between 0 and"):
        top_k_mask(score, 0.2, scope="local", layer_budgets=budgets + 1000)
    with pytest.raises(ValueError, match="distribution"):
        layer_budgets(layout, 0.2, "erdos")


@pytest.mark.parametrize("seed", range(6))
def test_the_loops_threshold_is_the_one_over_all_scores(seed):
    """The iterative loop finds the reference threshold among the kept scores where no pruned
    score exceeds them (SynFlow's zeros), else over all N: always the same value as one
    selection over all N."""
    from torch_adapter.iterative import _reference_threshold_of_all
    from torch_adapter.topk import reference_threshold

    rng = np.random.default_rng(seed)
    every = np.round(rng.random(500), 2)  # ties
    kept = np.sort(rng.choice(500, int(rng.integers(1, 500)), replace=False))
    if seed % 2:  # pruned scores all at or below the kept ones, as SynFlow's zeros are
        pruned = np.setdiff1d(np.arange(500), kept)
        every[pruned] = np.minimum(every[pruned], every[kept].min()) * rng.random(pruned.shape[0])
    for removed in (0, 1, 500 - kept.shape[0], 500 - kept.shape[0] + 1, 499):
        assert _reference_threshold_of_all(every, every[kept], kept, removed) == reference_threshold(every, removed)
    # SynFlow's: every pruned score 0, none below 0 (some kept ones 0 too): the kept scores alone give it
    pruned = np.setdiff1d(np.arange(500), kept)
    every[pruned] = 0
    every[kept[::7]] = 0
    for removed in (0, 1, pruned.shape[0], pruned.shape[0] + 1, 499):
        assert _reference_threshold_of_all(every, every[kept], kept, removed, zero_pruned=True) == \
            reference_threshold(every, removed)
    # NaN among the kept is refused by either path, whatever the threshold
    every[kept[-1]] = np.nan
    for zero_pruned in (False, True):
        for removed in (0, pruned.shape[0], 499):
            with pytest.raises(ValueError, match="NaN"):
                _reference_threshold_of_all(every, every[kept], kept, removed, zero_pruned=zero_pruned)


def test_the_small_rank_selection_is_exact_whatever_its_sample():
    """The pre-selection by a sampled cut gives the rank-th smallest exactly: with ties, on
    sorted and tiny arrays, and where the strided sample misleads (it sees only the zeros of
    every 6th place: too few values lie at or below its cut, and the selection over all runs);
    NaN is refused."""
    from torch_adapter.iterative import _small_rank

    rng = np.random.default_rng(0)
    for values in (np.round(rng.random(100_000), 3), np.sort(rng.random(70_000)), np.sort(rng.random(70_000))[::-1],
                   rng.random(5).astype(np.float32), np.zeros(1000), np.r_[np.zeros(50_000), rng.random(50_000)]):
        for rank in {1, 2, max(1, values.shape[0] // 20), values.shape[0] // 2 or 1, values.shape[0]}:
            assert _small_rank(values, rank) == np.partition(values, rank - 1)[rank - 1]
    misleading = np.ones(100_000)
    misleading[::6] = 0  # the sample's stride at this size: it holds only zeros
    for rank in (16_667, 16_668, 20_000):
        assert _small_rank(misleading, rank) == np.partition(misleading, rank - 1)[rank - 1]
    spoiled = rng.random(40_000)
    spoiled[12345] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _small_rank(spoiled, 100)
