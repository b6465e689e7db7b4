"""Scores: each equals an independent computation, and the caller's model is left alone."""

import copy
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from torch_adapter import Layout, Score, SynFlowUnderflowWarning, scores  # noqa: E402
from torch_models import MODELS, batches, mlp, small_cnn, small_resnet, single_torch_thread  # noqa: E402,F401

CE = nn.CrossEntropyLoss()


def build(name, dtype=torch.float32):
    make, shape, classes = MODELS[name]
    return make(dtype=dtype), shape, classes


# ----------------------------------------------------------------------------- references
def reference_snip(model, data, *, train=False):
    """|theta * sum_b dL_b/dtheta| by plain loss.backward() on a copy."""
    m = copy.deepcopy(model)
    m.train(train)
    m.zero_grad(set_to_none=True)
    for p in m.parameters():
        p.requires_grad_(True)
    for x, y in data:
        CE(m(x), y).backward()
    return {n: (p * p.grad).abs() for n, p in m.named_parameters()}


def total_gradient(model, layout, values, data, temperature):
    """sum_b d/dtheta loss(model(x_b) / T, y_b) with the layout tensors set to ``values``."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p, v in zip(layout.trainable(m), layout.split(values)):
            p.copy_(v)
    m.zero_grad(set_to_none=True)
    for x, y in data:
        CE(m(x) / temperature, y).backward()
    return layout.flatten([p.grad for p in layout.trainable(m)])


def synflow_closed_form(weights):
    """Bias-free ReLU MLP with |W| and a ones input: dR/dW_l = a_l b_l^T, score |W_l| * a_l b_l^T.

    R = 1^T |W_L| ... |W_1| 1, a_l = (|W_L| ... |W_{l+1}|)^T 1, b_l = |W_{l-1}| ... |W_1| 1.
    """
    w = [x.abs().to(torch.float64) for x in weights]
    out = []
    for l in range(len(w)):
        b = torch.ones(w[0].shape[1], dtype=torch.float64)
        for below in w[:l]:
            b = below @ b
        a = torch.ones(w[-1].shape[0], dtype=torch.float64)
        for above in reversed(w[l + 1:]):
            a = above.T @ a
        out.append(w[l] * torch.outer(a, b))
    return out


# ----------------------------------------------------------------------------- model unchanged
def snapshot(model):
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "modes": {n: m.training for n, m in model.named_modules()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "ids": {n: id(p) for n, p in model.named_parameters()},
        "hooks": {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
                  for n, m in model.named_modules()},
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["modes"] == before["modes"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["ids"] == before["ids"]
    assert after["hooks"] == before["hooks"]
    assert after["state"].keys() == before["state"].keys()
    for k in before["state"]:
        assert torch.equal(after["state"][k], before["state"][k]), k
    for n, g in before["grads"].items():
        if g is None:
            assert after["grads"][n] is None, n
        else:
            assert torch.equal(after["grads"][n], g), n


SCORE_CALLS = {
    "magnitude": lambda m, shape, data: scores.magnitude(m),
    "random": lambda m, shape, data: scores.random(m, seed=3),
    "snip": lambda m, shape, data: scores.snip(m, CE, data),
    "snip_train": lambda m, shape, data: scores.snip(m, CE, data, train=True),
    "grasp": lambda m, shape, data: scores.grasp(m, CE, data),
    "grasp_train": lambda m, shape, data: scores.grasp(m, CE, data, train=True),
    "synflow": lambda m, shape, data: scores.synflow(m, shape),
    "synflow_iterative": lambda m, shape, data: scores.synflow(m, shape, iterations=3, final_density=0.3),
    "grasp_chunked": lambda m, shape, data: scores.grasp(m, CE, data, chunk_size=2),
    "synflow_l2": lambda m, shape, data: scores.synflow_l2(m, shape),
    "ntk_sap": lambda m, shape, data: scores.ntk_sap(m, shape, batch_size=4),
    "prospr": lambda m, shape, data: scores.prospr(m, CE, data, steps=2),
}


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("call", sorted(SCORE_CALLS))
@pytest.mark.parametrize("start_mode", ["train", "mixed"])
def test_scoring_leaves_the_model_exactly_as_it_was(model_name, call, start_mode):
    model, shape, classes = build(model_name)
    model.train(True)
    if start_mode == "mixed":
        list(model.modules())[-1].eval()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
                break
    params = list(model.parameters())
    params[0].grad = torch.randn_like(params[0])  # a stale gradient must survive
    params[-1].requires_grad_(False)              # a frozen prunable weight or bias
    seen = []
    list(model.modules())[1].register_forward_hook(lambda module, inputs, output: seen.append(1))
    data = batches(shape, classes)
    before = snapshot(model)
    score = SCORE_CALLS[call](model, shape, data)
    assert_unchanged(model, before)
    assert isinstance(score, Score) and score.values.shape == (len(Layout.from_model(model)),)
    assert torch.isfinite(score.values).all()


@pytest.mark.parametrize("call", ["magnitude", "random", "snip", "grasp", "synflow", "synflow_l2", "ntk_sap", "prospr"])
def test_a_misspelt_keyword_names_the_score_and_the_keyword(call):
    """Extra keywords of a score go to Layout.from_model; one that neither takes is a TypeError
    that names the score called and the keyword, before any work (it used to name
    Layout.from_model)."""
    model, shape, classes = build("mlp")
    data = batches(shape, classes)
    arguments = {"snip": (CE, data), "grasp": (CE, data), "prospr": (CE, data), "synflow": (shape,),
                 "synflow_l2": (shape,), "ntk_sap": (shape,)}.get(call, ())
    with pytest.raises(TypeError, match=rf"^{call}\(\) got an unexpected keyword argument 'include_bais'"):
        getattr(scores, call)(model, *arguments, include_bais=True)


# ----------------------------------------------------------------------------- each score
def test_magnitude_and_random():
    model = small_cnn()
    layout = Layout.from_model(model)
    mag = scores.magnitude(model)
    assert torch.equal(mag.values, layout.flatten([p.abs() for p in layout.values(model)]))
    assert mag.name == "magnitude" and mag.values.dtype == torch.float32
    state = torch.get_rng_state()
    r1, r2, r3 = scores.random(model, seed=5), scores.random(model, seed=5), scores.random(model, seed=6)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert torch.equal(r1.values, r2.values) and not torch.equal(r1.values, r3.values)
    assert bool(((r1.values >= 0) & (r1.values < 1)).all())


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("train", [False, True])
def test_snip_equals_direct_autograd(model_name, train):
    model, shape, classes = build(model_name)
    data = batches(shape, classes, n_batches=3)
    score = scores.snip(model, CE, data, train=train)
    expected = reference_snip(model, data, train=train)
    for name, value in score.per_tensor().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-7)
    normalized = scores.snip(model, CE, data, train=train, normalize=True)
    torch.testing.assert_close(normalized.values, score.values / score.values.sum())
    assert float(normalized.values.sum()) == pytest.approx(1.0, rel=1e-5)


def test_snip_with_bias_and_float64_under_no_grad():
    model = small_cnn(dtype=torch.float64)
    data = batches((1, 8, 8), 3)  # float32 inputs are cast to the model's dtype
    with torch.no_grad():
        score = scores.snip(model, CE, data, include_bias=True)
    assert score.values.dtype == torch.float64
    assert score.layout.names[1] == "0.bias"
    expected = reference_snip(model, [(x.double(), y) for x, y in data])
    for name, value in score.per_tensor().items():
        torch.testing.assert_close(value, expected[name])


def pruned_and_baked_cnn():
    """A small CNN pruned with torch.nn.utils.prune, and a plain copy with the zeros baked in."""
    model = small_cnn()
    baked = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    for index in (0, 2):
        mask = torch.rand(model[index].weight.shape, generator=generator) > 0.4
        prune.custom_from_mask(model[index], "weight", mask)
        with torch.no_grad():
            baked[index].weight.mul_(mask)
    return model, baked


def test_scores_of_an_already_pruned_model_equal_those_of_the_baked_model():
    model, baked = pruned_and_baked_cnn()
    data = batches((1, 8, 8), 3)
    score = scores.snip(model, CE, data)
    expected = reference_snip(baked, data)
    for name, value in score.per_tensor().items():
        torch.testing.assert_close(value, expected[name])
    assert bool((score.per_tensor()["0.weight"][~model[0].weight_mask.bool()] == 0).all())
    torch.testing.assert_close(scores.synflow(model, (1, 8, 8)).values, scores.synflow(baked, (1, 8, 8)).values)
    torch.testing.assert_close(scores.magnitude(model).values, scores.magnitude(baked).values)
    before = snapshot(model)
    scores.grasp(model, CE, data, train=True)
    assert_unchanged(model, before)


@pytest.mark.parametrize("model_name", ["tanh_mlp", "resnet"])
def test_grasp_hessian_gradient_matches_finite_differences(model_name):
    if model_name == "tanh_mlp":
        model, shape, classes = mlp(activation=nn.Tanh, dtype=torch.float64), (6,), 3
    else:
        model, shape, classes = small_resnet(dtype=torch.float64), (3, 8, 8), 4
    model.eval()
    data = batches(shape, classes, n_batches=2, dtype=torch.float64)
    temperature = 3.0
    score = scores.grasp(model, CE, data, temperature=temperature)
    layout = score.layout
    theta = layout.flatten(layout.values(model)).detach()
    g = total_gradient(model, layout, theta, data, temperature)
    eps = 1e-5 / float(g.norm())
    hg = (total_gradient(model, layout, theta + eps * g, data, temperature)
          - total_gradient(model, layout, theta - eps * g, data, temperature)) / (2 * eps)
    expected = theta * hg
    scale = float(expected.abs().max())
    torch.testing.assert_close(score.values, expected, rtol=1e-5, atol=1e-6 * scale)
    assert bool((score.values < 0).any()) and bool((score.values > 0).any())  # signed, no abs()
    normalized = scores.grasp(model, CE, data, temperature=temperature, normalize=True)
    assert torch.equal(normalized.values, score.values / (score.values.sum().abs() + 1e-10))


def test_normalisation_of_an_exact_zero_sum():
    """GraSP divides by |sum| + 1e-10 as the reference does (never returns the raw scores); SNIP
    cannot divide by a zero sum and says so."""
    signed = torch.tensor([1.0, -1.0, 2.0, -2.0], dtype=torch.float64)
    assert float(signed.sum()) == 0.0
    assert torch.equal(scores._grasp_normalized(signed), signed / 1e-10)
    model = mlp(bias=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    with pytest.raises(ValueError, match="normalize=True divides by the sum"):
        scores.snip(model, CE, batches((6,), 3), normalize=True)


def test_synflow_equals_closed_form_for_bias_free_mlp():
    model = mlp(sizes=(5, 7, 4, 3), bias=False)
    weights = [m.weight.detach().clone() for m in model if isinstance(m, nn.Linear)]
    score = scores.synflow(model, (5,))
    assert score.values.dtype == torch.float64
    layout = score.layout
    torch.testing.assert_close(score.values, layout.flatten(synflow_closed_form(weights)), rtol=1e-12, atol=0)
    single = scores.synflow(model, (5,), dtype=torch.float32)
    assert single.values.dtype == torch.float32
    torch.testing.assert_close(single.values.double(), score.values, rtol=1e-5, atol=0)
    # the caller's model still has its signed weights
    assert any(bool((m.weight < 0).any()) for m in model if isinstance(m, nn.Linear))


def test_iterative_synflow_equals_the_closed_form_loop():
    model = mlp(sizes=(5, 7, 4, 3), bias=False)
    weights = [m.weight.detach().to(torch.float64).abs() for m in model if isinstance(m, nn.Linear)]
    layout = Layout.from_model(model)
    size, rounds, final = len(layout), 4, 0.1
    kept = torch.ones(size, dtype=torch.float64)
    for r in range(1, rounds + 1):
        current = [w * k for w, k in zip(weights, layout.split(kept))]
        expected = layout.flatten(synflow_closed_form(current))
        if r < rounds:
            k = max(1, round(final ** (r / rounds) * size))
            kept = torch.zeros(size, dtype=torch.float64)
            kept[torch.topk(expected, k).indices] = 1.0
    score = scores.synflow(model, (5,), iterations=rounds, final_density=final)
    torch.testing.assert_close(score.values, expected, rtol=1e-12, atol=0)
    assert int((score.values > 0).sum()) <= round(final ** ((rounds - 1) / rounds) * size)
    assert int((score.values > 0).sum()) >= round(final * size)
    with pytest.raises(ValueError, match="final_density"):
        scores.synflow(model, (5,), iterations=3)


def test_synflow_float32_underflow_warns_and_float64_does_not():
    model = mlp(sizes=(3,) * 40, bias=False)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(1e-3)
    with pytest.warns(SynFlowUnderflowWarning):
        scores.synflow(model, (3,), dtype=torch.float32)
    score = scores.synflow(model, (3,))
    assert bool((score.values > 0).all())


def test_synflow_takes_abs_of_buffers():
    """BatchNorm with negative running mean: the copy uses |mean| (eval mode)."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0]]))
        model[1].running_mean.copy_(torch.tensor([-1.0, 2.0]))
        model[1].running_var.copy_(torch.tensor([4.0, 1.0]))
        model[1].weight.copy_(torch.tensor([-1.0, 2.0]))
        model[1].bias.zero_()
        model[2].weight.copy_(torch.tensor([[3.0, -1.0]]))
    score = scores.synflow(model, (2,))
    # by hand, with abs() of every parameter and buffer and no activation:
    # h = |W0| 1, z = |gamma| (h - |mu|) / sqrt(|var| + eps), R = |W2| z
    f64 = functools.partial(torch.tensor, dtype=torch.float64)
    scale = f64([1.0, 2.0]) / torch.sqrt(f64([4.0, 1.0]) + model[1].eps)
    w0, w2 = f64([[1.0, 2.0], [0.5, 1.0]]), f64([[3.0, 1.0]])
    z = scale * (w0 @ torch.ones(2, dtype=torch.float64) - f64([1.0, 2.0]))
    assert z[1] < 0  # |mu| matters: with mu itself z would be positive
    expected0 = w0 * torch.outer(w2[0] * scale, torch.ones(2, dtype=torch.float64))  # dR/dW0 = (|W2| * scale)^T 1^T
    expected2 = (w2 * z[None, :]).abs()                                             # dR/dW2 = z^T
    torch.testing.assert_close(score.values, score.layout.flatten([expected0, expected2]))


def test_scores_stay_on_the_model_device_and_dtype():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        model = small_resnet().to(device)
        data = batches((3, 8, 8), 4)
        for score in (scores.magnitude(model), scores.random(model), scores.snip(model, CE, data),
                      scores.grasp(model, CE, data), scores.synflow(model, (3, 8, 8))):
            assert score.values.device.type == device
            assert score.numpy().dtype == np.float64
        assert scores.snip(model, CE, data).values.dtype == torch.float32
        assert scores.synflow(model, (3, 8, 8), dtype=None).values.dtype == torch.float32


def test_bad_inputs():
    model = small_cnn()
    data = batches((1, 8, 8), 3)
    with pytest.raises(ValueError, match="empty"):
        scores.snip(model, CE, [])
    with pytest.raises(ValueError, match="empty"):
        scores.grasp(model, CE, iter([]))
    with pytest.raises(TypeError, match="pairs"):
        scores.snip(model, CE, [data[0][0]])
    with pytest.raises(ValueError, match="scalar"):
        scores.snip(model, nn.CrossEntropyLoss(reduction="none"), data)
    with pytest.raises(ValueError, match="temperature"):
        scores.grasp(model, CE, data, temperature=0)
    with pytest.raises(TypeError, match="layout"):
        scores.magnitude(model, layout=Layout.from_model(model), include_bias=True)
    with pytest.raises(ValueError, match="shape"):
        Score(torch.zeros(3), Layout.from_model(model), "x")
    before = snapshot(model)
    with pytest.raises(ValueError, match="scalar"):
        scores.grasp(model, nn.CrossEntropyLoss(reduction="none"), data, train=True)
    assert_unchanged(model, before)  # restored on error too


# ----------------------------------------------------------------------------- GraSP in chunks
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_grasp_in_chunks_gives_the_unchunked_score(dtype, tolerance):
    model, shape, classes = build("resnet", dtype)
    model.eval()
    data = batches(shape, classes, n_batches=2, batch_size=7, dtype=dtype)
    whole = scores.grasp(model, CE, data)
    scale = float(whole.values.abs().max())
    for chunk in (1, 3, 7, 100):
        sliced = scores.grasp(model, CE, data, chunk_size=chunk)
        assert float((sliced.values - whole.values).abs().max()) <= tolerance * scale, chunk
        assert sliced.options["chunk_size"] == chunk
    # not the same computation: a slice of 3 from 7 samples gives other rounding in float32
    normalized = scores.grasp(model, CE, data, chunk_size=3, normalize=True)
    assert torch.allclose(normalized.values, scores.grasp(model, CE, data, normalize=True).values,
                          rtol=0, atol=tolerance * float(normalized.values.abs().max()))


def test_grasp_chunks_are_refused_where_they_would_change_the_score():
    model, shape, classes = build("cnn")
    data = batches(shape, classes)
    summed = nn.CrossEntropyLoss(reduction="sum")
    with pytest.raises(ValueError, match="not a mean over the samples"):
        scores.grasp(model, summed, data, chunk_size=2)
    scores.grasp(model, summed, data)  # unchunked, any loss is fine
    with pytest.raises(ValueError, match="train=True"):
        scores.grasp(model, CE, data, chunk_size=2, train=True)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        scores.grasp(model, CE, data, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        scores.grasp(model, CE, data, chunk_size=2.0)
    with pytest.raises(TypeError, match="chunk_size slices"):
        scores.grasp(model, CE, [((x, x), y) for x, y in data], chunk_size=2)


def test_gradients_summed_over_batches_when_autograd_shares_or_expands_them():
    """An addition hands one gradient tensor to both weights, a sum an expanded one: summing
    batches in place must not add into them twice (or fail)."""

    class Added(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)

        def forward(self, x):
            return x @ (self.a.weight + self.b.weight)

    model = Added()
    data = [(torch.randn(2, 3), torch.tensor([0, 1])) for _ in range(3)]
    for loss in (lambda out, y: out.sum(), lambda out, y: (out * out).mean()):
        expected = []
        for p in (model.a.weight, model.b.weight):
            g = sum(torch.autograd.grad(loss(model(x), y), p)[0] for x, y in data)
            expected.append((p * g).abs().reshape(-1))
        torch.testing.assert_close(scores.snip(model, loss, data).values, torch.cat(expected))
