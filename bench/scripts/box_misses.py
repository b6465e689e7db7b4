"""Where lambda* lies when the first box misses it (``python bench/scripts/box_misses.py
[D]``): one bound, uniform and lognormal scores, k = D/20, D/100 and D/400, 40 subsample
seeds each; for every miss, the survivors' lambda and lambda* in half-widths of the missed
box from its centre."""

import sys

import numpy as np

import copslp
from copslp._analytic import estimate

misses = []
after_miss = estimate.BoxSchedule.after_miss


def recorded(self, multipliers):
    misses.append((self.centre.copy(), self.width, np.array(multipliers)))
    return after_miss(self, multipliers)


estimate.BoxSchedule.after_miss = recorded
D = int(float(sys.argv[1])) if len(sys.argv) > 1 else 2_000_000
for family in ("uniform", "lognormal"):
    rng = np.random.default_rng(3)
    scores = rng.random((2, D)) if family == "uniform" else rng.lognormal(size=(2, D))
    for div in (20, 100, 400):
        for seed in range(40):
            misses.clear()
            result = copslp.solve(scores, D // div, gamma=0.9, options={"seed": seed})
            for centre, width, survivors_lambda in misses:
                half = width * centre[0]
                print(f"{family} k = D/{div}, seed {seed}: survivors' lambda at "
                      f"{(survivors_lambda[0] - centre[0]) / half:+.2f} half-widths, lambda* at "
                      f"{(result.multipliers[0] - centre[0]) / half:+.2f}; rounds {result.info['rounds']}")
