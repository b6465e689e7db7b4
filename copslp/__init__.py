"""copslp: COPS (COmbined Pruning Scores) solved exactly and fast.

Keep k of D weights maximising a primary pruning score while holding every secondary score
at a fraction gamma of its best reachable value. The LP relaxation has an analytic solution:
the top-k of ``s_0 + sum_i lambda_i s_i`` with at most one fractional swap per extra score.

>>> import numpy as np, copslp
>>> rng = np.random.default_rng(0)
>>> scores = rng.random((2, 1000))
>>> res = copslp.solve(scores, budget=50, gamma=0.9)
>>> int(res.mask.sum()), res.certificate.passed
(50, True)

The public surface is :func:`solve`, :func:`available_methods`, the records
:class:`Problem`, :class:`Result` and :class:`Certificate`, and the errors; and for scores
that are not one numpy array (on a device, sharded over processes), the analytic method's
road through two interfaces: :func:`solve_streamed` with a :class:`ScorePasses` (the passes
over the scores one process holds, returning :class:`LocalScreen` and
:class:`LevelsOutside` records) and a :class:`Collectives` (what the processes exchange);
:class:`ArrayPasses` and :class:`OneProcess` implement them for numpy arrays in one process,
``torch_adapter`` for torch tensors and ``torch.distributed``. Internals stay importable from
their modules (``copslp._problem.make_problem``, ``copslp._registry``, ...).
"""

from ._analytic.driver import solve_streamed
from ._analytic.passes import ArrayPasses, Collectives, LevelsOutside, LocalScreen, OneProcess, ScorePasses
from ._errors import CopsWarning, InfeasibleError, SolverError
from ._problem import Problem
from ._registry import available_methods
from ._result import Certificate, Result
from ._solve import solve

__version__ = "0.1.0"

__all__ = [
    "solve",
    "available_methods",
    "Problem",
    "Result",
    "Certificate",
    "InfeasibleError",
    "SolverError",
    "CopsWarning",
    "solve_streamed",
    "ScorePasses",
    "Collectives",
    "LocalScreen",
    "LevelsOutside",
    "ArrayPasses",
    "OneProcess",
]
