"""A pruned model under torch.compile: the eager outputs and gradients, and SGD steps that
keep pruned weights at 0 and frozen ones at their initial values.

One small model carries both kinds of parametrization (its first layer frozen, the others
masked), so that one compilation checks both. ``backend="aot_eager"`` always (it traces
through the parametrizations into an FX graph, forward and backward, as inductor does);
``inductor`` generates and compiles C++ for the CPU, which takes over a minute here: it runs
when ``COPSLP_TEST_INDUCTOR=1``.
"""

import copy
import os
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from torch_adapter import Layout, apply_mask  # noqa: E402
from torch_models import batches, random_mask, single_torch_thread, small_cnn  # noqa: E402,F401

CE = nn.CrossEntropyLoss()

BACKENDS = [
    "aot_eager",
    pytest.param("inductor", marks=pytest.mark.skipif(
        os.environ.get("COPSLP_TEST_INDUCTOR") != "1",
        reason="inductor compiles C++ for the CPU (over a minute here); set COPSLP_TEST_INDUCTOR=1 to run it")),
]


def pruned_model():
    model = small_cnn()
    layout = Layout.from_model(model)
    frozen = Layout([layout.entries[0]])
    masked = Layout([replace(e, offset=e.offset - layout.entries[1].offset) for e in layout.entries[1:]])
    freeze_mask, mask = random_mask(frozen, density=0.5, seed=1), random_mask(masked, density=0.3, seed=2)
    apply_mask(model, freeze_mask, frozen, mode="freeze")
    apply_mask(model, mask, masked)
    return model, layout, torch.cat([freeze_mask, mask])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_pruned_model_computes_and_trains_as_the_eager_one(backend):
    model, layout, mask = pruned_model()
    eager = copy.deepcopy(model)
    initial = [v.detach().clone() for v in layout.values(model)]
    compiled = torch.compile(model, backend=backend)
    data = batches((1, 8, 8), 3, n_batches=3)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if backend == "inductor" else {"rtol": 0, "atol": 0}

    x, y = data[0]
    torch.testing.assert_close(compiled(x), eager(x), **tolerance)
    grads = torch.autograd.grad(CE(compiled(x), y), layout.trainable(model))
    expected = torch.autograd.grad(CE(eager(x), y), layout.trainable(eager))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, **tolerance)

    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01) for m in (model, eager)]
    for x, y in data:
        for run, optimizer in zip((compiled, eager), optimizers):
            optimizer.zero_grad()
            CE(run(x), y).backward()
            optimizer.step()
    torch.testing.assert_close(compiled(x), eager(x), **tolerance)
    first = layout.entries[0].numel
    for entry, value, part, before in zip(layout.entries, layout.values(model), layout.split(mask), initial):
        expected = before if entry.offset < first else torch.zeros_like(before)  # frozen, then pruned
        assert torch.equal(value.detach()[~part], expected[~part]), entry.name
        assert not torch.equal(value.detach()[part], before[part]), entry.name
