"""The analytic method, one road for every entry (docs/maths.md §3-5).

* :mod:`.driver`: the road, from the subsample to the certificate, and its entries
  (:func:`~.driver.solve_analytic` in memory, :func:`~.driver.solve_streamed` through passes);
* :mod:`.passes`: the O(D) passes behind two interfaces (``ScorePasses``, ``Collectives``)
  and their numpy implementations;
* :mod:`.screening`: what a box of multipliers decides; the compiled pass over a block;
* :mod:`.estimate`: the subsample's estimate of lambda* and the boxes around it;
* :mod:`.finish`: the exact LP on the survivors, by case: :mod:`.one_bound` (the walk),
  :mod:`.several_bounds` (Newton steps, :mod:`.ellipsoid` as fallback) and :mod:`.simplex`.
"""
