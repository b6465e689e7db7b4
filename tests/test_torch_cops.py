"""COPS end to end: scores -> copslp.solve -> mask in the model -> report; a pruned CNN trains."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
copslp = pytest.importorskip("copslp")

from torch import nn  # noqa: E402

from torch.nn.utils import parametrize  # noqa: E402

from torch_adapter import (  # noqa: E402
    current_mask,
    Layout,
    LayerCollapseError,
    LayerCollapseWarning,
    PruneReport,
    Score,
    layer_floors,
    prune_with_cops,
    scores,
    select_mask,
)
from torch_models import batches, small_cnn, small_resnet, single_torch_thread  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def top_k_sum(values, k):
    return float(np.sort(values)[::-1][:k].sum())


def test_prune_with_cops_keeps_exactly_k_and_meets_the_bound():
    model = small_resnet()
    data = batches((3, 8, 8), 4)
    s_snip = scores.snip(model, CE, data)
    s_flow = scores.synflow(model, (3, 8, 8))
    report = prune_with_cops(model, [s_snip, s_flow], budget=0.1, gamma=0.9, on_collapse="ignore")
    assert isinstance(report, PruneReport)
    layout = s_snip.layout
    k = max(1, round(0.1 * len(layout)))
    assert report.budget == k == int(report.mask.sum())
    assert sum(s.kept for s in report.layers) == k
    # the mask in the model is the reported mask
    in_model = current_mask(model, layout)
    assert torch.equal(in_model, report.mask)
    # COPS guarantees: the SynFlow bound holds, SNIP is as large as the LP allows
    mask = report.mask.numpy()
    flow, snip = s_flow.numpy(), s_snip.numpy()
    assert flow[mask].sum() >= 0.9 * top_k_sum(flow, k) * (1 - 1e-9)
    assert snip[mask].sum() <= top_k_sum(snip, k) * (1 + 1e-9)
    assert report.result.mask_objective == pytest.approx(snip[mask].sum(), rel=1e-9)
    assert report.result.certificate.passed and report.result.method == "analytic"
    assert report.result.multipliers.shape == (1,)
    summary = report.summary()
    json.dumps(summary)
    assert summary["scores"] == ["snip", "synflow"] and summary["budget"] == k
    assert "solver" in summary and summary["solver"]["method"] == "analytic"
    assert "COPS (snip, synflow)" in report.table()


def test_single_score_is_top_k():
    model = small_cnn()
    score = scores.random(model, seed=1)
    k = 37
    selection = select_mask(score, budget=k)
    expected = torch.zeros(len(score), dtype=torch.bool)
    expected[torch.topk(score.values, k).indices] = True
    assert torch.equal(selection.mask, expected)
    assert selection.score_names == ("random",)


def test_gamma_one_gives_a_best_mask_for_the_secondary_score():
    model = small_cnn()
    primary, secondary = scores.random(model, seed=1), scores.magnitude(model)
    selection = select_mask([primary, secondary], budget=50, gamma=1.0)
    values = secondary.numpy()
    assert values[selection.mask.numpy()].sum() == pytest.approx(top_k_sum(values, 50), rel=1e-12)


def test_layer_floors_prevent_collapse():
    model = small_cnn()
    layout = Layout.from_model(model)
    # a primary score that makes the last layer worthless
    values = scores.magnitude(model).values.clone()
    last = layout.entries[-1]
    values[last.offset:last.stop] *= 1e-6
    primary = Score(values, layout, "scaled magnitude")
    secondary = scores.random(model, seed=0)
    untouched = small_cnn()
    with pytest.raises(LayerCollapseError):
        prune_with_cops(untouched, [primary, secondary], budget=10, gamma=0.0, on_collapse="raise")
    assert not parametrize.is_parametrized(untouched[0])
    with pytest.warns(LayerCollapseWarning) as record:
        prune_with_cops(small_cnn(), [primary, secondary], budget=10, gamma=0.0)
    assert record[0].filename == __file__  # the warning points at the caller
    report = prune_with_cops(model, [primary, secondary], budget=10, gamma=0.0, min_per_layer=2)
    assert report.collapsed == ()
    assert [s.kept >= 2 for s in report.layers] == [True] * layout.n_layers
    assert list(report.floors) == [2, 2, 2]
    assert report.result.floor_multipliers is not None
    density_floors = layer_floors(layout, 0.05)
    assert list(density_floors) == [math.ceil(0.05 * n) for n in layout.layer_sizes]
    report = prune_with_cops(small_cnn(), [primary, secondary], budget=0.2, gamma=0.5, min_per_layer=0.05)
    assert all(s.kept >= f for s, f in zip(report.layers, density_floors))


def test_layer_floors_arguments():
    layout = Layout.from_model(small_cnn())
    assert list(layer_floors(layout, 10**6)) == list(layout.layer_sizes)  # a small layer is kept whole
    assert list(layer_floors(layout, 0)) == [0] * layout.n_layers
    with pytest.raises(ValueError):
        layer_floors(layout, -1)
    with pytest.raises(ValueError):
        layer_floors(layout, 1.5)
    with pytest.raises(TypeError):
        layer_floors(layout, True)


def test_freeze_mode_end_to_end():
    model = small_cnn()
    layout = Layout.from_model(model)
    initial = layout.flatten(layout.values(model)).detach().clone()
    report = prune_with_cops(model, [scores.magnitude(model), scores.synflow(model, (1, 8, 8))],
                             budget=0.3, mode="freeze")
    assert report.mode == "freeze"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    x, y = batches((1, 8, 8), 3)[0]
    for _ in range(3):
        optimizer.zero_grad()
        CE(model(x), y).backward()
        optimizer.step()
    after = layout.flatten(layout.values(model)).detach()
    assert torch.equal(after[~report.mask], initial[~report.mask])
    assert not torch.equal(after[report.mask], initial[report.mask])


def test_argument_checks():
    model = small_cnn()
    a = scores.magnitude(model)
    other = scores.magnitude(model, include_bias=True)
    with pytest.raises(ValueError, match="different layout"):
        select_mask([a, other], budget=0.1)
    with pytest.raises(TypeError, match="budget"):
        select_mask(a)
    with pytest.raises(TypeError, match="budget"):
        select_mask(a, True)
    with pytest.raises(ValueError, match="1 <= k <= D"):
        select_mask(a, len(a.layout) + 1)
    with pytest.raises(ValueError, match="fraction"):
        select_mask(a, 1.5)
    with pytest.raises(TypeError, match="Score"):
        select_mask([a.values], budget=0.1)
    with pytest.raises(ValueError, match="no module"):
        prune_with_cops(small_resnet(), [a], budget=0.1)
    with pytest.raises(ValueError, match="floor"):
        select_mask([a, scores.random(model)], budget=5, min_per_layer=3)
    with pytest.raises(copslp.InfeasibleError):
        select_mask([a, scores.random(model)], budget=5, bounds=[1e9])


def test_cops_pruned_cnn_still_trains():
    torch.manual_seed(0)
    model = small_cnn(in_channels=1, classes=2)
    # two classes: a bright blob in the upper-left or the lower-right quadrant
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (64,), generator=generator)
    images = 0.3 * torch.randn(64, 1, 8, 8, generator=generator)
    images[labels == 0, :, :4, :4] += 1.0
    images[labels == 1, :, 4:, 4:] += 1.0
    data = [(images[:32], labels[:32]), (images[32:], labels[32:])]
    s_snip = scores.snip(model, CE, data)
    s_flow = scores.synflow(model, (1, 8, 8))
    report = prune_with_cops(model, [s_snip, s_flow], budget=0.3, gamma=0.9, on_collapse="raise")
    assert report.collapsed == ()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = CE(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    layout = report.layout
    kept = layout.flatten([m.weight for m in layout.modules(model)]) != 0
    assert int(kept.sum()) <= report.budget and not bool(kept[~report.mask].any())


def test_scores_reach_the_core_as_one_host_matrix_in_their_own_precision():
    """The adapter copies each score once, into a row of one (n, D) array the core takes as
    it is (no stacking copy, no float64 copy of float32 scores); one float32 score on the
    CPU is a view of its tensor; a float64 score makes every row float64; ``index`` takes
    those columns."""
    from copslp._problem import make_problem
    from torch_adapter.cops import host_matrix

    layout = Layout.from_model(nn.Linear(30, 20))
    generator = torch.Generator().manual_seed(0)
    a, b = (Score(torch.rand(len(layout), generator=generator), layout, name) for name in ("a", "b"))
    matrix = host_matrix([a, b])
    assert matrix.shape == (2, len(layout)) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, np.stack([a.values.numpy(), b.values.numpy()]))
    assert np.shares_memory(make_problem(matrix, 10, gamma=0.9).scores, matrix)
    alone = host_matrix([a])
    assert alone.shape == (1, len(layout)) and np.shares_memory(alone, a.values.numpy())
    wide = Score(b.values.double(), layout, "c")
    assert host_matrix([a, wide]).dtype == np.float64
    index = np.array([3, 0, 17])
    np.testing.assert_array_equal(host_matrix([a, b], index), matrix[:, index])
