"""The baselines of 2026: SynFlow-L2, NTK-SAP, |GraSP| and GraSP's original conventions, each
against a reference written here from its paper or from its authors' code."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from torch_adapter import Layout, apply_mask, scores, top_k_mask  # noqa: E402
from torch_models import batches, mlp, random_mask, single_torch_thread, small_resnet  # noqa: E402,F401


# ----------------------------------------------------------------------------- SynFlow-L2
def test_synflow_l2_is_the_l2_path_flow_through_each_weight():
    """For a bias-free ReLU MLP, R_2 = 1^T A_L ... A_1 1 with A_l = W_l * W_l (elementwise), and
    the flow through W_l[i, j] is A_l[i, j] (1^T A_L .. A_{l+1})_i (A_{l-1} .. A_1 1)_j."""
    model = mlp(sizes=(5, 7, 6, 3), bias=False, dtype=torch.float64)
    squares = [m.weight.detach() ** 2 for m in model if isinstance(m, nn.Linear)]
    expected = []
    for layer, square in enumerate(squares):
        below = torch.ones(squares[0].shape[1], dtype=torch.float64)
        for lower in squares[:layer]:
            below = lower @ below
        above = torch.ones(squares[-1].shape[0], dtype=torch.float64)
        for upper in reversed(squares[layer + 1:]):
            above = above @ upper
        expected.append(square * above[:, None] * below[None, :])
    score = scores.synflow_l2(model, (5,))
    torch.testing.assert_close(score.values, torch.cat([e.reshape(-1) for e in expected]), rtol=1e-12, atol=0)
    assert score.name == "synflow_l2"
    assert not torch.equal(top_k_mask(score, 0.2), top_k_mask(scores.synflow(model, (5,)), 0.2))


def test_iterative_synflow_l2_prunes_what_its_rounds_keep():
    model = small_resnet()
    score = scores.synflow_l2(model, (3, 8, 8), iterations=5, final_density=0.1)
    assert int((score.values > 0).sum()) >= round(0.1 * len(score))
    assert score.options["iterations"] == 5
    for _, tensor in model.state_dict().items():  # the caller's model keeps its signs
        if tensor.is_floating_point() and tensor.dim() > 1:
            assert bool((tensor < 0).any())


# ----------------------------------------------------------------------------- NTK-SAP
class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def kaiming(model):
    """The NTK-SAP models' ``_initialize_weights``: Kaiming-normal weights, BatchNorm 1 and 0, biases untouched."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)


def reference_ntk_sap(model, masks, shape, batch_size, rounds, epsilon, seed):
    """``NTKSAP.score`` of github.com/YiteWang/NTK-SAP, written out: masks as tensors the two
    networks share and multiply their weights by, the gradient taken with respect to them."""
    torch.manual_seed(seed)
    net = copy.deepcopy(model)
    names = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    masks = {name: mask.clone().double().requires_grad_(True) for name, mask in zip(names, masks)}
    net_mod = copy.deepcopy(net).eval()
    for module in list(net.modules()) + list(net_mod.modules()):
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 1.0

    def masked(network):
        modules = dict(network.named_modules())
        return {f"{name}.weight": modules[name].weight * masks[name] for name in names}

    net.train()
    for _ in range(rounds):
        kaiming(net)
        inputs = torch.randn((batch_size, *shape), dtype=torch.float64)
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
        with torch.no_grad():
            torch.func.functional_call(net, masked(net), (inputs,))
        net.eval()
        output = torch.func.functional_call(net, masked(net), (inputs,))
        with torch.no_grad():
            modules_mod = dict(net_mod.named_modules())
            for name, module in net.named_modules():
                if name in names:
                    modules_mod[name].weight.copy_(module.weight + epsilon * torch.randn_like(module.weight))
                if isinstance(module, nn.BatchNorm2d):
                    modules_mod[name].running_mean.copy_(module.running_mean)
                    modules_mod[name].running_var.copy_(module.running_var)
        output_mod = torch.func.functional_call(net_mod, masked(net_mod), (inputs,))
        (torch.norm(output - output_mod, dim=-1) ** 2).sum().backward()
        net.train()
    return torch.cat([(masks[n].grad * (masks[n] != 0)).abs().reshape(-1) for n in names])


@pytest.mark.parametrize("pruned", [False, True])
def test_ntk_sap_reproduces_the_authors_score(pruned):
    torch.manual_seed(0)
    model = ConvBN().double()
    kaiming(model)
    layout = Layout.from_model(model)
    mask = random_mask(layout, density=0.6) if pruned else torch.ones(len(layout), dtype=torch.bool)
    expected = reference_ntk_sap(model, [p.double() for p in layout.split(mask)], (2, 5, 5), 6, 3, 0.01, 7)
    if pruned:
        apply_mask(model, mask, layout)
    state = torch.random.get_rng_state()
    score = scores.ntk_sap(model, (2, 5, 5), batch_size=6, rounds=3, epsilon=0.01, seed=7, init=kaiming)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left alone
    torch.testing.assert_close(score.values, expected, rtol=1e-10, atol=1e-14)
    assert bool((score.values[~mask] == 0).all())
    assert not torch.equal(score.values, scores.ntk_sap(model, (2, 5, 5), batch_size=6, rounds=3, seed=8,
                                                        init=kaiming).values)


def test_ntk_sap_checks_its_arguments():
    model = ConvBN()
    with pytest.raises(ValueError, match="epsilon"):
        scores.ntk_sap(model, (2, 5, 5), epsilon=0)
    with pytest.raises(TypeError, match="batch_size"):
        scores.ntk_sap(model, (2, 5, 5), batch_size=2.5)
    with pytest.raises(ValueError, match="final_density"):
        scores.ntk_sap(model, (2, 5, 5), iterations=3)


# ----------------------------------------------------------------------------- GraSP
def reference_grasp_original(model, inputs, targets, temperature, seed):
    """``GraSP`` of github.com/alecwangcq/GraSP (pruner/GraSP.py), written out for one batch:
    a train-mode copy, Xavier-normal Linear weights, the batch in two halves; returns its
    normalised -theta * Hg (it removes the largest)."""
    net = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    weights = []
    for layer in net.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight, generator=generator)
            weights.append(layer.weight)
    n = inputs.shape[0]
    halves = [(inputs[:n // 2], targets[:n // 2]), (inputs[n // 2:], targets[n // 2:])]
    grad_w = None
    for x, y in halves:
        grads = torch.autograd.grad(F.cross_entropy(net(x) / temperature, y), weights)
        grad_w = list(grads) if grad_w is None else [a + b for a, b in zip(grad_w, grads)]
    for x, y in halves:
        grad_f = torch.autograd.grad(F.cross_entropy(net(x) / temperature, y), weights, create_graph=True)
        sum((gw.data * gf).sum() for gw, gf in zip(grad_w, grad_f)).backward()
    values = torch.cat([(-w.data * w.grad).reshape(-1) for w in weights])
    return values / (values.sum().abs() + 1e-10)


def test_grasp_original_conventions_reproduce_the_authors_score():
    model = small_resnet(dtype=torch.float64)
    (inputs, targets), = batches((3, 8, 8), 4, n_batches=1, batch_size=8, dtype=torch.float64)
    expected = reference_grasp_original(model, inputs, targets, 200.0, seed=3)
    score = scores.grasp(model, nn.CrossEntropyLoss(), [(inputs, targets)], conventions="original", seed=3,
                         normalize=True)
    torch.testing.assert_close(score.values, -expected, rtol=1e-9, atol=1e-15)
    assert score.options["train"] is True and score.options["conventions"] == "original"
    package = scores.grasp(model, nn.CrossEntropyLoss(), [(inputs, targets)], normalize=True)
    assert not torch.allclose(package.values, score.values)
    with pytest.raises(ValueError, match="conventions"):
        scores.grasp(model, nn.CrossEntropyLoss(), [(inputs, targets)], conventions="paper")
    with pytest.raises(ValueError, match="two halves"):
        scores.grasp(model, nn.CrossEntropyLoss(), [(inputs[:1], targets[:1])], conventions="original")


def test_absolute_grasp_is_the_magnitude_of_theta_hg():
    model = small_resnet(dtype=torch.float64)
    data = batches((3, 8, 8), 4, dtype=torch.float64)
    signed = scores.grasp(model, nn.CrossEntropyLoss(), data)
    absolute = scores.grasp(model, nn.CrossEntropyLoss(), data, absolute=True, normalize=True)
    torch.testing.assert_close(absolute.values, signed.values.abs() / (signed.values.abs().sum() + 1e-10),
                               rtol=1e-12, atol=0)
    assert bool((signed.values < 0).any()) and absolute.options["absolute"] is True


# ----------------------------------------------------------------------------- bench registry
def test_the_baselines_are_registered_for_bench_train():
    from bench import train_methods
    from torch_adapter import layer_budgets
    from torch_models import small_cnn

    assert {"synflow-l2", "ntk-sap", "prospr", "grasp-abs", "grasp-original", "random-erk",
            "random-uniform"} \
        <= set(train_methods.METHODS)
    assert not {"ntk-sap", "random-erk"} & set(train_methods.DEFAULT_METHODS)  # run when named
    model = small_cnn()
    layout = Layout.from_model(model)
    problem = train_methods.Problem(model, layout, nn.CrossEntropyLoss(), batches((1, 8, 8), 3), (1, 8, 8), 0.1, 0)
    for distribution in ("erk", "uniform"):
        selection = train_methods.get_method(f"random-{distribution}").select(problem)
        assert [s.kept for s in selection.layers] == layer_budgets(layout, 0.1, distribution).tolist()
    selection = train_methods.get_method("grasp-abs").select(problem)
    expected = top_k_mask(scores.grasp(model, nn.CrossEntropyLoss(), problem.batches, absolute=True), 0.1)
    assert torch.equal(selection.mask, expected)


# ----------------------------------------------------------------------------- ProsPr
def reference_prospr(model, data, steps, lr, masks):
    """``prospr.prune`` of github.com/mil-ad/prospr (method "full", no momentum, one batch),
    written out: fast parameters (prunable weights times their mask parameter, the others
    cloned), SGD steps through the graph, the gradient of the last loss to the masks."""
    net = copy.deepcopy(model).train()
    x, y = data
    fast, mask_of = [], {}
    for name, param in net.named_parameters():
        module = net.get_submodule(name.rpartition(".")[0])
        if name.endswith(".weight") and isinstance(module, (nn.Linear, nn.Conv2d)):
            mask_of[name] = masks[len(mask_of)].clone().requires_grad_(True)
            fast.append(param * mask_of[name])
        else:
            fast.append(param.clone())
    names = [name for name, _ in net.named_parameters()]
    for _ in range(steps):
        loss = F.cross_entropy(torch.func.functional_call(net, dict(zip(names, fast)), (x,)), y)
        grads = torch.autograd.grad(loss, fast, create_graph=True)
        fast = [p - lr * g for p, g in zip(fast, grads)]
    loss = F.cross_entropy(torch.func.functional_call(net, dict(zip(names, fast)), (x,)), y)
    return torch.cat([g.abs().reshape(-1) for g in torch.autograd.grad(loss, list(mask_of.values()))])


def test_prospr_reproduces_the_authors_meta_gradient():
    model = mlp(sizes=(6, 8, 5, 3), dtype=torch.float64)
    layout = Layout.from_model(model)
    data = batches((6,), 3, n_batches=1, batch_size=7, dtype=torch.float64)
    expected = reference_prospr(model, data[0], 3, 0.1, [torch.ones(s, dtype=torch.float64) for s in layout.shapes])
    score = scores.prospr(model, nn.CrossEntropyLoss(), data, steps=3, lr=0.1)
    torch.testing.assert_close(score.values, expected, rtol=1e-10, atol=1e-15)

    # a pruned model: its pruned weights stay 0 in the steps; the meta-gradient by central
    # differences of the whole 3-step training loop of the masked model, for a few entries
    mask = random_mask(layout, density=0.7)
    apply_mask(model, mask, layout)
    score = scores.prospr(model, nn.CrossEntropyLoss(), data, steps=3, lr=0.1)
    assert bool((score.values[~mask] == 0).all())

    def final_loss(scale):
        net = copy.deepcopy(model)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        with torch.no_grad():
            net[0].parametrizations.weight.original.mul_(scale)
        for _ in range(4):
            optimizer.zero_grad()
            loss = F.cross_entropy(net(data[0][0]), data[0][1])
            loss.backward()
            optimizer.step()
        return float(loss.detach())  # the loss before the 4th step: after 3 steps

    for j in torch.nonzero(mask[:48]).flatten()[:3].tolist():
        h = 1e-6
        up, down = torch.ones(48, dtype=torch.float64), torch.ones(48, dtype=torch.float64)
        up[j], down[j] = 1 + h, 1 - h
        numeric = (final_loss(up.view(8, 6)) - final_loss(down.view(8, 6))) / (2 * h)
        assert abs(abs(numeric) - float(score.values[j])) <= 1e-6 * max(1.0, abs(numeric))


def test_prospr_checks_its_arguments():
    model = mlp()
    data = batches((6,), 3)
    with pytest.raises(ValueError, match="steps"):
        scores.prospr(model, nn.CrossEntropyLoss(), data, steps=0)
    with pytest.raises(ValueError, match="lr must be"):
        scores.prospr(model, nn.CrossEntropyLoss(), data, lr=-1.0)
    with pytest.raises(ValueError, match="empty"):
        scores.prospr(model, nn.CrossEntropyLoss(), [])
