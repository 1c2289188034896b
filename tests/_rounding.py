"""How much a training run amplifies rounding: the tolerance of vmap-versus-loop tests.

A vmapped fit and a loop of fits run the same arithmetic up to the order in
which some sums over the data points are taken (XLA vectorises a batched
reduction differently). Reversing the order of the data points changes
exactly that and nothing else, so the difference between a fit and the
same fit on reversed data is an estimate, taken on the problem itself, of
how far two fits may part that differ only by summation order: training
amplifies both alike. The tolerance is ``SAFETY`` times that difference,
with a floor of ``FLOOR_ULPS`` rounding units for runs that amplify nothing.
"""

from __future__ import annotations

import numpy as np

#: A single reordering samples the amplification once; the batched program
#: reorders other sums, so its difference may be a few times larger.
SAFETY = 10.0
#: Floor in rounding units of the dtype (every run rounds somewhere).
FLOOR_ULPS = 64.0


def relative_difference(a, b) -> float:
  """``max |a - b| / |b|`` elementwise, in float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  scale = np.maximum(np.abs(b), np.finfo(np.float64).tiny)
  return float(np.max(np.abs(a - b) / scale))


def order_spread(run, x, y) -> float:
  """Relative difference of ``run(x, y)`` and ``run`` on the reversed data."""
  x, y = np.asarray(x), np.asarray(y)
  return relative_difference(run(x[::-1], y[::-1]), run(x, y))


def tolerance(run, x, y) -> float:
  """``SAFETY * order_spread + FLOOR_ULPS`` rounding units of ``y``'s dtype."""
  eps = float(np.finfo(np.asarray(y).dtype).eps)
  return SAFETY * order_spread(run, x, y) + FLOOR_ULPS * eps
