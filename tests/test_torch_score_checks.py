"""Scores that say nothing, and inputs the score functions cannot use: named warnings and errors."""

import warnings

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from torch_adapter import scores  # noqa: E402
from torch_adapter.scores import ConstantScoreWarning, SynFlowUnderflowWarning  # noqa: E402
from torch_models import ZOO, batches, mlp, single_torch_thread, tied_language_model, token_batches  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def zero_head_mlp():
    model = mlp(bias=False)
    with torch.no_grad():
        model[-1].weight.zero_()
    return model


# ---------------------------------------------------------------------------- scores that say nothing


def test_snip_of_a_zero_initialised_head_is_all_zero_and_warned_about():
    model = zero_head_mlp()
    with pytest.warns(ConstantScoreWarning, match=r"snip scores are all 0.*zero"):
        score = scores.snip(model, CE, batches((6,), 3))
    assert not bool(score.values.any())


def test_constant_magnitude_is_warned_about():
    model = mlp()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(0.5)
    with pytest.warns(ConstantScoreWarning, match=r"magnitude scores are all 0.5"):
        scores.magnitude(model)


def test_informative_scores_are_not_warned_about():
    model = mlp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores.magnitude(model)
        scores.snip(model, CE, batches((6,), 3))
        scores.synflow(model, (6,))


def test_synflow_all_zero_in_float64_gives_the_real_cause():
    with pytest.warns(SynFlowUnderflowWarning) as record:
        scores.synflow(zero_head_mlp(), (6,))
    message = str(record[0].message)
    assert "float64" in message and "dtype=torch.float64" not in message
    assert "blocks every path" in message


def test_synflow_underflow_in_float32_advises_float64():
    torch.manual_seed(0)
    deep = nn.Sequential(*[nn.Linear(8, 8, bias=False) for _ in range(60)])
    with torch.no_grad():
        for layer in deep:
            layer.weight.mul_(1e-2)
    with pytest.warns(SynFlowUnderflowWarning, match=r"all zero: they underflowed; use dtype=torch.float64"):
        scores.synflow(deep, (8,), dtype=torch.float32)


def test_synflow_overflow_in_float64_does_not_advise_float64():
    torch.manual_seed(0)
    deep = nn.Sequential(*[nn.Linear(8, 8, bias=False) for _ in range(40)])
    with torch.no_grad():
        for layer in deep:
            layer.weight.fill_(1e9)
    with pytest.warns(SynFlowUnderflowWarning, match="not finite") as record:
        scores.synflow(deep, (8,))
    assert "dtype=torch.float64" not in str(record[0].message)


# ---------------------------------------------------------------------------- GraSP through hard activations


class FunctionalHardsigmoid(nn.Module):
    def forward(self, x):
        return nn.functional.hardsigmoid(x)


class ClampHardsigmoid(nn.Module):
    def forward(self, x):
        return torch.clamp(x + 3, 0, 6) / 6


def gated_mlp(activation):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Hardswish(), nn.Linear(8, 8), activation, nn.Linear(8, 3))


def test_grasp_through_hardsigmoid_and_hardswish_equals_the_clamp_formula():
    data = batches((6,), 3)
    model = gated_mlp(nn.Hardsigmoid())
    score = scores.grasp(model, CE, data)
    reference = scores.grasp(gated_mlp(ClampHardsigmoid()), CE, data)
    assert torch.allclose(score.values, reference.values, rtol=1e-5, atol=1e-12)
    assert bool(score.values.any())
    assert "forward" not in vars(model[3])  # the swap is undone


def test_grasp_through_a_functional_hardsigmoid_names_the_cause():
    with pytest.raises(NotImplementedError, match=r"second derivatives.*hardsigmoid.*clamp\(x \+ 3, 0, 6\) / 6"):
        scores.grasp(gated_mlp(FunctionalHardsigmoid()), CE, batches((6,), 3))


# ---------------------------------------------------------------------------- inputs the scores cannot use


def test_synflow_on_an_embedding_model_says_why():
    with pytest.raises(RuntimeError, match=r"synflow.*float64 tensor of shape \(1, 7\).*embedding layers \('embed'\)"):
        scores.synflow(tied_language_model(), (7,))


def test_snip_with_float_token_ids_says_embeddings_take_integers():
    data = [(ids.float(), targets) for ids, targets in token_batches()]
    with pytest.raises(RuntimeError, match=r"snip.*embedding layers \('embed'\), which take integer ids"):
        scores.snip(tied_language_model(), CE, data)


def test_snip_on_token_ids_works():
    score = scores.snip(tied_language_model(), CE, token_batches())
    assert bool(score.values.any())


@pytest.mark.parametrize("shape", [784, "784", (6.0,), [True]])
def test_synflow_input_shape_must_be_a_sequence_of_ints(shape):
    with pytest.raises(TypeError, match=r"input_shape must be the shape of one sample.*\(784,\)"):
        scores.synflow(mlp(), shape)


def test_synflow_input_shape_sizes_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        scores.synflow(mlp(), (0,))


@pytest.mark.parametrize("iterations", [2.7, 2.0, "2", True])
def test_synflow_iterations_must_be_an_int(iterations):
    with pytest.raises(TypeError, match=rf"iterations must be an int >= 1, got {iterations!r}"):
        scores.synflow(mlp(), (6,), iterations=iterations, final_density=0.5)


@pytest.mark.parametrize("seed", [None, 1.5, "0"])
def test_random_seed_must_be_an_int(seed):
    with pytest.raises(TypeError, match=rf"seed must be an int.*got {seed!r}"):
        scores.random(mlp(), seed=seed)


@pytest.mark.parametrize("score", ["magnitude", "random", "snip", "grasp", "synflow"])
def test_a_meta_device_model_is_refused_by_every_score(score):
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    calls = {
        "magnitude": lambda: scores.magnitude(model),
        "random": lambda: scores.random(model),
        "snip": lambda: scores.snip(model, CE, batches((6,), 3)),
        "grasp": lambda: scores.grasp(model, CE, batches((6,), 3)),
        "synflow": lambda: scores.synflow(model, (6,)),
    }
    with pytest.raises(ValueError, match=r"0\.weight is on the meta device.*to_empty"):
        calls[score]()


@pytest.mark.parametrize("name", ["transformer", "vit"])
def test_grasp_through_attention(name):
    """Regression: the fused attention kernels have no double backward ("derivative for
    aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"); GraSP
    runs attention on its math backend, the same function."""
    make, shape, classes = ZOO[name]
    model = make()
    score = scores.grasp(model, nn.CrossEntropyLoss(), batches(shape, classes), warn_left_out=False)
    assert bool(torch.isfinite(score.values).all()) and bool((score.values != 0).any())
