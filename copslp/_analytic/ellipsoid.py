r"""A localisation ellipsoid for the minimiser of a convex function of a few variables.

The central-cut ellipsoid method keeps an ellipsoid

.. math::

    E = \{\lambda : (\lambda - c)^\top P^{-1} (\lambda - c) \le 1\}

that contains every minimiser sought. A cut is a half-space :math:`a^\top\lambda \le \beta`
known to contain them all; E is replaced by the smallest ellipsoid holding
:math:`E \cap \{a^\top\lambda \le \beta\}`. With :math:`\alpha = (a^\top c - \beta) /
\sqrt{a^\top P a}` (the depth of the cut, in units of E's half-width along a) and n the
dimension (n >= 2):

.. math::

    c^+ = c - \frac{1 + n\alpha}{n + 1} \frac{P a}{\sqrt{a^\top P a}}, \qquad
    P^+ = \frac{n^2 (1 - \alpha^2)}{n^2 - 1}\Bigl(P - \frac{2 (1 + n\alpha)}{(n + 1)(1 + \alpha)}
          \frac{P a a^\top P}{a^\top P a}\Bigr).

A cut through the centre (alpha = 0) shrinks the volume by at least
:math:`e^{-1/(2(n+1))}`; deeper cuts shrink it more. A cut with alpha <= -1/n removes nothing
that the update could use and is skipped; alpha >= 1 leaves nothing (in exact arithmetic the
half-space missed E: something that was promised to hold does not).

The method is affine-invariant, so multipliers of very different scales need no
normalisation: the first ellipsoid is the one around a box, :math:`c` its centre and
:math:`P = n\,\mathrm{diag}(w_i^2)` with :math:`w_i` its half-widths.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Ellipsoid"]


class Ellipsoid:
    """The localisation set of the ellipsoid method (see the module docstring)."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        """The smallest axis-aligned ellipsoid around the box [lo, hi] (n >= 2 dimensions)."""
        self.centre = (lo + hi) / 2.0
        half = (hi - lo) / 2.0
        self.shape = np.diag(lo.shape[0] * half * half)
        self.empty = False

    @property
    def dimension(self) -> int:
        return self.centre.shape[0]

    def cut(self, normal: np.ndarray, offset: float) -> None:
        """Keep ``E ∩ {normal @ lambda <= offset}`` (enclosed in the next ellipsoid)."""
        n = self.dimension
        direction = self.shape @ normal
        spread = float(normal @ direction)
        if not spread > 0.0:
            return  # E is flat along the normal: the cut cannot shrink it
        root = np.sqrt(spread)
        depth = (float(normal @ self.centre) - offset) / root
        if depth >= 1.0:
            self.empty = True
            return
        if depth <= -1.0 / n:
            return
        step = direction / root
        self.centre = self.centre - (1.0 + n * depth) / (n + 1.0) * step
        shrink = n * n * (1.0 - depth * depth) / (n * n - 1.0)
        self.shape = shrink * (self.shape - 2.0 * (1.0 + n * depth) / ((n + 1.0) * (1.0 + depth)) * np.outer(step, step))
        self.shape = (self.shape + self.shape.T) / 2.0  # keep it symmetric against round-off

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``: the smallest box around E (``c_i -/+ sqrt(P_ii)``)."""
        half = np.sqrt(np.maximum(np.diag(self.shape), 0.0))
        return self.centre - half, self.centre + half
