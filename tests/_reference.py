"""Independent reference computations for the tests.

Nothing here calls relucomp: the breakpoints of the triangle waves follow
from the peaks alone, by solving W_{k-1}(x) = a_k on every piece of W_{k-1}.
"""

from __future__ import annotations

import numpy as np


def wave_breakpoints(peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Knots of W_d on [0, 1] (0 and 1 included) and W_d's values there.

  Every piece of W_{k-1} runs monotonically between 0 and 1, so the point
  where it equals a_k is found by linear interpolation; that point becomes a
  peak (value 1) of W_k and the old knots become valleys (value 0).
  """
  knots = np.array([0.0, 1.0])
  values = np.array([0.0, 1.0])  # W_0(x) = x
  for a in np.asarray(peaks, dtype=np.float64):
    left, right = knots[:-1], knots[1:]
    v_left, v_right = values[:-1], values[1:]
    new = left + (a - v_left) / (v_right - v_left) * (right - left)
    merged = np.empty(knots.size + new.size)
    merged[0::2] = knots
    merged[1::2] = new
    vals = np.zeros_like(merged)
    vals[1::2] = 1.0  # the new points are peaks, old knots valleys
    knots, values = merged, vals
  return knots, values


def count_pieces_between(fn, knots: np.ndarray) -> int:
  """Counts the linear pieces of ``fn`` on [knots[0], knots[-1]].

  ``fn`` must be affine between consecutive candidate knots; this checks it
  (the midpoint value is the mean of the quarter-point values, to 1e4 ulp
  of the largest value) and then
  counts the knots at which the slope really changes. The noise of a slope
  measured over an interval of width w is about eps * scale / w, so a knot
  counts when its slope jump exceeds 1000 times the noise of its two sides;
  the jumps that do not are reported through the returned count.
  """
  knots = np.asarray(knots, dtype=np.float64)
  left, right = knots[:-1], knots[1:]
  width = right - left
  assert np.all(width > 0), "candidate knots must increase strictly"
  p1 = left + 0.25 * width
  p2 = left + 0.5 * width
  p3 = left + 0.75 * width
  y1, y2, y3 = (np.asarray(fn(p), dtype=np.float64) for p in (p1, p2, p3))
  scale = np.max(np.abs(np.concatenate([y1, y2, y3]))) + 1.0
  eps = np.finfo(np.float64).eps
  np.testing.assert_allclose(y2, 0.5 * (y1 + y3), rtol=0, atol=1e4 * eps * scale)
  slopes = (y3 - y1) / (p3 - p1)
  noise = eps * scale / width
  tolerance = 1000 * np.maximum(noise[:-1], noise[1:])
  real_kinks = np.abs(np.diff(slopes)) > tolerance
  return int(1 + np.count_nonzero(real_kinks))


def numpy_preactivations(params, x: np.ndarray) -> list[np.ndarray]:
  """Every layer's pre-activations by a plain float64 NumPy forward pass.

  ``x`` has shape ``(N, n_in)``; the last entry is the network's output.
  """
  h = np.asarray(x, np.float64)
  out = []
  for i, layer in enumerate(params):
    if i:
      h = np.maximum(out[-1], 0.0)
    out.append(h @ np.asarray(layer["kernel"], np.float64)
               + np.asarray(layer["bias"], np.float64))
  return out


def numpy_patterns(params, x: np.ndarray) -> np.ndarray:
  """Activation patterns (``N, total hidden neurons``) of :func:`numpy_preactivations`."""
  return np.concatenate([z > 0 for z in numpy_preactivations(params, x)[:-1]], axis=-1)
