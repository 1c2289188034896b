"""Independent reference computations for the tests.

Nothing here calls relucomp: the breakpoints of the triangle waves follow
from the peaks alone, by solving W_{k-1}(x) = a_k on every piece of W_{k-1}.
"""

from __future__ import annotations

from fractions import Fraction

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


# ------------------------------------------------ exact rational counts

def _exact_layers(params):
  """The layers as nested lists of Fractions (every float is a rational)."""
  out = []
  for layer in params:
    kernel = np.asarray(layer["kernel"], np.float64)
    bias = np.asarray(layer["bias"], np.float64)
    out.append(([[Fraction(float(w)) for w in row] for row in kernel],
                [Fraction(float(b)) for b in bias]))
  return out


def _compose(maps, active, kernel, bias):
  """Next layer's maps: ``sum_j active_j maps_j W_jo + b_o`` (each map a tuple of
  coefficients, the constant last)."""
  width = len(maps[0])
  out = []
  for o in range(len(bias)):
    acc = [Fraction(0)] * width
    for j, (m, on) in enumerate(zip(maps, active)):
      if on and kernel[j][o]:
        w = kernel[j][o]
        acc = [a + w * c for a, c in zip(acc, m)]
    acc[-1] += bias[o]
    out.append(tuple(acc))
  return out


def exact_pieces_1d(params, lo: float, hi: float) -> tuple[int, int]:
  """Exact ``(activation regions, linear pieces)`` of a one-input network on
  ``[lo, hi]`` in rational arithmetic: every interval carries every neuron's
  map ``s x + c``; it is cut at the zeros strictly inside it; neighbouring
  regions whose output maps are equal form one piece."""
  layers = _exact_layers(params)
  cells = [(Fraction(float(lo)), Fraction(float(hi)), [(Fraction(1), Fraction(0))])]
  for kernel, bias in layers[:-1]:
    new = []
    for a, b, maps in cells:
      pre = _compose(maps, [True] * len(maps), kernel, bias)
      roots = sorted({-c / s for s, c in pre if s != 0 and a < -c / s < b})
      ends = [a] + roots + [b]
      for left, right in zip(ends[:-1], ends[1:]):
        mid = (left + right) / 2
        active = [s * mid + c > 0 for s, c in pre]
        new.append((left, right, [m if on else (Fraction(0), Fraction(0))
                                  for m, on in zip(pre, active)]))
    cells = new
  kernel, bias = layers[-1]
  outs = [tuple(_compose(maps, [True] * len(maps), kernel, bias)) for _, _, maps in cells]
  pieces = 1 + sum(1 for p, q in zip(outs[:-1], outs[1:]) if p != q)
  return len(cells), pieces


def _cut(poly, z):
  """The parts ``z <= 0`` and ``z >= 0`` of a convex polygon (exact)."""
  parts = ([], [])
  k = len(poly)
  for i in range(k):
    j = (i + 1) % k
    for side, keep in ((0, z[i] <= 0), (1, z[i] >= 0)):
      if keep:
        parts[side].append(poly[i])
    if (z[i] > 0 > z[j]) or (z[i] < 0 < z[j]):
      t = z[i] / (z[i] - z[j])
      point = tuple(p + t * (q - p) for p, q in zip(poly[i], poly[j]))
      parts[0].append(point)
      parts[1].append(point)
  return parts


def exact_regions_2d(params, lo, hi) -> list[tuple[bool, ...]]:
  """The activation patterns of the regions (of positive area) of a two-input
  network on a rectangle, in rational arithmetic: each layer cuts every
  polygon along the zero line of each neuron that is strictly positive at
  one of its vertices and strictly negative at another."""
  layers = _exact_layers(params)
  (x0, y0), (x1, y1) = ([Fraction(float(c)) for c in corner] for corner in (lo, hi))
  one, zero = Fraction(1), Fraction(0)
  cells = [([(x0, y0), (x1, y0), (x1, y1), (x0, y1)],
            [(one, zero, zero), (zero, one, zero)], ())]
  for kernel, bias in layers[:-1]:
    new = []
    for poly, maps, pattern in cells:
      pre = _compose(maps, [True] * len(maps), kernel, bias)
      pieces = [(poly, ())]
      for a0, a1, b in pre:
        nxt = []
        for piece, states in pieces:
          z = [a0 * x + a1 * y + b for x, y in piece]
          if any(v > 0 for v in z) and any(v < 0 for v in z):
            neg, pos = _cut(piece, z)
            nxt += [(neg, states + (False,)), (pos, states + (True,))]
          else:
            nxt.append((piece, states + (any(v > 0 for v in z),)))
        pieces = nxt
      for piece, states in pieces:
        new.append((piece, [m if on else (zero, zero, zero) for m, on in zip(pre, states)],
                    pattern + states))
    cells = new
  return [pattern for _, _, pattern in cells]
