"""Plain and local top-k, kept-count conventions, and the iterative loop (top-k and COPS, with floors).

The SynFlow authors' iterative loop (``prune.py: prune_loop`` with ``Pruners/pruners.py:
SynFlow`` and ``Pruner._global_mask`` of github.com/ganguli-lab/Synaptic-Flow) is rewritten
below as an independent reference; with ``kept_count_convention="reference"`` the loop here
reproduces its masks.
"""

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
copslp = pytest.importorskip("copslp")

from torch import nn  # noqa: E402

from torch_adapter import (  # noqa: E402
    current_mask,
    Layout,
    iterative_prune,
    kept_count,
    layer_floors,
    round_densities,
    Score,
    scores,
    top_k_mask,
)
from torch_adapter.iterative import zero_entries  # noqa: E402
from torch_adapter.scores import SynFlowRounds  # noqa: E402
from torch_models import MODELS, batches, mlp, single_torch_thread  # noqa: E402,F401

CE = nn.CrossEntropyLoss()

#: The four small networks: name -> (constructor, input shape)
NETWORKS = {
    "mlp": (lambda: mlp(), (6,)),
    "mlp_no_bias": (lambda: mlp(sizes=(5, 7, 4, 3), bias=False), (5,)),
    "cnn": (MODELS["cnn"][0], MODELS["cnn"][1]),
    "resnet": (MODELS["resnet"][0], MODELS["resnet"][1]),
}


# ----------------------------------------------------------------------------- reference
def reference_iterative_synflow(model, input_shape, density, rounds, dtype):
    """The reference's loop: in each epoch mask the weights, score SynFlow on the signed-abs model
    in place, and prune every weight whose score is <= the int((1 - d) N)-th smallest.

    Returns the final mask, the count each round meant to keep (N - int((1 - d) N)) and the
    count it kept: fewer when scores tie at the threshold (e.g. weights of a unit cut off by
    earlier rounds score 0, like the pruned ones), since the reference drops every tie."""
    model = copy.deepcopy(model).to(dtype).eval()
    params = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    masks = [torch.ones_like(p) for p in params]
    intended, counts = [], []
    for epoch in range(rounds):
        with torch.no_grad():
            for mask, param in zip(masks, params):
                param.mul_(mask)
            signs = {}
            for name, tensor in model.state_dict().items():
                signs[name] = torch.sign(tensor)
                tensor.abs_()
        with torch.enable_grad():
            output = model(torch.ones((1, *input_shape), dtype=dtype))
            grads = torch.autograd.grad(output.sum(), params)
        synflow = [(g * p).detach().abs() for g, p in zip(grads, params)]
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                tensor.mul_(signs[name])
        sparse = density ** ((epoch + 1) / rounds)
        flat = torch.cat([s.flatten() for s in synflow])
        k = int((1.0 - sparse) * flat.numel())
        if not k < 1:
            threshold, _ = torch.kthvalue(flat, k)
            masks = [torch.where(s <= threshold, 0.0, 1.0).to(dtype) for s in synflow]
        intended.append(flat.numel() - k)
        counts.append(int(sum(m.sum() for m in masks)))
    return torch.cat([m.flatten() for m in masks]).bool(), intended, counts


def jaccard(a, b):
    return int((a & b).sum()) / int((a | b).sum())


@pytest.mark.parametrize("network, dtype", [(name, torch.float64) for name in NETWORKS] + [("cnn", torch.float32)])
def test_iterative_synflow_reproduces_the_reference_loop(network, dtype):
    make, shape = NETWORKS[network]
    model = make()
    density, rounds = 0.05, 100
    expected, intended, counts = reference_iterative_synflow(model, shape, density, rounds, dtype)
    result = iterative_prune(model, lambda m: scores.synflow(m, shape, dtype=dtype), density=density, rounds=rounds,
                             kept_count_convention="reference")
    assert list(result.kept_counts) == counts  # the reference's tie rule: every score at the threshold goes
    assert torch.equal(result.mask, expected)
    # the reference keeps fewer than it meant only where it dropped ties (in the bias-free MLP)
    assert (counts == intended) == (network != "mlp_no_bias")
    # the default rounding (round(d N), checked in the SNIP loop test) would keep other counts
    assert [max(1, round(d * len(result.layout))) for d in result.densities] != intended
    assert [kept_count(d, len(result.layout), "reference") for d in result.densities] == intended


def test_synflow_iterations_is_the_loop():
    model = MODELS["cnn"][0]()
    for convention in ("round", "reference"):
        score = scores.synflow(model, (1, 8, 8), iterations=10, final_density=0.1, kept_count_convention=convention)
        result = iterative_prune(model, lambda m: scores.synflow(m, (1, 8, 8)), density=0.1, rounds=10,
                                 kept_count_convention=convention)
        assert torch.equal(score.values, result.scores[0].values)
        assert torch.equal(top_k_mask(score, 0.1, kept_count_convention=convention), result.mask)
        assert score.options["kept_count_convention"] == convention


# ----------------------------------------------------------------------------- kept counts, top-k
def test_kept_count_conventions():
    for size in (1, 7, 103, 984, 10 ** 6):
        for density in (1.0, 0.5, 0.3, 0.1, 0.05 ** 0.37, 1e-3):
            assert kept_count(density, size) == max(1, round(density * size))
            assert kept_count(density, size, "reference") == size - int((1.0 - density) * size)
    assert kept_count(0.1, 103) == 10 and kept_count(0.1, 103, "reference") == 11  # 0.9 * 103 = 92.7
    with pytest.raises(ValueError, match="convention"):
        kept_count(0.1, 10, "floor")
    with pytest.raises(ValueError, match="density"):
        kept_count(0.0, 10)
    with pytest.raises(ValueError, match="size"):
        kept_count(0.5, 0)
    with pytest.raises(TypeError, match="size"):
        kept_count(0.5, 10.0)
    with pytest.raises(TypeError, match="density"):
        kept_count("0.5", 10)


def test_global_top_k_equals_the_single_score_lp():
    model = MODELS["resnet"][0]()
    score = scores.snip(model, CE, batches((3, 8, 8), 4))
    for density in (0.5, 0.1, 0.013):
        mask = top_k_mask(score, density)
        result = copslp.solve([score.numpy()], density)
        assert torch.equal(mask, torch.from_numpy(np.asarray(result.mask, dtype=bool)))


def test_top_k_breaks_ties_by_lowest_index_and_keeps_exactly_k():
    values = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0, 0.0, 2.0])
    mask = top_k_mask(values, 3 / 7)
    assert mask.tolist() == [False, True, True, True, False, False, False]
    assert int(top_k_mask(values, 5 / 7).sum()) == 5
    assert top_k_mask(np.array([0.5, -1.0]), 0.5).tolist() == [True, False]
    with pytest.raises(ValueError, match="NaN"):
        top_k_mask(torch.tensor([1.0, float("nan")]), 0.5)
    # the reference rule's one selection refuses a NaN wherever it lies, whatever it removes
    for where in range(7):
        spoiled = values.clone()
        spoiled[where] = float("nan")
        for density in (1.0, 5 / 7, 1 / 7):
            with pytest.raises(ValueError, match="NaN"):
                top_k_mask(spoiled, density, kept_count_convention="reference")
    with pytest.raises(ValueError, match="scope"):
        top_k_mask(values, 0.5, scope="layer")
    with pytest.raises(ValueError, match="needs a layout"):
        top_k_mask(values, 0.5, scope="local")
    with pytest.raises(ValueError, match="candidates"):
        top_k_mask(values, 0.5, candidates=torch.tensor([True] * 2 + [False] * 5))
    with pytest.raises(TypeError, match="score must be"):
        top_k_mask([1.0, 2.0], 0.5)


@pytest.mark.parametrize("convention", ["round", "reference"])
def test_local_top_k_keeps_each_layers_best_at_the_density(convention):
    model = MODELS["resnet"][0]()
    score = scores.synflow(model, (3, 8, 8))
    density = 0.2
    mask = top_k_mask(score, density, scope="local", kept_count_convention=convention)
    for layer, (part, values) in enumerate(zip(score.layout.split(mask), score.layout.split(score.values))):
        assert int(part.sum()) == kept_count(density, part.numel(), convention)
        assert float(values[part].min()) >= float(values[~part].max())
    assert not torch.equal(mask, top_k_mask(score, density))


# ----------------------------------------------------------------------------- the loop
def snip_loop_by_hand(model, data, density, rounds):
    """SNIP rescored on the masked model each round, kept among the kept, by torch.topk."""
    work = copy.deepcopy(model)
    layout = Layout.from_model(work)
    kept = torch.ones(len(layout), dtype=torch.bool)
    for r in range(1, rounds + 1):
        with torch.no_grad():
            for tensor, part in zip(layout.trainable(work), layout.split(kept)):
                tensor.mul_(part)
        values = scores.snip(work, CE, data).values.clone()
        values[~kept] = -float("inf")
        new = torch.zeros_like(kept)
        new[torch.topk(values, max(1, round(density ** (r / rounds) * len(layout)))).indices] = True
        kept = new
    return kept


def test_iterative_snip_equals_the_loop_by_hand_and_leaves_the_model_alone():
    model = MODELS["cnn"][0]()
    data = batches((1, 8, 8), 3)
    state = copy.deepcopy(model.state_dict())
    result = iterative_prune(model, lambda m: scores.snip(m, CE, data), density=0.1, rounds=4)
    assert torch.equal(result.mask, snip_loop_by_hand(model, data, 0.1, 4))
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name])
    assert result.rounds == 4 and len(result.score_times) == len(result.select_times) == 4
    assert all(t >= 0 for t in result.score_times + result.select_times)
    assert result.densities == round_densities(0.1, 4)
    assert list(result.kept_counts) == [max(1, round(d * len(result.layout))) for d in result.densities]
    assert result.summary()["kept_counts"] == list(result.kept_counts)
    assert result.results == ()


def test_schedules():
    assert round_densities(0.01, 4) == tuple(0.01 ** ((r + 1) / 4) for r in range(4))
    assert round_densities(0.2, 4, "linear") == tuple(1.0 - 0.8 * ((r + 1) / 4) for r in range(4))
    model = MODELS["mlp"][0]()
    result = iterative_prune(model, scores.magnitude, density=0.2, rounds=4, schedule="linear")
    assert result.densities == round_densities(0.2, 4, "linear")
    # magnitude does not change with the mask: every schedule ends in the one-shot top-k
    assert torch.equal(result.mask, top_k_mask(scores.magnitude(model), 0.2))


def test_cops_with_one_score_is_the_top_k_loop():
    model = MODELS["resnet"][0]()
    score_fn = lambda m: scores.synflow(m, (3, 8, 8))  # noqa: E731
    top = iterative_prune(model, score_fn, density=0.05, rounds=5)
    cops = iterative_prune(model, score_fn, density=0.05, rounds=5, selector="cops")
    assert torch.equal(top.mask, cops.mask)
    assert [r.budget for r in cops.results] == list(cops.kept_counts)


def test_iterative_cops_with_floors_and_bounds():
    model = MODELS["resnet"][0]()
    data = batches((3, 8, 8), 4)
    layout = Layout.from_model(model)
    density, floor = 0.02, 2
    def score_fn(m):
        return [scores.snip(m, CE, data), scores.synflow(m, (3, 8, 8))]
    result = iterative_prune(model, score_fn, density=density, rounds=5, selector="cops", gamma=0.5,
                             min_per_layer=floor)
    kept = [s.kept for s in result.layers]
    floors = layer_floors(layout, floor)
    assert all(k >= f for k, f in zip(kept, floors))
    assert int(result.mask.sum()) == max(1, round(density * len(layout))) == result.kept_counts[-1]
    for r in result.results:
        assert r.certificate.passed
        assert float(r.mask_violations.max(initial=0.0)) == 0.0
    # the last round's bound, checked here: SynFlow's kept sum >= 0.5 x its best k among the
    # elements kept after round 4 (the last round's scores are 0 on the others)
    synflow = result.scores[1].numpy()
    k = result.kept_counts[-1]
    assert synflow[result.mask.numpy()].sum() >= 0.5 * np.sort(synflow)[-k:].sum() * (1 - 1e-9)
    # without floors SNIP+SynFlow at this density leaves some layer with fewer than the floor
    free = iterative_prune(model, score_fn, density=density, rounds=5, selector="cops", gamma=0.5)
    assert any(s.kept < f for s, f in zip(free.layers, floors))


def test_apply_puts_the_final_mask_into_the_model():
    model = MODELS["mlp"][0]()
    result = iterative_prune(model, scores.magnitude, density=0.3, rounds=3, apply=True, rescale=True)
    assert result.applied
    assert torch.equal(current_mask(model, result.layout), result.mask)


def test_loop_options_are_checked():
    model = MODELS["mlp"][0]()
    two = lambda m: [scores.magnitude(m), scores.random(m)]  # noqa: E731
    with pytest.raises(TypeError, match="takes no COPS options"):
        iterative_prune(model, scores.magnitude, density=0.3, gamma=0.9)
    with pytest.raises(TypeError, match="takes no COPS options"):
        iterative_prune(model, scores.magnitude, density=0.3, min_per_layer=1)
    with pytest.raises(ValueError, match="ranks by one score"):
        iterative_prune(model, two, density=0.3, rounds=2)
    with pytest.raises(ValueError, match="selects globally"):
        iterative_prune(model, two, density=0.3, selector="cops", scope="local")
    with pytest.raises(ValueError, match="selector"):
        iterative_prune(model, scores.magnitude, density=0.3, selector="greedy")
    with pytest.raises(ValueError, match="schedule"):
        iterative_prune(model, scores.magnitude, density=0.3, schedule="cosine")
    with pytest.raises(ValueError, match="rounds"):
        iterative_prune(model, scores.magnitude, density=0.3, rounds=0)
    with pytest.raises(TypeError, match="rounds"):
        iterative_prune(model, scores.magnitude, density=0.3, rounds=2.0)
    with pytest.raises(TypeError, match="density"):
        iterative_prune(model, scores.magnitude, density="0.3")
    with pytest.raises(ValueError, match="density"):
        iterative_prune(model, scores.magnitude, density=1.5)
    with pytest.raises(TypeError, match="apply=True"):
        iterative_prune(model, scores.magnitude, density=0.3, rescale=True)
    with pytest.raises(TypeError, match="score_fn must return"):
        iterative_prune(model, lambda m: m.parameters(), density=0.3, rounds=1)
    other = Layout.from_model(model, include_bias=True)
    with pytest.raises(ValueError, match="layout"):
        iterative_prune(model, lambda m: scores.magnitude(m, layout=other), density=0.3, rounds=1)
    assert math.isclose(round_densities(0.3, 3)[-1], 0.3)


# ----------------------------------------------------------------------------- incremental rounds
@pytest.mark.parametrize("network, dtype", [("resnet", torch.float64), ("cnn", torch.float32),
                                            ("mlp_no_bias", torch.float64)])
def test_synflow_rounds_equal_the_rescored_copy_every_round(network, dtype):
    """The absolute-valued copy made once and zeroed in place scores exactly what SynFlow of
    a fresh copy of the masked model scores, round after round."""
    make, shape = NETWORKS[network]
    model = make()
    fresh = iterative_prune(model, lambda m: scores.synflow(m, shape, dtype=dtype), density=0.05, rounds=12,
                            kept_count_convention="reference")
    rounds = iterative_prune(model, SynFlowRounds(shape, dtype=dtype), density=0.05, rounds=12,
                             kept_count_convention="reference")
    assert torch.equal(rounds.mask, fresh.mask)
    assert rounds.kept_counts == fresh.kept_counts
    assert torch.equal(rounds.scores[0].values, fresh.scores[0].values)
    assert rounds.scores[0].values.dtype == dtype
    # called on a model, it is the one-shot score
    assert torch.equal(SynFlowRounds(shape, dtype=dtype)(model).values, scores.synflow(model, shape, dtype=dtype).values)


def snapshot(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()},
            {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for n, m in model.named_modules()})


@pytest.mark.parametrize("score_fn", ["synflow_rounds", "snip", "grasp"])
def test_the_loop_leaves_the_model_exactly_as_it_was(score_fn):
    model = MODELS["resnet"][0]()
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    params = list(model.parameters())
    params[0].grad = torch.randn_like(params[0])
    params[-1].requires_grad_(False)
    model.register_forward_pre_hook(lambda module, inputs: None)
    data = batches((3, 8, 8), 4)
    fn = {"synflow_rounds": SynFlowRounds((3, 8, 8)), "snip": lambda m: scores.snip(m, CE, data),
          "grasp": lambda m: scores.grasp(m, CE, data, chunk_size=3)}[score_fn]
    before = snapshot(model)
    iterative_prune(model, fn, density=0.1, rounds=3)
    after = snapshot(model)
    assert after[1] == before[1] and after[3] == before[3]
    for a, b in zip(after[0].values(), before[0].values()):
        assert torch.equal(a, b)
    for name, (flag, grad) in before[2].items():
        assert after[2][name][0] == flag
        assert (after[2][name][1] is None) == (grad is None) and (grad is None or torch.equal(after[2][name][1], grad))


@pytest.mark.parametrize("convention", ["round", "reference"])
def test_local_loop_equals_local_top_k_among_the_previous_mask(convention):
    model = MODELS["resnet"][0]()
    data = batches((3, 8, 8), 4)
    result = iterative_prune(model, lambda m: scores.snip(m, CE, data), density=0.2, rounds=3, scope="local",
                             kept_count_convention=convention)
    # by hand: each round masks a copy, rescoring, and top_k_mask among the previous mask
    work = copy.deepcopy(model)
    layout = Layout.from_model(work)
    kept = torch.ones(len(layout), dtype=torch.bool)
    for density in result.densities:
        with torch.no_grad():
            for tensor, part in zip(layout.trainable(work), layout.split(kept)):
                tensor.mul_(part)
        kept = top_k_mask(scores.snip(work, CE, data), density, scope="local", kept_count_convention=convention,
                          candidates=kept)
    assert torch.equal(result.mask, kept)
    assert result.kept_counts[-1] == int(kept.sum())


def test_the_loop_refuses_nan_among_the_kept_and_ignores_it_among_the_pruned():
    model = MODELS["mlp"][0]()
    calls = []

    def score_fn(m):
        values = scores.magnitude(m).values.clone()
        calls.append(values)
        if len(calls) == 2:
            values[(values == 0).nonzero()[0]] = float("nan")  # a pruned element
        if len(calls) == 3:
            values[values.argmax()] = float("nan")  # a kept element
        return Score(values, Layout.from_model(m), "magnitude")

    with pytest.raises(ValueError, match="NaN"):
        iterative_prune(model, score_fn, density=0.3, rounds=3)
    assert len(calls) == 3


def test_zeroing_entries_of_a_non_contiguous_tensor():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight = nn.Parameter(torch.arange(1.0, 13.0).reshape(4, 3).T)  # a transposed view
    layout = Layout.from_model(model)
    assert not model[0].weight.is_contiguous()
    expected = layout.flatten(layout.values(model)).clone()
    dropped = np.array([0, 4, 11, 13])
    expected[dropped] = 0
    zero_entries(layout.trainable(model), layout, dropped)
    assert torch.equal(layout.flatten(layout.values(model)), expected)
