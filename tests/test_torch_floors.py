"""Layer floors against layer collapse, on a deep network at initialisation.

The network: the demo's 20-layer ReLU MLP (784 -> 100 x 19 -> 10, Kaiming-normal weights,
zero biases, 259,400 prunable weights), scored with SNIP on two generated batches of 32.
At density 0.1 % (k = 259) SNIP's top-k keeps no weight of the first layers: none of the
78,400 weights of the 784-input layer (nor, with this seed, of the second) is among SNIP's
259 best. With ``min_per_layer``, SNIP alone and COPS keep every layer, exactly k weights,
at a certified LP optimum that can only be lower than without the floors.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
copslp = pytest.importorskip("copslp")

from torch import nn  # noqa: E402

from torch.nn.utils import parametrize  # noqa: E402

from torch_adapter import (  # noqa: E402
    current_mask,
    LayerCollapseError,
    layer_floors,
    prune_with_cops,
    scores,
    select_mask,
)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import pruning_demo as demo  # noqa: E402
from torch_models import single_torch_thread  # noqa: E402,F401

DENSITY = 0.001
SEED = 0


@pytest.fixture(scope="module")
def scored(single_torch_thread):  # noqa: F811
    """The 20-layer MLP and its SNIP, SynFlow and magnitude scores (computed once, ~0.1 s)."""
    torch.manual_seed(SEED)
    model = demo.deep_mlp(seed=SEED)
    data = demo.generated_batches(2, 32, seed=SEED, input_shape=(demo.MLP_INPUTS,))
    s_snip = scores.snip(model, nn.CrossEntropyLoss(), data)
    return {
        "model": model,
        "snip": s_snip,
        "synflow": scores.synflow(model, (demo.MLP_INPUTS,)),
        "magnitude": scores.magnitude(model),
        "k": max(1, round(DENSITY * len(s_snip))),
    }


def kept_per_layer(selection):
    return [s.kept for s in selection.layers]


def test_the_network():
    model = demo.deep_mlp()
    layout = scores.magnitude(model).layout
    assert layout.n_layers == 20
    assert list(layout.layer_sizes) == [784 * 100] + [100 * 100] * 18 + [100 * 10]
    assert len(layout) == 259_400
    state = torch.get_rng_state()
    assert torch.equal(demo.deep_mlp(seed=3).fc1.weight, demo.deep_mlp(seed=3).fc1.weight)
    assert torch.equal(torch.get_rng_state(), state)  # the builder leaves the global generator alone


def test_snip_alone_collapses_layers(scored):
    s_snip, k = scored["snip"], scored["k"]
    selection = select_mask(s_snip, budget=DENSITY)
    # it is SNIP's plain top-k
    expected = torch.zeros(len(s_snip), dtype=torch.bool)
    expected[torch.topk(s_snip.values, k).indices] = True
    assert torch.equal(selection.mask, expected)
    assert sum(kept_per_layer(selection)) == k == 259
    # the demonstration: the 784-input layer keeps nothing (with this seed, fc2 neither)
    assert "fc1" in selection.collapsed
    assert kept_per_layer(selection)[0] == 0
    # the adapter refuses to apply it when asked to, and leaves the model untouched
    model = demo.deep_mlp(seed=SEED)
    with pytest.raises(LayerCollapseError) as info:
        prune_with_cops(model, s_snip, budget=DENSITY, on_collapse="raise")
    assert "fc1" in info.value.layers
    assert not parametrize.is_parametrized(model.fc1)


@pytest.mark.parametrize("secondary", [None, "synflow", "magnitude"])
@pytest.mark.parametrize("min_per_layer", [2, 0.00005])  # 2 per layer; or 0.005 %: [4, 1, ..., 1]
def test_floors_keep_every_layer_alive(scored, secondary, min_per_layer):
    s_snip, k = scored["snip"], scored["k"]
    layout = s_snip.layout
    chosen = [s_snip] if secondary is None else [s_snip, scored[secondary]]
    without = select_mask(chosen, budget=DENSITY)
    assert without.collapsed  # SNIP alone, and COPS with either secondary score, collapse here
    floors = layer_floors(layout, min_per_layer)
    assert floors.min() >= 1
    with_floors = select_mask(chosen, budget=DENSITY, min_per_layer=min_per_layer)

    assert with_floors.collapsed == ()
    assert list(with_floors.floors) == list(floors)
    kept = np.array(kept_per_layer(with_floors))
    assert (kept >= floors).all(), (kept, floors)
    assert int(with_floors.mask.sum()) == kept.sum() == with_floors.result.budget == k
    res = with_floors.result
    assert res.certificate.passed
    assert res.floor_multipliers is not None and res.floor_multipliers.shape == (layout.n_layers,)
    # floors only restrict: the optimum can only go down
    assert res.objective <= without.result.objective * (1 + 1e-12)
    assert res.mask_objective <= without.result.objective * (1 + 1e-12)
    # the bound on the secondary score still holds for the kept mask
    if secondary is not None:
        values = scored[secondary].numpy(np.float64)
        best = float(np.sort(values)[::-1][:k].sum())
        assert values[with_floors.mask.numpy()].sum() >= 0.9 * best * (1 - 1e-9)


def test_prune_with_cops_floors_end_to_end(scored):
    model = demo.deep_mlp(seed=SEED)
    report = prune_with_cops(model, [scored["snip"], scored["synflow"]], budget=DENSITY, gamma=0.9,
                             min_per_layer=2, on_collapse="raise")
    assert report.collapsed == () and report.budget == scored["k"]
    layout = report.layout
    in_model = current_mask(model, layout)
    assert torch.equal(in_model, report.mask)
    per_layer = [int(part.sum()) for part in layout.split(in_model)]
    assert min(per_layer) >= 2 and sum(per_layer) == scored["k"]
    assert report.summary()["floors"] == [2] * 20
    assert "fc1" in report.table()


def test_floors_against_the_bound_are_a_clear_error(scored):
    # one-shot SynFlow puts its best k weights in the last layer; 5 in each of the other 19
    # leave too few there for 90 % of SynFlow's best
    with pytest.raises(copslp.InfeasibleError, match="floors"):
        select_mask([scored["snip"], scored["synflow"]], budget=DENSITY, gamma=0.9, min_per_layer=5)
    with pytest.raises(ValueError, match="floor"):
        select_mask(scored["snip"], budget=19, min_per_layer=1)  # 20 layers, 1 each > k


@pytest.mark.parametrize("secondary", [None, "synflow"])
def test_zero_floors_are_no_floors(scored, secondary):
    chosen = [scored["snip"]] if secondary is None else [scored["snip"], scored[secondary]]
    plain = select_mask(chosen, budget=DENSITY)
    zero = select_mask(chosen, budget=DENSITY, min_per_layer=0)
    assert list(zero.floors) == [0] * 20
    assert torch.equal(zero.mask, plain.mask)
    assert zero.result.objective == pytest.approx(plain.result.objective, rel=1e-12)
    assert zero.result.mask_objective == pytest.approx(plain.result.mask_objective, rel=1e-12)
    assert zero.collapsed == plain.collapsed != ()
    assert zero.result.certificate.passed


def test_the_demo_part(scored):
    data = demo.generated_batches(2, 32, seed=SEED, input_shape=(demo.MLP_INPUTS,))
    rows = demo.layer_collapse(scored["model"], data, density=DENSITY, min_per_layer=2, gamma=0.9)
    assert tuple(rows) == demo.COLLAPSE_LABELS
    assert torch.equal(rows["SNIP"].mask, select_mask(scored["snip"], budget=DENSITY).mask)
    assert rows["SNIP"].collapsed and rows["COPS"].collapsed
    assert rows["SNIP + floors"].collapsed == rows["COPS + floors"].collapsed == ()
    for sel in rows.values():
        assert int(sel.mask.sum()) == scored["k"]
    # a collapsed layer leaves no input-to-output path
    assert demo._input_output_paths(rows["SNIP"]) == 0.0
