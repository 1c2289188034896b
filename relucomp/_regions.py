"""Exact enumeration of the linear regions of a ReLU MLP (MATH.md §4).

The geometry runs on the host in float64 NumPy, layer by layer: the input
domain is kept as a partition into cells on each of which every neuron of the
current layer is an affine function of the input. A layer's pre-activations
are evaluated at the cells' vertices; a cell is cut wherever one of them
changes sign strictly inside it, and the ReLU then acts on each piece with a
fixed pattern. This is the refinement of MATH.md §4: each layer splits every
region of the previous one.

Tolerances (shared by the 1-D and 2-D enumerations):

* A pre-activation ``z_i = sum_j h_j W_ji + b_i`` at a vertex counts as zero
  when ``|z_i| <= VALUE_RTOL * (sum_j |h_j W_ji| + |b_i|)``: the tolerance
  scales with that neuron's own terms, never with the other neurons of the
  layer, so a deep neuron carrying values near ``1e-12`` is resolved as
  finely as one carrying values near ``1``. A neuron that only touches zero
  (equal to zero at a vertex, the same sign on both sides, as ``t_1`` of the
  compositional network at ``x = 0``) never cuts a cell.
* A cell is cut only where a neuron is strictly positive at one vertex and
  strictly negative at another (after the rule above). On a cell where a
  neuron is zero throughout it counts as inactive.

In 1-D (:func:`linear_pieces_1d`) the cells are intervals carrying every
neuron's value at their ends; in 2-D (:func:`regions_2d`) they are convex
polygons carrying the affine maps of the layer's pre-activations, cut one
neuron at a time.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from relucomp import _mlp

__all__ = ["linear_pieces_1d", "LinearPieces", "regions_2d", "Regions2D",
           "VALUE_RTOL", "SLOPE_RTOL"]

#: Relative tolerance below which a pre-activation counts as zero (relative
#: to the sum of the absolute values of that neuron's own terms).
VALUE_RTOL = 1e-10
#: Two neighbouring slopes count as equal when they differ by at most this
#: times the sum of the absolute values of the output slope's own terms
#: (``sum_j |g_j W_jo|`` over the last hidden layer), i.e. 256 units of
#: roundoff.
SLOPE_RTOL = 256 * np.finfo(np.float64).eps
#: Breakpoints closer than this many units of roundoff of ``max(|lo|, |hi|)``
#: are not separated (see :func:`linear_pieces_1d`).
COINCIDENT_ULPS = 8

_EPS = np.finfo(np.float64).eps


class LinearPieces(NamedTuple):
  """The linear pieces of a scalar-input network on ``[lo, hi]``.

  Attributes:
    breakpoints: sorted interior knots, shape ``(count - 1,)``.
    slopes: slope of each piece, shape ``(count, n_out)``.
    intercepts: intercept of each piece, shape ``(count, n_out)``: on piece
      ``k`` (between knots ``k - 1`` and ``k``) the network is
      ``slopes[k] * x + intercepts[k]``.
    count: the number of pieces.
  """
  breakpoints: np.ndarray
  slopes: np.ndarray
  intercepts: np.ndarray
  count: int


def host_layers(params: Any, name: str = "params") -> list[tuple[np.ndarray, np.ndarray]]:
  """Validates ``params`` and returns its layers as float64 NumPy arrays."""
  _mlp.check_params(params, name)
  layers = []
  for i, layer in enumerate(params):
    kernel = np.array(layer["kernel"], dtype=np.float64)
    bias = np.array(layer["bias"], dtype=np.float64)
    if not np.all(np.isfinite(kernel)):
      raise ValueError(f"{name}[{i}]['kernel'] must be finite (no NaN or inf).")
    if not np.all(np.isfinite(bias)):
      raise ValueError(f"{name}[{i}]['bias'] must be finite (no NaN or inf).")
    layers.append((kernel, bias))
  return layers


def _scalar(value: Any, name: str) -> float:
  arr = np.asarray(value)
  if arr.ndim != 0 and arr.size != 1:
    raise ValueError(f"{name} must be a scalar; got shape {arr.shape}.")
  out = float(arr.reshape(()))
  if not np.isfinite(out):
    raise ValueError(f"{name} must be finite (no NaN or inf); got {out}.")
  return out


def matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
  """``a @ w`` for a tall ``a`` and a small ``w``.

  A multithreaded BLAS spends more time waking threads than multiplying a
  ``(10^6, 4) @ (4, 4)`` product (several times slower on a busy machine),
  so narrow layers are multiplied in row blocks small enough to run on one
  thread; wide layers go to BLAS in one call.
  """
  n, m = w.shape
  if n * m > 64 or a.shape[0] <= 8192:
    return a @ w
  rows = 65536 // (n * m)
  out = np.empty((a.shape[0], m))
  for start in range(0, a.shape[0], rows):
    np.matmul(a[start:start + rows], w, out=out[start:start + rows])
  return out


def preactivation(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Pre-activations at points and the scale of each neuron's own terms."""
  z = matmul(h, kernel)
  z += bias
  scale = matmul(np.abs(h), np.abs(kernel))
  scale += np.abs(bias)
  scale *= VALUE_RTOL
  z[np.abs(z) <= scale] = 0.0
  scale /= VALUE_RTOL
  return z, scale


def snap(z: np.ndarray, scale: np.ndarray) -> np.ndarray:
  """Sets pre-activations below the neuron-relative tolerance to exactly 0."""
  z = z.copy()
  z[np.abs(z) <= VALUE_RTOL * scale] = 0.0
  return z


def _split_layer(x, z, slopes_in, kernel, xtol):
  """Cuts the intervals of one layer where a neuron changes sign inside.

  Args:
    x: points, shape ``(P,)`` sorted.
    z: snapped pre-activations at the points, ``(P, m)``.
    slopes_in: per-interval slopes ``(P - 1, n)`` of the input neurons.
    kernel: ``(n, m)``.
    xtol: breakpoint separation below which roots are not separated.

  Returns:
    ``(x, z, slopes_out)``: refined points, pre-activations at them and the
    post-activation slopes of every neuron on each refined interval.

  The pre-activations at a new point are interpolated along the interval
  (exact on an affine piece); the crossing neuron is set to exactly zero
  there. A neuron that is zero at both ends of an interval stays exactly
  zero, so no further snapping is needed.
  """
  pre_slope = matmul(slopes_in, kernel)              # (K, m)
  pos = z > 0
  neg = z < 0
  cross = (pos[:-1] & neg[1:]) | (neg[:-1] & pos[1:])
  ci, cn = np.nonzero(cross)                         # by interval, then neuron
  if ci.size:
    zl = z[ci, cn]
    t = zl / (zl - z[ci + 1, cn])
    xl = x[ci]
    xr = x[ci + 1]
    root = xl + t * (xr - xl)
    multi = np.bincount(ci, minlength=x.shape[0] - 1)[ci] > 1
    if multi.any():
      # Sort the roots inside intervals holding several; their entries are
      # contiguous blocks in interval order, so sorting the subset by
      # (interval, root) and writing it back in place orders every block.
      sub = np.flatnonzero(multi)
      perm = np.arange(ci.size)
      perm[sub] = sub[np.lexsort((cn[sub], root[sub], ci[sub]))]
      ci, cn, t, xl, xr, root = (a[perm] for a in (ci, cn, t, xl, xr, root))
    prev = xl.copy()
    same = ci[1:] == ci[:-1]
    prev[1:][same] = root[:-1][same]
    keep = (root - prev > xtol) & (xr - root > xtol)
    ci, cn, t, root = ci[keep], cn[keep], t[keep], root[keep]
  if ci.size == 0:
    return x, z, _mask_slopes(pre_slope, z)

  n_new = np.bincount(ci, minlength=x.shape[0] - 1)
  offset = np.zeros(x.shape[0], dtype=np.int64)
  np.cumsum(n_new, out=offset[1:])
  n_points = x.shape[0] + ci.size
  new_x = np.empty(n_points)
  new_z = np.empty((n_points, z.shape[1]))
  old_pos = np.arange(x.shape[0]) + offset
  new_x[old_pos] = x
  new_z[old_pos] = z
  pos_new = ci + 1 + np.arange(ci.size)
  zl = z[ci]
  zi = z[ci + 1]
  zi -= zl
  zi *= t[:, None]
  zi += zl
  zi[np.arange(ci.size), cn] = 0.0                   # the neuron that crosses
  new_x[pos_new] = root
  new_z[pos_new] = zi
  return new_x, new_z, _mask_slopes(np.repeat(pre_slope, n_new + 1, axis=0), new_z)


def _mask_slopes(slopes: np.ndarray, z: np.ndarray) -> np.ndarray:
  """Zeroes, in place, the slopes of neurons inactive on each interval."""
  slopes[(z[:-1] + z[1:]) <= 0] = 0.0               # sign at the midpoint
  return slopes


def pieces_1d_raw(layers: Sequence[tuple[np.ndarray, np.ndarray]], lo: float, hi: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Every activation region of a scalar-input network on ``[lo, hi]``.

  Returns:
    ``(x, values, slopes, slope_scale)``: the region boundaries including
    ``lo`` and ``hi`` (shape ``(K + 1,)``), the outputs at them
    ``(K + 1, n_out)``, the output slope on each region ``(K, n_out)`` and
    the sum of the absolute values of the output slope's own terms
    ``|g_{L-1}| @ |W_L|`` (the neuron-relative scale of its roundoff).
  """
  xtol = COINCIDENT_ULPS * _EPS * max(abs(lo), abs(hi))
  x = np.array([lo, hi], dtype=np.float64)
  h = x[:, None]
  slopes = np.ones((1, 1))
  for kernel, bias in layers[:-1]:
    z, _ = preactivation(h, kernel, bias)
    x, z, slopes = _split_layer(x, z, slopes, kernel, xtol)
    h = np.maximum(z, 0.0)
  kernel, bias = layers[-1]
  return (x, matmul(h, kernel) + bias, matmul(slopes, kernel),
          matmul(np.abs(slopes), np.abs(kernel)))


def merge_equal(slopes: np.ndarray, slope_scale: np.ndarray) -> np.ndarray:
  """Mask of the interior boundaries where no output's slope changes."""
  tol = SLOPE_RTOL * np.maximum(slope_scale[:-1], slope_scale[1:])
  return np.all(np.abs(slopes[1:] - slopes[:-1]) <= tol, axis=1)


def linear_pieces_1d(params: Any, lo: Any, hi: Any, *, merge: bool = True) -> LinearPieces:
  """The exact linear pieces of a scalar-input ReLU MLP on ``[lo, hi]``.

  The interval is propagated through the network layer by layer in float64
  (host NumPy): on every interval each neuron is affine in ``x``; an interval
  is cut where a neuron's pre-activation changes sign strictly inside it.
  The cost is linear in the number of pieces (a depth-20 compositional
  network, ``2^20`` pieces, takes a fraction of a second).

  Tie and tolerance rules (deterministic):

  * A pre-activation counts as zero when it is within ``VALUE_RTOL`` (1e-10)
    of the sum of the absolute values of that neuron's own terms; a neuron
    that touches zero without changing sign (``t_1`` of
    :func:`compositional_mlp` at ``x = 0``) never makes a breakpoint.
  * Within one interval the roots of a layer are sorted; a root closer than
    ``8 * eps * max(|lo|, |hi|)`` to the previous root (or to either end of
    the interval) is merged into it, so coincident or nearly coincident
    breakpoints give one breakpoint, the leftmost. Each neuron's state on the
    resulting pieces is then its sign at the piece's midpoint.
  * With ``merge=True`` two neighbouring pieces are joined when, for every
    output ``o``, their slopes differ by at most ``SLOPE_RTOL`` (256 units of
    roundoff, about 5.7e-14) times the larger over the two pieces of
    ``sum_j |g_j W_jo|``, the output's own terms (``g_j`` the slope of the
    last hidden layer's neuron ``j``): the same neuron-relative rule as for
    values, so a slope that is small through cancellation is still compared
    at the scale of its terms. The network is continuous, so equal slopes
    mean equal affine maps; the joined piece reports the slope and intercept
    of its leftmost constituent.

  Args:
    params: an MLP as for :func:`mlp_apply` with one input (``n_in = 1``);
      any number of outputs.
    lo: left end of the interval (finite scalar).
    hi: right end, ``hi > lo``.
    merge: join neighbouring activation regions with equal affine maps
      (linear pieces). With ``False`` every activation region is a piece.

  Returns:
    :class:`LinearPieces` ``(breakpoints, slopes, intercepts, count)``;
    ``slopes`` and ``intercepts`` have shape ``(count, n_out)`` for every
    number of outputs.

  Raises:
    ValueError: on malformed or non-chaining layers, non-finite weights
      (naming ``params[i]``), a network whose first kernel does not have
      exactly one row, non-finite ``lo``/``hi`` or ``lo >= hi``.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> peaks = jnp.full(11, 0.5)
    >>> params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.25))
    >>> relucomp.linear_pieces_1d(params, 0.0, 1.0).count
    1024
    >>> absval = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> pieces = relucomp.linear_pieces_1d(absval, -1.0, 2.0)
    >>> pieces.breakpoints, pieces.slopes[:, 0]
    (array([0.]), array([-1.,  1.]))
  """
  layers = host_layers(params)
  if layers[0][0].shape[0] != 1:
    raise ValueError(
        "params must describe a network with one input (first kernel of shape "
        f"(1, n)) for a 1-D enumeration; got n_in = {layers[0][0].shape[0]}.")
  lo = _scalar(lo, "lo")
  hi = _scalar(hi, "hi")
  if not lo < hi:
    raise ValueError(f"lo must be smaller than hi; got lo = {lo}, hi = {hi}.")
  x, values, slopes, slope_scale = pieces_1d_raw(layers, lo, hi)
  first = np.arange(slopes.shape[0])
  if merge and slopes.shape[0] > 1:
    cut = ~merge_equal(slopes, slope_scale)
    first = np.concatenate([[0], np.flatnonzero(cut) + 1])
  slopes = slopes[first]
  intercepts = values[first] - slopes * x[first][:, None]
  return LinearPieces(breakpoints=x[first[1:]], slopes=slopes,
                      intercepts=intercepts, count=int(first.shape[0]))


class Regions2D(NamedTuple):
  """The exact partition of a rectangle by a two-input ReLU network.

  Attributes:
    vertices: one array of shape ``(n_vertices, 2)`` per region, its convex
      polygon in counter-clockwise order.
    patterns: one boolean array of shape ``(count, n_l)`` per hidden layer:
      the activation pattern of each region.
    A: the linear part of each region's affine map, ``(count, n_out, 2)``.
    c: its offset, ``(count, n_out)``: ``f(y) = A[r] @ y + c[r]`` on region
      ``r``.
    count: the number of regions.
  """
  vertices: list
  patterns: list
  A: np.ndarray
  c: np.ndarray
  count: int


_CHUNK = 4096


def _vertex_values(v: np.ndarray, p: np.ndarray) -> np.ndarray:
  """Snapped pre-activations ``(n, K, m)`` at vertices ``v`` of maps ``p``.

  ``p`` has shape ``(n, 3, m)``: rows are the coefficients of ``y_0``,
  ``y_1`` and the constant, so ``z = y_0 p_0 + y_1 p_1 + p_2``; the zero
  tolerance is relative to ``|y_0 p_0| + |y_1 p_1| + |p_2|``.
  """
  a0, a1, b = p[:, 0:1, :], p[:, 1:2, :], p[:, 2:3, :]
  y0, y1 = v[..., 0:1], v[..., 1:2]
  z = y0 * a0 + y1 * a1 + b
  scale = np.abs(y0 * a0) + np.abs(y1 * a1) + np.abs(b)
  z[np.abs(z) <= VALUE_RTOL * scale] = 0.0
  return z


def _centroid_values(v, cnt, p):
  """Snapped pre-activations at each polygon's vertex average, ``(n, m)``.

  Also returns the half-extents ``(n, 2)`` of the polygons' bounding boxes
  around that point.
  """
  valid = (np.arange(v.shape[1]) < cnt[:, None])[..., None]
  centre = np.sum(np.where(valid, v, 0.0), axis=1) / cnt[:, None]
  reach = np.max(np.where(valid, np.abs(v - centre[:, None, :]), 0.0), axis=1)
  y = np.concatenate([centre, np.ones((centre.shape[0], 1))], axis=1)
  z = np.einsum("nkm,nk->nm", p, y)
  scale = np.einsum("nkm,nk->nm", np.abs(p), np.abs(y))
  z[np.abs(z) <= VALUE_RTOL * scale] = 0.0
  return z, reach


def _candidates(v, cnt, p):
  """A superset of the (polygon, neuron) pairs whose zero line cuts it.

  The pre-activation is affine, so over a polygon it stays within its value
  at the vertex average plus ``|a_0| r_0 + |a_1| r_1`` (``r`` the bounding
  box half-extents); a neuron whose range excludes zero cannot cut. Also
  returns the sign at the vertex average (``z > 0``), which is the neuron's
  state on the whole polygon when it is not a candidate.
  """
  out = np.empty((v.shape[0], p.shape[2]), dtype=bool)
  positive = np.empty_like(out)
  for start in range(0, v.shape[0], _CHUNK):
    sl = slice(start, start + _CHUNK)
    z, reach = _centroid_values(v[sl], cnt[sl], p[sl])
    spread = np.einsum("nkm,nk->nm", np.abs(p[sl, :2, :]), reach)
    out[sl] = np.abs(z) <= spread * (1 + 1e-6) + 1e-300
    positive[sl] = z > 0
  return out, positive


def _next_maps(p, src, active, kernel, bias):
  """``(p[src] * active) @ kernel + bias`` (on the constant row), in chunks.

  ``p`` holds the previous layer's pre-activation maps per source polygon
  ``(n0, 3, m)``; each polygon takes its source's map, switches off its
  inactive neurons and applies the next layer. Chunks keep the gathered
  maps small.
  """
  n = src.shape[0]
  out = np.empty((n, 3, kernel.shape[1]))
  for start in range(0, n, _CHUNK):
    sl = slice(start, start + _CHUNK)
    masked = p[src[sl]] * active[sl, None, :]
    np.matmul(masked, kernel, out=out[sl])
  out[:, 2, :] += bias
  return out


def _next_true(mask: np.ndarray) -> np.ndarray:
  """``out[r, k]`` = the smallest ``j >= k`` with ``mask[r, j]``, else ``m``."""
  n, m = mask.shape
  index = np.where(mask, np.arange(m)[None, :], m)
  out = np.full((n, m + 1), m, dtype=np.int64)
  out[:, :m] = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]
  return out


def _cut_polygons(v, cnt, z):
  """Splits convex polygons along the zero line of an affine function.

  Args:
    v: vertices ``(s, K, 2)`` (padded), ``cnt`` their counts ``(s,)``.
    z: the function's snapped values at the vertices ``(s, K)``; every
      polygon has a strictly positive and a strictly negative vertex.

  Returns:
    ``(v_pos, cnt_pos, v_neg, cnt_neg)``: the parts where ``z >= 0`` and
    ``z <= 0``, vertices in the same cyclic order, padded to a common size.
  """
  s, k = z.shape
  idx = np.arange(k)
  valid = idx < cnt[:, None]
  nxt = (idx[None, :] + 1) % cnt[:, None]
  z_next = np.take_along_axis(z, nxt, axis=1)
  v_next = np.take_along_axis(v, nxt[..., None], axis=1)
  cross = valid & (((z > 0) & (z_next < 0)) | ((z < 0) & (z_next > 0)))
  with np.errstate(divide="ignore", invalid="ignore"):
    t = np.where(cross, z / (z - z_next), 0.0)
  point = v + t[..., None] * (v_next - v)
  slots = np.stack([v, point], axis=2).reshape(s, 2 * k, 2)
  out = []
  for keep in (valid & (z >= 0), valid & (z <= 0)):
    emit = np.stack([keep, cross], axis=2).reshape(s, 2 * k)
    count = emit.sum(axis=1)
    pos = np.cumsum(emit, axis=1) - 1
    rows, cols = np.nonzero(emit)
    out.append((rows, pos[rows, cols], slots[rows, cols], count))
  size = max(k, int(out[0][3].max()), int(out[1][3].max()))
  result = []
  for rows, pos, points, count in out:
    child = np.zeros((s, size, 2))
    child[rows, pos] = points
    result.extend([child, count])
  return tuple(result)


def _pad(v: np.ndarray, size: int) -> np.ndarray:
  if v.shape[1] >= size:
    return v
  out = np.zeros((v.shape[0], size, 2))
  out[:, :v.shape[1]] = v
  return out


def regions_2d(params: Any, lo: Any, hi: Any) -> Regions2D:
  """The exact partition of a rectangle into the regions of a 2-input network.

  The rectangle ``[lo[0], hi[0]] x [lo[1], hi[1]]`` is refined layer by
  layer in float64 (host NumPy): every polygon carries the affine maps of the
  current layer's pre-activations, and is cut, neuron by neuron, along each
  zero line that passes strictly through it. A neuron whose pre-activation
  is zero within ``VALUE_RTOL`` (relative to its own terms) at a vertex
  counts as passing exactly through that vertex, so lines through existing
  vertices and lines that only touch a polygon never create slivers; lines
  meeting at (nearly) one point are cut in neuron order and the result does
  not depend on anything else. A region's pattern is each neuron's sign at
  the polygon's vertex average (zero counts as inactive).

  Args:
    params: an MLP as for :func:`mlp_apply` with exactly two inputs.
    lo: the lower-left corner, two finite numbers.
    hi: the upper-right corner, ``hi[i] > lo[i]``.

  Returns:
    :class:`Regions2D` ``(vertices, patterns, A, c, count)``.

  Raises:
    ValueError: on malformed or non-chaining layers, non-finite weights, a
      network whose first kernel does not have two rows, or a bad rectangle
      (naming ``lo`` / ``hi``).

  Example:
    >>> import numpy as np
    >>> import relucomp
    >>> grid = [{"kernel": np.array([[1.0, 0.0], [0.0, 1.0]]), "bias": np.zeros(2)},
    ...         {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
    >>> parts = relucomp.regions_2d(grid, [-1.0, -1.0], [1.0, 1.0])
    >>> parts.count  # the four quadrants
    4
  """
  layers = host_layers(params)
  if layers[0][0].shape[0] != 2:
    raise ValueError(
        "params must describe a network with two inputs (first kernel of shape "
        f"(2, n)) for a 2-D enumeration; got n_in = {layers[0][0].shape[0]}.")
  lo_arr = np.asarray(lo, dtype=np.float64)
  hi_arr = np.asarray(hi, dtype=np.float64)
  for name, arr in (("lo", lo_arr), ("hi", hi_arr)):
    if arr.shape != (2,):
      raise ValueError(f"{name} must have two entries (a corner of the rectangle); "
                       f"got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
      raise ValueError(f"{name} must be finite (no NaN or inf); got {arr}.")
  if not np.all(lo_arr < hi_arr):
    raise ValueError(f"lo must be smaller than hi in both coordinates; got lo = "
                     f"{lo_arr}, hi = {hi_arr}.")

  v = np.array([[[lo_arr[0], lo_arr[1]], [hi_arr[0], lo_arr[1]],
                 [hi_arr[0], hi_arr[1]], [lo_arr[0], hi_arr[1]]]])
  cnt = np.array([4])
  # Affine map of the layer input on each polygon: rows y_0, y_1, const.
  maps = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
  patterns: list[np.ndarray] = []
  src = np.zeros(1, dtype=np.int64)
  active = np.ones((1, 2), dtype=bool)
  for kernel, bias in layers[:-1]:
    p = _next_maps(maps, src, active, kernel, bias)  # this layer's pre-activations
    m = kernel.shape[1]
    cand, act = _candidates(v, cnt, p)
    # A polygon can only be cut by a neuron that cuts the polygon it came
    # from at the start of the layer; children share their parent's maps
    # (``src`` indexes them), so only vertices and counts are copied. Each
    # round cuts every polygon by its own next candidate neuron (``ptr``
    # walks the neurons in order), so a round handles many neurons at once;
    # the cells do not depend on the order of the cuts.
    n = v.shape[0]
    src = np.arange(n)
    upcoming = _next_true(cand)           # (n0, m + 1): next candidate >= k
    ptr = np.zeros(n, dtype=np.int64)
    while True:
      nxt = upcoming[src[:n], ptr[:n]]
      idx = np.flatnonzero(nxt < m)
      if idx.size == 0:
        break
      neuron = nxt[idx]
      ptr[idx] = neuron + 1
      maps_i = p[src[idx], :, neuron][:, :, None]
      z = _vertex_values(v[idx], maps_i)[..., 0]
      valid = np.arange(v.shape[1]) < cnt[idx, None]
      pos = np.any((z > 0) & valid, axis=1)
      cut = pos & np.any((z < 0) & valid, axis=1)
      # Uncut: active iff positive somewhere (zero throughout: inactive).
      act[idx, neuron] = pos
      idx, z, neuron = idx[cut], z[cut], neuron[cut]
      if idx.size == 0:
        continue
      v_pos, c_pos, v_neg, c_neg = _cut_polygons(v[idx], cnt[idx], z)
      size = max(v.shape[1], v_pos.shape[1])
      if n + idx.size > v.shape[0] or size > v.shape[1]:
        capacity = max(2 * v.shape[0], n + idx.size)
        grown = np.zeros((capacity, size, 2))
        grown[:n, :v.shape[1]] = v[:n]
        v = grown
        cnt, src, ptr = (np.concatenate([a[:n], np.zeros(capacity - n, dtype=a.dtype)])
                         for a in (cnt, src, ptr))
        act = np.concatenate([act[:n], np.zeros((capacity - n, m), dtype=bool)])
      v[idx] = _pad(v_pos, v.shape[1])
      cnt[idx] = c_pos
      v[n:n + idx.size] = _pad(v_neg, v.shape[1])
      cnt[n:n + idx.size] = c_neg
      src[n:n + idx.size] = src[idx]
      ptr[n:n + idx.size] = ptr[idx]
      act[n:n + idx.size] = act[idx]
      act[n + np.arange(idx.size), neuron] = False      # the side z <= 0
      n += idx.size
    v, cnt, src, active = v[:n], cnt[:n], src[:n], act[:n]
    patterns = [pat[src] for pat in patterns]
    patterns.append(active)
    maps = p
  kernel, bias = layers[-1]
  out = _next_maps(maps, src, active, kernel, bias)
  a = np.transpose(out[:, :2, :], (0, 2, 1))
  vertices = [v[r, :cnt[r]] for r in range(v.shape[0])]
  return Regions2D(vertices=vertices, patterns=patterns, A=a, c=out[:, 2, :],
                   count=int(v.shape[0]))
