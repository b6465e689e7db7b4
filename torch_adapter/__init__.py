r"""torch_adapter: pruning scores out of torch models, COPS masks back into them.

A thin layer around :func:`copslp.solve` (which never sees torch):

>>> from torch_adapter import scores, prune_with_cops                      # doctest: +SKIP
>>> s_snip = scores.snip(model, nn.CrossEntropyLoss(), batches)             # doctest: +SKIP
>>> s_flow = scores.synflow(model, input_shape=(3, 32, 32))                 # doctest: +SKIP
>>> report = prune_with_cops(model, [s_snip, s_flow], 0.01, gamma=0.9)  # doctest: +SKIP
>>> print(report.table())                                                   # doctest: +SKIP

Conventions
-----------
Which parameters
    By default the ``weight`` of every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` and the raw
    ``in_proj_weight`` (or ``q/k/v_proj_weight``) of every ``nn.MultiheadAttention``; biases
    (``include_bias=True``), named modules (``exclude=``), other module types (``types=``),
    raw weights (``raw_weights=``) and any parameter by name (``parameters=``) are options of
    :meth:`Layout.from_model`, which warns (:class:`LeftOutWeightsWarning`) about the
    weight-like parameters left out. A tied tensor is one entry (its other places are its
    ``aliases``). The flat order is ``model.named_modules()`` order, weight before bias, each
    tensor row-major.
Scores (:mod:`torch_adapter.scores`)
    Flat tensors of length D on the model's device; larger is better for every score.
    ``magnitude = |theta|``; ``random`` uniform [0, 1) from a seeded CPU generator;
    ``snip = |theta * sum_b dL_b/dtheta|`` (``normalize=True`` divides by the sum);
    ``grasp = theta * (H g)``, **signed**, keep the largest (the paper's ``-theta * Hg``
    with its largest removed), logits divided by ``temperature`` (200);
    ``synflow = |theta * dR/dtheta|`` on an absolute-valued float64 copy with an all-ones
    input, ``R`` the sum of the outputs; ``iterations > 1`` with ``final_density`` gives the
    iterative variant (exponential schedule, pruned weights score 0).
    ``synflow_l2`` is SynFlow on the squared weights; ``ntk_sap`` the mask gradient of the
    output change under a weight perturbation (random inputs, re-initialised copies);
    ``grasp(absolute=True)`` is |GraSP|, ``grasp(conventions="original")`` the authors' code;
    ``prospr`` the meta-gradient of the loss after a few SGD steps with respect to the mask.
    Data-driven scores run in ``eval()`` mode unless ``train=True`` and leave the caller's
    model exactly as it was (values, buffers, modes, ``requires_grad``, ``.grad``).
Masks (:mod:`torch_adapter.masks`)
    ``mode="mask"`` reparametrises each tensor as ``where(mask, original, 0)`` with
    :mod:`torch.nn.utils.parametrize` (recomputed at every access, so attention layers that
    read their submodules' weights directly train correctly; never ``global_unstructured``,
    which takes abs() of the scores); ``mode="freeze"`` (FreezeNet, Wimmer, Mehnert and
    Condurache, ACCV 2020) keeps unselected weights
    at their current values and no optimiser can move them. Masks already on the model
    (also from :mod:`torch.nn.utils.prune`) are combined with the new one or replaced
    (``previous=``), and the report counts the mask the model carries
    (:func:`current_mask`). Layers that keep no weight are reported and, per
    ``on_collapse``, warned about, refused or ignored.
Saving and loading (:mod:`torch_adapter.checkpoint`)
    torch pickles no parametrized module: save ``model.state_dict()`` and load it into a
    freshly built model with ``load_pruned(model, state_dict)``, which installs the masks
    first; ``copy.deepcopy`` keeps the masks.
Compact export (:mod:`torch_adapter.export`)
    ``export_sparse(model)`` keeps the kept values and their positions (bitmap or indices,
    the smaller); ``load_sparse(fresh_model, exported)`` puts them back, masks included.
COPS (:mod:`torch_adapter.cops`)
    ``scores[0]`` is the primary score, the rest secondary, each held at ``gamma`` (default
    0.9) times the best any k-mask reaches on it; ``min_per_layer`` adds per-layer floors.
COPS where the scores live (:mod:`torch_adapter.sharded`)
    ``solve_tensors(scores, budget, ..., process_group=None)`` solves on tensors on their
    device and in their dtype (no host copy), or on shards spread over the processes of a
    ``torch.distributed`` group; each process gets its part of the mask and the same
    certified summary (:class:`TensorPasses`, :class:`ProcessGroupCollectives`).
Top-k without the LP (:mod:`torch_adapter.topk`)
    ``top_k_mask(score, density, scope="global" | "local")``; kept counts
    ``max(1, round(d N))`` or, as the SynFlow authors' code, ``N - int((1 - d) N)`` with
    their tie rule (every score equal to the threshold is pruned: at most k kept).
    ``layer_budgets(layout, density, "erk" | "uniform")`` gives per-layer kept counts
    (ERK: Evci et al. 2020) for ``top_k_mask(..., layer_budgets=...)`` or COPS floors.
Iterative pruning (:mod:`torch_adapter.iterative`)
    ``iterative_prune(model, score_fn, density=..., rounds=..., selector="topk" | "cops")``
    rescores the masked model every round (exponential or linear schedule).
Rescaling (:mod:`torch_adapter.rescaling`)
    ``rescale_after_pruning`` (or ``rescale=True`` in ``apply_mask`` / ``prune_with_cops``)
    restores every unit's pre-activation variance; ``scale_residual_branches`` is Stable
    ResNet's ``1/sqrt(L)``.
Interspace pruning (:mod:`torch_adapter.interspace`)
    ``interspace.convert(model, basis="dct")`` rewrites Conv2d filters in a trainable
    filter basis; the coefficients become the prunable tensors.
"""

from . import interspace, scores
from .checkpoint import load_pruned, masked_tensors
from .export import export_sparse, load_sparse, serialized_bytes
from .cops import PruneReport, Selection, layer_floors, prune_with_cops, select_mask
from .interspace import InterspaceConv2d
from .iterative import IterativeResult, iterative_prune, round_densities
from .layout import (DEFAULT_PRUNABLE_TYPES, DEFAULT_RAW_WEIGHTS, Layout, LayoutEntry, LeftOutWeightsWarning,
                     PrunableLayer)
from .collectives import ProcessGroupCollectives
from .passes import TensorPasses
from .sharded import solve_tensors
from .masks import (
    current_mask,
    resulting_mask,
    LayerCollapseError,
    LayerCollapseWarning,
    LayerStats,
    apply_mask,
    check_collapse,
    format_layer_table,
    layer_stats,
    make_permanent,
)
from .rescaling import UnitRescaling, rescale_after_pruning, scale_residual_branches
from .scores import ConstantScoreWarning, Score, SynFlowRounds, SynFlowUnderflowWarning
from .topk import kept_count, layer_budgets, top_k_mask

__all__ = [
    "scores",
    "Score",
    "SynFlowRounds",
    "Layout",
    "LayoutEntry",
    "DEFAULT_PRUNABLE_TYPES",
    "DEFAULT_RAW_WEIGHTS",
    "LeftOutWeightsWarning",
    "current_mask",
    "resulting_mask",
    "apply_mask",
    "make_permanent",
    "load_pruned",
    "masked_tensors",
    "export_sparse",
    "load_sparse",
    "serialized_bytes",
    "layer_stats",
    "check_collapse",
    "format_layer_table",
    "LayerStats",
    "LayerCollapseWarning",
    "LayerCollapseError",
    "SynFlowUnderflowWarning",
    "ConstantScoreWarning",
    "select_mask",
    "prune_with_cops",
    "layer_floors",
    "Selection",
    "PruneReport",
    "PrunableLayer",
    "interspace",
    "InterspaceConv2d",
    "rescale_after_pruning",
    "scale_residual_branches",
    "UnitRescaling",
    "iterative_prune",
    "round_densities",
    "IterativeResult",
    "top_k_mask",
    "kept_count",
    "layer_budgets",
    "solve_tensors",
    "TensorPasses",
    "ProcessGroupCollectives",
]
