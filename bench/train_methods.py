"""Pruning methods of bench/train.py: two registries, scores and methods, one line per entry.

A *score* (:data:`SCORES`) is a function ``problem -> torch_adapter.Score`` of the network at
initialisation. A *method* (:data:`METHODS`) names the scores it combines (primary first),
the options of :func:`torch_adapter.select_mask` (``gamma``, ``min_per_layer``, ...) and how
the mask is applied (``mode="mask"``: pruned weights are 0; ``mode="freeze"``: FreezeNet, the
unselected weights stay at their initial values). One score alone gives its top-k mask
(through :func:`copslp.solve`, which is a plain top-k for one score); two or more give COPS.

Adding an entry is one line::

    register_score("snip-normalized", lambda p: scores.snip(p.model, p.loss_fn, p.batches,
                                                             normalize=True, layout=p.layout))
    register(Method("cops-snip-grasp", "COPS: SNIP primary, GraSP secondary, gamma on validation",
                    ("snip", "grasp"), tuned=True))

A method whose mask goes into the model differently (interspace pruning, rescaling, a
parametrization) gives ``apply=``, a function ``(model, selection, mode) -> layer stats``
used instead of :func:`torch_adapter.apply_mask`. Names are lowercase and unique; an unknown
name is a ValueError that lists the registered ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from torch_adapter import Layout, Score, Selection, apply_mask, interspace, scores, select_mask

__all__ = ["Problem", "Method", "SCORES", "METHODS", "DEFAULT_METHODS", "register", "register_score", "get_method",
           "SYNFLOW_ROUNDS", "FLOOR_SHARE", "DEFAULT_GAMMA"]

#: Rounds of iterative SynFlow (the SynFlow paper's 100, exponential schedule).
SYNFLOW_ROUNDS = 100
#: Layer floors of the ``cops-*-floors`` methods: every layer keeps at least
#: ``ceil(FLOOR_SHARE * density * size_l)`` of its ``size_l`` weights (at least one: no layer
#: collapses), half of what a layer pruned uniformly would keep. (A fifth never bound on
#: LeNet-300-100 and LeNet-5-Caffe: the masks were those without floors.)
FLOOR_SHARE = 0.5
#: gamma of a ``tuned`` method when the run gives none (the registered fixed-gamma methods).
DEFAULT_GAMMA = 0.9


@dataclass(eq=False)
class Problem:
    """Everything a method sees of one run.

    Attributes
    ----------
    model : nn.Module
        The network at initialisation; scores never change it.
    layout : Layout
        Its prunable tensors (the weights of every Linear and Conv layer).
    loss_fn : callable
        ``loss_fn(outputs, targets)``, the training loss.
    batches : list of (inputs, targets)
        The data the data-driven scores see.
    input_shape : tuple of int
        Shape of one input (for SynFlow's all-ones input).
    density : float
        Kept fraction of the layout.
    seed : int
        The run's seed (the random score's seed).
    score_times : dict
        Seconds spent computing each score, filled in by :meth:`score`.
    computed : dict
        ``name -> (Score, seconds)``: scores already computed for this very network, data,
        density and seed (shared between the runs of several methods, since every score is a
        deterministic function of them); :meth:`score` takes a score from here, adds the
        ones it computes, and lists the reused ones in ``reused``.
    reused : list of str
    """

    model: nn.Module
    layout: Layout
    loss_fn: Callable[[Any, Any], torch.Tensor]
    batches: list
    input_shape: tuple[int, ...]
    density: float
    seed: int
    score_times: dict = field(default_factory=dict)
    computed: dict = field(default_factory=dict, repr=False)
    reused: list = field(default_factory=list)

    def score(self, name: str) -> Score:
        """Score ``name`` of :data:`SCORES`, computed once and timed (the time of its computation
        is recorded also when it is reused)."""
        if name in self.computed:
            if name not in self.score_times:
                self.reused.append(name)
        else:
            start = time.perf_counter()
            score = _lookup(SCORES, name, "score")(self)
            self.computed[name] = (score, time.perf_counter() - start)
        score, seconds = self.computed[name]
        self.score_times[name] = seconds
        return score


def _default_apply(model: nn.Module, selection: Selection, mode: str):
    return apply_mask(model, selection.mask, selection.layout, mode=mode, on_collapse="ignore")


@dataclass(frozen=True)
class Method:
    """A pruning method: which scores, which solver options, how the mask is applied.

    Attributes
    ----------
    name : str
        Lowercase, unique.
    description : str
        One line for tables and the README.
    scores : tuple of str
        Names in :data:`SCORES`, primary first.
    options : mapping, or callable problem -> mapping
        Passed to :func:`torch_adapter.select_mask` (``gamma``, ``min_per_layer``, ``method``, ...);
        a callable for options that depend on the run (floors relative to the density).
    mode : {"mask", "freeze"}
        Passed to :func:`torch_adapter.apply_mask`.
    apply : callable, optional
        ``apply(model, selection, mode) -> tuple of LayerStats`` instead of ``apply_mask``.
    prepare : callable, optional
        ``prepare(model)``, run in place on the freshly built network before its layout is
        taken and anything is scored (e.g. the interspace conversion). Its scores must have
        names of their own: scores are shared between the methods of one run by name.
    tuned : bool
        COPS with gamma given per run (chosen on validation from a grid by bench/train.py);
        the same gamma bounds every secondary score.
    gamma_of : str, optional
        A tuned method whose chosen gamma this one takes (instead of a selection of its own):
        the floors variant runs at the gamma of the same scores without floors, so that the
        two differ only by the floors.
    """

    name: str
    description: str
    scores: tuple[str, ...]
    options: Mapping[str, Any] | Callable[[Problem], Mapping[str, Any]] = field(default_factory=dict)
    mode: str = "mask"
    apply: Callable[[nn.Module, Selection, str], Sequence] | None = None
    prepare: Callable[[nn.Module], Any] | None = None
    tuned: bool = False
    gamma_of: str | None = None

    def __post_init__(self):
        if self.tuned and len(self.scores) < 2:
            raise ValueError(f"method {self.name!r}: tuned=True needs two or more scores, got {self.scores}")
        if self.gamma_of is not None and not self.tuned:
            raise ValueError(f"method {self.name!r}: gamma_of={self.gamma_of!r} needs tuned=True")

    def summary(self) -> dict:
        """JSON-friendly: description, scores, mode, tuned (options only when they are a mapping)."""
        return {"description": self.description, "scores": list(self.scores), "mode": self.mode,
                "tuned": self.tuned, "gamma_of": self.gamma_of,
                "options": dict(self.options) if not callable(self.options) else "depends on the run"}

    def options_for(self, problem: Problem, gamma: float | None = None) -> dict:
        """The keyword arguments of :func:`torch_adapter.select_mask` for ``problem``."""
        options = dict(self.options(problem) if callable(self.options) else self.options)
        if self.tuned:
            options["gamma"] = DEFAULT_GAMMA if gamma is None else gamma
        elif gamma is not None:
            raise ValueError(f"method {self.name!r} takes no gamma per run, got gamma={gamma!r}")
        return options

    def select(self, problem: Problem, gamma: float | None = None) -> Selection:
        """The mask of this method for ``problem`` (raises copslp.InfeasibleError as select_mask does);
        ``gamma`` only for a ``tuned`` method."""
        options = self.options_for(problem, gamma)
        return select_mask([problem.score(name) for name in self.scores], problem.density, **options)

    def apply_to(self, model: nn.Module, selection: Selection):
        """Put ``selection`` into ``model`` in place; returns the per-layer stats."""
        return (self.apply or _default_apply)(model, selection, self.mode)


#: name -> score(problem) -> Score
SCORES: dict[str, Callable[[Problem], Score]] = {}
#: name -> Method, in registration order (the order of tables and plots)
METHODS: dict[str, Method] = {}


def _check_name(name: str, registry: Mapping[str, Any], kind: str) -> None:
    if not isinstance(name, str) or not name or name != name.lower():
        raise ValueError(f"{kind} names are non-empty lowercase strings, got {name!r}")
    if name in registry:
        raise ValueError(f"{kind} {name!r} is already registered")


def _lookup(registry: Mapping[str, Any], name: str, kind: str):
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose from {list(registry)}")
    return registry[name]


def register_score(name: str, function: Callable[[Problem], Score]) -> None:
    """Add a score to :data:`SCORES`."""
    _check_name(name, SCORES, "score")
    SCORES[name] = function


def register(method: Method) -> Method:
    """Add a method to :data:`METHODS`; its scores (and its ``gamma_of``) must be registered already."""
    _check_name(method.name, METHODS, "method")
    if method.gamma_of is not None and not _lookup(METHODS, method.gamma_of, "method").tuned:
        raise ValueError(f"method {method.name!r}: gamma_of={method.gamma_of!r} is not a tuned method")
    if not method.scores:
        raise ValueError(f"method {method.name!r} names no score")
    for name in method.scores:
        _lookup(SCORES, name, "score")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name`` (ValueError listing the valid names otherwise)."""
    return _lookup(METHODS, name, "method")


# ----------------------------------------------------------------------------- the entries
register_score("random", lambda p: scores.random(p.model, seed=p.seed, layout=p.layout))
register_score("magnitude", lambda p: scores.magnitude(p.model, layout=p.layout))
register_score("snip", lambda p: scores.snip(p.model, p.loss_fn, p.batches, layout=p.layout))
register_score("grasp", lambda p: scores.grasp(p.model, p.loss_fn, p.batches, layout=p.layout))
register_score("synflow", lambda p: scores.synflow(p.model, p.input_shape, iterations=SYNFLOW_ROUNDS,
                                                   final_density=p.density, layout=p.layout))

register(Method("random", "uniform random scores (seeded), top-k", ("random",)))
register(Method("magnitude", "|theta| at initialisation, top-k", ("magnitude",)))
register(Method("snip", "SNIP |theta * dL/dtheta|, top-k", ("snip",)))
register(Method("grasp", "GraSP theta * Hg (signed), top-k", ("grasp",)))
register(Method("synflow", f"SynFlow, iterative ({SYNFLOW_ROUNDS} rounds, exponential schedule), top-k",
                ("synflow",)))
for _primary, _secondary in (("snip", ("synflow",)), ("synflow", ("snip",)), ("grasp", ("synflow",)),
                              ("snip", ("synflow", "magnitude"))):
    register(Method("cops-" + "-".join((_primary,) + _secondary),
                    f"COPS: {_primary} primary, {' and '.join(_secondary)} secondary, gamma chosen on validation",
                    (_primary,) + _secondary, tuned=True))
register(Method("cops-snip-synflow-floors", f"cops-snip-synflow at its chosen gamma, with layer floors: every "
                f"layer keeps at least {FLOOR_SHARE:g} x density of its weights", ("snip", "synflow"),
                lambda p: {"min_per_layer": FLOOR_SHARE * p.density}, tuned=True, gamma_of="cops-snip-synflow"))
register(Method("freezenet", "the SNIP mask, unselected weights frozen at their initial values (FreezeNet)",
                ("snip",), mode="freeze"))


def _rescaled(model: nn.Module, selection: Selection, mode: str):
    """The mask applied, then every unit's kept weights rescaled (Hayou et al. 2021)."""
    return apply_mask(model, selection.mask, selection.layout, mode=mode, rescale=True, on_collapse="ignore")


def _to_interspace(model: nn.Module) -> None:
    """Every Conv2d as an interspace convolution in a trainable DCT filter basis (Wimmer et al.
    2022); the coefficients become the prunable tensors."""
    interspace.convert(model, basis="dct")


#: The methods of a run unless ``--methods`` says otherwise: the single scores, the COPS
#: combinations (gamma chosen on validation) and FreezeNet. The entries registered after them
#: (rescaling after pruning, interspace pruning; gamma fixed at 0.9) run when named.
DEFAULT_METHODS = tuple(METHODS)

register_score("interspace-snip", SCORES["snip"])  # the same functions, on the converted network
register_score("interspace-synflow", SCORES["synflow"])

register(Method("synflow-rescaled", "SynFlow (iterative), top-k, kept weights rescaled per unit", ("synflow",),
                apply=_rescaled))
register(Method("cops-0.9-rescaled", "COPS SNIP > SynFlow, gamma 0.9, kept weights rescaled per unit",
                ("snip", "synflow"), {"gamma": 0.9}, apply=_rescaled))
register(Method("interspace-snip", "SNIP of interspace coefficients (DCT filter basis, trained), top-k",
                ("interspace-snip",), prepare=_to_interspace))
register(Method("interspace-cops-0.9", "COPS SNIP > SynFlow, gamma 0.9, on interspace coefficients (DCT basis)",
                ("interspace-snip", "interspace-synflow"), {"gamma": 0.9}, prepare=_to_interspace))


# ----------------------------------------------------------------------------- the baselines of 2026
#: NTK-SAP's settings in its authors' scripts: 5 re-initialisations per score, 20 iterative rounds.
NTK_SAP_ROUNDS, NTK_SAP_ITERATIONS = 5, 20


def _random_in_layers(p: Problem, distribution: str) -> Score:
    """Random scores lifted by 1 on a random choice of ``layer_budgets(distribution)`` elements per
    layer: their top-k (k = the budgets' sum) is that layer-wise random mask."""
    from torch_adapter import layer_budgets, top_k_mask

    drawn = scores.random(p.model, seed=p.seed, layout=p.layout)
    chosen = top_k_mask(drawn, p.density, scope="local",
                        layer_budgets=layer_budgets(p.layout, p.density, distribution))
    return Score(drawn.values + chosen.to(drawn.values.dtype), p.layout, f"random-{distribution}",
                 {"seed": p.seed, "distribution": distribution})


register_score("synflow-l2", lambda p: scores.synflow_l2(p.model, p.input_shape, iterations=SYNFLOW_ROUNDS,
                                                         final_density=p.density, layout=p.layout))
register_score("ntk-sap", lambda p: scores.ntk_sap(p.model, p.input_shape, rounds=NTK_SAP_ROUNDS, seed=p.seed,
                                                   iterations=NTK_SAP_ITERATIONS, final_density=p.density,
                                                   layout=p.layout))
register_score("grasp-abs", lambda p: scores.grasp(p.model, p.loss_fn, p.batches, absolute=True, layout=p.layout))
register_score("grasp-original", lambda p: scores.grasp(p.model, p.loss_fn, p.batches, conventions="original",
                                                        seed=p.seed, layout=p.layout))
register_score("random-erk", lambda p: _random_in_layers(p, "erk"))
register_score("random-uniform", lambda p: _random_in_layers(p, "uniform"))

register(Method("synflow-l2", f"SynFlow-L2 (squared weights), iterative ({SYNFLOW_ROUNDS} rounds), top-k",
                ("synflow-l2",)))
register(Method("ntk-sap", f"NTK-SAP ({NTK_SAP_ROUNDS} re-initialisations, {NTK_SAP_ITERATIONS} iterative rounds), "
                f"top-k", ("ntk-sap",)))
register(Method("grasp-abs", "|GraSP| |theta * Hg| (Lubana and Dick 2021), top-k", ("grasp-abs",)))
register(Method("grasp-original", "GraSP with its authors' conventions (train mode, Xavier Linear weights, "
                "half-batches), top-k", ("grasp-original",)))
register(Method("random-erk", "random mask with ERK per-layer densities (Evci et al. 2020)", ("random-erk",)))
register(Method("random-uniform", "random mask with the same density in every layer", ("random-uniform",)))
register_score("prospr", lambda p: scores.prospr(p.model, p.loss_fn, p.batches, layout=p.layout))
register(Method("prospr", "ProsPr: |d loss after 3 SGD steps / d mask| (Alizadeh et al. 2022), top-k", ("prospr",)))
