"""Exact enumeration of the linear regions of a ReLU MLP (MATH.md §4).

The geometry runs on the host in float64 NumPy, layer by layer: the input
domain is kept as a partition into cells on each of which every neuron of the
current layer is an affine function of the input. A layer's pre-activations
are evaluated at the cells' vertices; a cell is cut wherever one of them
changes sign strictly inside it, and the ReLU then acts on each piece with a
fixed pattern. This is the refinement of MATH.md §4: each layer splits every
region of the previous one.

Tolerances (shared by the 1-D and 2-D enumerations):

* A pre-activation at a vertex counts as zero when it is at most
  ``value_rtol`` times the sum of the absolute values of that neuron's own
  terms (``VALUE_RTOL`` for float64 weights, 100 units of roundoff of a
  coarser dtype: :func:`value_rtol_for`): in 1-D ``z_i = sum_j h_j W_ji + b_i`` from the previous layer's
  values, scale ``sum_j |h_j W_ji| + |b_i|``; in 2-D ``z_i = a_0 y_0 + a_1
  y_1 + b`` from the polygon's map of the input, scale ``|a_0 y_0| +
  |a_1 y_1| + |b|``. The tolerance scales with that neuron alone, never with
  the other neurons of the layer, so a deep neuron carrying values near
  ``1e-12`` is resolved as finely as one carrying values near ``1``. A neuron that only touches zero
  (equal to zero at a vertex, the same sign on both sides, as ``t_1`` of the
  compositional network at ``x = 0``) never cuts a cell.
* A cell is cut only where a neuron is strictly positive at one vertex and
  strictly negative at another (after the rule above). On a cell where a
  neuron is zero throughout it counts as inactive.

In 1-D (:func:`linear_pieces_1d`) the cells are intervals carrying every
neuron's value at their ends; in 2-D (:func:`regions_2d`) they are convex
polygons carrying the affine maps of the layer's pre-activations. A layer
cuts every polygon along all of its zero lines in one vectorised pass (the
cells of a polygon are the faces of an arrangement of lines, see
:func:`_arrangement`); polygons whose arrangement is not simple at the
working precision are cut one line at a time (:func:`_sequential`), which
gives the same cells wherever both apply.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
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

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> pieces = relucomp.linear_pieces_1d(params, -1.0, 2.0)  # |x|
    >>> pieces.count, pieces.breakpoints.tolist(), pieces.slopes[:, 0].tolist()
    (2, [0.0], [-1.0, 1.0])
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


# OpenBLAS runs a product of at most this many multiply-adds on one thread.
_ONE_THREAD = 1 << 18


def matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
  """``a @ w`` for a tall ``a`` and a small ``w``, in row blocks BLAS runs on one thread.

  A multithreaded BLAS spends more time waking threads than multiplying a
  small product such as ``(10^6, 4) @ (4, 4)`` (milliseconds on a busy
  machine), so products of up to 64 one-thread blocks are split into those
  blocks; bigger ones go to BLAS in one call.
  """
  rows = max(1, _ONE_THREAD // (w.shape[0] * w.shape[1]))
  if a.shape[0] <= rows or a.shape[0] > 64 * rows:
    return a @ w
  out = np.empty((a.shape[0], w.shape[1]), np.result_type(a, w))
  for start in range(0, a.shape[0], rows):
    np.matmul(a[start:start + rows], w, out=out[start:start + rows])
  return out


def preactivation(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                  rtol: float = VALUE_RTOL) -> tuple[np.ndarray, np.ndarray]:
  """Pre-activations at points and the scale of each neuron's own terms."""
  z = matmul(h, kernel)
  z += bias
  scale = matmul(np.abs(h), np.abs(kernel))
  scale += np.abs(bias)
  scale *= rtol
  z[np.abs(z) <= scale] = 0.0
  scale /= rtol
  return z, scale


def value_rtol_for(params: Any) -> float:
  """The zero tolerance for ``params``: ``VALUE_RTOL``, or 100 ulp of a coarser dtype.

  Weights stored in float32 carry relative errors near ``1e-7``; exact
  cancellations of the construction (a neuron meeting zero at a valley)
  then leave residues of that size, which would cut slivers narrower than
  the weights can resolve. The tolerance follows the coarsest float dtype
  among the kernels and biases (Python numbers and lists count as float64).
  """
  eps = max(_dtype_eps(_dtype(layer[name])) for layer in params for name in ("kernel", "bias"))
  return max(VALUE_RTOL, 100.0 * eps)


def _dtype(x: Any) -> np.dtype:
  dtype = getattr(x, "dtype", None)
  return np.asarray(x).dtype if dtype is None else dtype


@functools.lru_cache(maxsize=None)
def _dtype_eps(dtype: Any) -> float:
  """Machine epsilon of a float dtype (bfloat16 included), 0 for others."""
  return float(jnp.finfo(dtype).eps) if jnp.issubdtype(dtype, jnp.floating) else 0.0


def _check_rtol(params: Any, value_rtol: float | None) -> float:
  """``value_rtol`` checked, or the default for ``params``' dtype when ``None``."""
  if value_rtol is None:
    return value_rtol_for(params)
  if not (np.isfinite(value_rtol) and 0 <= value_rtol < 1):
    raise ValueError(f"value_rtol must be in [0, 1); got {value_rtol}.")
  return float(value_rtol)


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


def pieces_1d_raw(layers: Sequence[tuple[np.ndarray, np.ndarray]], lo: float, hi: float,
                  rtol: float = VALUE_RTOL
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
    z, _ = preactivation(h, kernel, bias, rtol)
    x, z, slopes = _split_layer(x, z, slopes, kernel, xtol)
    h = np.maximum(z, 0.0)
  kernel, bias = layers[-1]
  return (x, matmul(h, kernel) + bias, matmul(slopes, kernel),
          matmul(np.abs(slopes), np.abs(kernel)))


def merge_equal(slopes: np.ndarray, slope_scale: np.ndarray) -> np.ndarray:
  """Mask of the interior boundaries where no output's slope changes."""
  tol = SLOPE_RTOL * np.maximum(slope_scale[:-1], slope_scale[1:])
  return np.all(np.abs(slopes[1:] - slopes[:-1]) <= tol, axis=1)


def linear_pieces_1d(params: Any, lo: Any, hi: Any, *, merge: bool = True,
                     value_rtol: float | None = None) -> LinearPieces:
  """The exact linear pieces of a scalar-input ReLU MLP on ``[lo, hi]``.

  The interval is propagated through the network layer by layer in float64
  (host NumPy; params of any float dtype are converted, and the function
  takes concrete values, so call it outside ``jax.jit``): on every interval
  each neuron is affine in ``x``; an interval is cut where a neuron's
  pre-activation changes sign strictly inside it.
  The cost is linear in the number of pieces (a depth-20 compositional
  network, ``2^20`` pieces, takes a fraction of a second).

  Tie and tolerance rules (deterministic):

  * A pre-activation counts as zero when it is within ``value_rtol`` of the
    sum of the absolute values of that neuron's own terms. By default
    ``value_rtol`` is ``VALUE_RTOL`` (1e-10) for float64 weights and 100
    units of roundoff of the weights' dtype when coarser (about 1.2e-5 for
    float32): rounding weights to float32 breaks the exact cancellations of
    :func:`compositional_mlp` and would otherwise add sliver pieces narrower
    than float32 can resolve (a depth-8 network: 256 pieces, not about 300).
    A neuron
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
    value_rtol: the relative zero tolerance of pre-activations (see above);
      ``None`` picks it from the weights' dtype.

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
  x, values, slopes, slope_scale = pieces_1d_raw(layers, lo, hi, _check_rtol(params, value_rtol))
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

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.eye(2), "bias": jnp.zeros(2)},   # relu(y0), relu(y1)
    ...           {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)}]
    >>> regions = relucomp.regions_2d(params, (-1.0, -1.0), (1.0, 1.0))
    >>> regions.count, regions.A.shape
    (4, (4, 1, 2))
  """
  vertices: list
  patterns: list
  A: np.ndarray
  c: np.ndarray
  count: int


class _Cells(NamedTuple):
  """The convex cells of one layer (internal; polygons along the last axis).

  Attributes:
    v: vertices ``(2, K, F)``: ``v[:, j, r]`` is vertex ``j`` of cell ``r``,
      in counter-clockwise order, padded with copies of the first vertex
      (padding with a real vertex leaves every maximum, minimum and sign
      test over a cell's vertices unchanged and only adds edges of length
      zero, which no line crosses).
    cnt: the number of vertices of each cell ``(F,)``.
    src: the polygon of the layer's input each cell was cut from ``(F,)``.
    active: the layer's activation pattern on each cell ``(F, m)``.
  """
  v: np.ndarray
  cnt: np.ndarray
  src: np.ndarray
  active: np.ndarray


def _pad_vertices(v: np.ndarray, k: int) -> np.ndarray:
  """``v`` widened to ``k`` vertex slots with copies of the first vertex."""
  if v.shape[1] >= k:
    return v
  return np.concatenate([v, np.repeat(v[:, :1], k - v.shape[1], axis=1)], axis=1)


def _concat_cells(parts: Sequence[_Cells]) -> _Cells:
  if len(parts) == 1:
    return parts[0]
  k = max(part.v.shape[1] for part in parts)
  return _Cells(v=np.concatenate([_pad_vertices(part.v, k) for part in parts], axis=2),
                cnt=np.concatenate([part.cnt for part in parts]),
                src=np.concatenate([part.src for part in parts]),
                active=np.concatenate([part.active for part in parts]))


def _select(cells: _Cells, keep: np.ndarray) -> _Cells:
  return _Cells(v=cells.v[:, :, keep], cnt=cells.cnt[keep], src=cells.src[keep],
                active=cells.active[keep])


# A layer is cut in chunks of at most this many polygons (bounds the
# temporaries). Up to _DENSE (vertex slot, polygon, neuron) entries every
# neuron is evaluated at every vertex; above, only the neurons whose zero line
# may reach the polygon's bounding box.
_CHUNK_POLYGONS = 4096
_DENSE = 1 << 14
# The sign tests at new corners use twice the zero tolerance (see _cut).
_NEAR = 2.0
# Polygons are grouped by their number of lines when a chunk has this many lines.
_GROUPED = 2048


def _vertex_values(v: np.ndarray, p: np.ndarray, rtol: float):
  """Values at the vertices of the (polygon, neuron) pairs that may cut.

  Returns ``(z, scale, act, qi, qn)``: the values ``(k, Q)`` at the vertex
  slots of the pairs (polygon ``qi``, neuron ``qn``) and their term scales
  ``|a_0 y_0| + |a_1 y_1| + |b|``, and the state ``act`` ``(f, m)`` of the
  neurons in no pair (``True``: positive on the whole polygon). Small blocks
  take every pair (``qi``, ``qn`` and ``act`` are then ``None``; pair ``q``
  is ``divmod(q, m)``). Large ones first bound each neuron over the
  polygon's bounding box (its value at the centre, plus ``|a_0| r_0 + |a_1|
  r_1``, plus the zero tolerance at the largest term scale in the box): a
  neuron whose bound excludes zero has one strict sign on the polygon,
  snapped or not.
  """
  _, k, f = v.shape
  m = p.shape[2]
  x, y = v[0][:, :, None], v[1][:, :, None]           # (k, f, 1)
  a0, a1, b = p[:, 0], p[:, 1], p[:, 2]               # (f, m)
  if k * f * m <= _DENSE:
    z = x * a0 + y * a1 + b
    scale = np.abs(x) * np.abs(a0) + np.abs(y) * np.abs(a1) + np.abs(b)
    return z.reshape(k, f * m), scale.reshape(k, f * m), None, None, None
  low, high = v.min(axis=1), v.max(axis=1)            # (2, f)
  (c0, c1), (r0, r1) = (0.5 * (low + high))[:, :, None], (0.5 * (high - low))[:, :, None]
  zc = a0 * c0 + a1 * c1 + b
  bound = (np.abs(a0) * (r0 + rtol * (np.abs(c0) + r0))
           + np.abs(a1) * (r1 + rtol * (np.abs(c1) + r1)) + rtol * np.abs(b))
  qi, qn = np.nonzero(np.abs(zc) <= bound * (1 + 1e-6) + 1e-300)
  xq, yq = np.take(v[0], qi, axis=1), np.take(v[1], qi, axis=1)   # (k, Q)
  a0, a1, b = a0[qi, qn], a1[qi, qn], b[qi, qn]
  z = xq * a0 + yq * a1 + b
  scale = np.abs(xq) * np.abs(a0) + np.abs(yq) * np.abs(a1) + np.abs(b)
  return z, scale, zc > 0, qi, qn


def _keys(bits: np.ndarray) -> np.ndarray:
  """Columns of booleans ``(width, N)`` as integers ``(words, N)``, 52 bits each.

  Row ``r`` is bit ``r % 52`` of word ``r // 52`` (summed exactly in
  float64, without BLAS: see :func:`matmul`).
  """
  width = bits.shape[0]
  words = max(1, -(-width // 52))
  weights = np.zeros((words, width))
  weights[np.arange(width) // 52, np.arange(width)] = np.ldexp(1.0, np.arange(width) % 52)
  return np.einsum("wr,rn->wn", weights, bits).astype(np.int64)


def _arrangement(v: np.ndarray, cnt: np.ndarray, p: np.ndarray, rtol: float
                 ) -> tuple[_Cells, np.ndarray]:
  """Cuts every polygon along all of its neurons' zero lines at once.

  Hand-written NumPy, vectorised over all polygons and neurons (one pass per
  layer, no loop over neurons; the long axis of every array is the last, so
  reductions run over short leading axes). Inside a convex polygon the zero
  lines of a layer's neurons are straight, so the polygon's cells are the
  faces of an arrangement of lines. Here the values at the vertices decide
  which neurons cut which polygon (its *lines*): a neuron whose snapped
  value (see :func:`regions_2d`) is strictly positive at one vertex and
  strictly negative at another. Polygons without lines are cells as they
  are; the others go to :func:`_cut`, grouped by their number of lines.

  A polygon is left to :func:`_sequential` (flagged in ``hard``) when one
  of its lines passes through a vertex, here or in :func:`_cut`.

  Args:
    v: vertices ``(2, k, f)`` as in :class:`_Cells`.
    cnt: vertex counts ``(f,)``.
    p: the layer's pre-activation maps ``(f, 3, m)`` (rows: coefficient of
      ``y_0``, of ``y_1``, constant).
    rtol: the zero tolerance.

  Returns:
    ``(cells, hard)``: the cells of the polygons not in ``hard`` (a boolean
    mask over the polygons), ``src`` indexing the polygons.
  """
  _, k, f = v.shape
  m = p.shape[2]
  z, scale, act, qi, qn = _vertex_values(v, p, rtol)
  z[np.abs(z) <= rtol * scale] = 0.0
  any_pos = np.logical_or.reduce(z > 0, axis=0)
  lines = np.flatnonzero(any_pos & np.logical_or.reduce(z < 0, axis=0))
  # A neuron that is not a line of a polygon is active on all of it iff it
  # is positive somewhere (zero throughout: inactive).
  if qi is None:
    act = any_pos.reshape(f, m)
    pi, ni = np.divmod(lines, m)
  else:
    act[qi, qn] = any_pos
    pi, ni = qi[lines], qn[lines]
  whole = _Cells(v=v, cnt=cnt, src=np.arange(f), active=act)
  hard = np.zeros(f, dtype=bool)
  if lines.size == 0:
    return whole, hard
  zl = np.take(z, lines, axis=1)                      # (k, C)
  tol = (_NEAR * rtol) * np.maximum.reduce(np.take(scale, lines, axis=1), axis=0)
  sign = np.sign(zl)
  change = sign != np.roll(sign, -1, axis=0)          # along edge j -> j + 1
  # Exactly two changes, from + to - and back: otherwise the line passes
  # through a vertex (a cyclic sequence holding +, 0 and - changes at least
  # three times).
  bad = np.add.reduce(change, axis=0) != 2
  if bad.any():
    hard[pi[bad]] = True
    keep = ~hard[pi]
    pi, ni, zl, tol, change = pi[keep], ni[keep], zl[:, keep], tol[keep], change[:, keep]
  per = np.bincount(pi, minlength=f)
  parts = [_select(whole, (per == 0) & ~hard)]       # uncut polygons are cells
  # Polygons with about the same number of lines together (in large chunks):
  # _cut's tables are as wide as the most lines in one polygon.
  size = np.ceil(np.log2(np.maximum(per, 1))).astype(np.int64)
  groups = ([per > 0] if pi.size < _GROUPED or size.max() < 3 else
            [(per > 0) & (size <= 2)] + [size == s for s in range(3, int(size.max()) + 1)])
  for group in groups:
    which = np.flatnonzero(group)
    if which.size == 0:
      continue
    sel = group[pi]
    local = np.cumsum(group) - 1
    cells, bad = _cut(v[:, :, which], cnt[which], act[which], local[pi[sel]], ni[sel],
                      zl[:, sel], tol[sel], change[:, sel])
    hard[which[bad]] = True
    parts.append(cells._replace(src=which[cells.src]))
  return _concat_cells(parts), hard


def _cut(v: np.ndarray, cnt: np.ndarray, act: np.ndarray, pi: np.ndarray, ni: np.ndarray,
         zl: np.ndarray, tol: np.ndarray, change: np.ndarray) -> tuple[_Cells, np.ndarray]:
  """The faces of the arrangement of each polygon's lines (see :func:`_arrangement`).

  They are found from their corners:

  1. Each line crosses the boundary at two points, on the two edges where
     its sign changes; the values of the polygon's other lines there are
     interpolated along the edge (exact for affine functions). The position
     along the boundary (edge index plus fraction) orders the crossings.
  2. Two lines meet inside the polygon iff their crossings interleave along
     the boundary; the meeting point (and the other lines' values there) is
     interpolated along the first line's chord.
  3. Every corner gets the signs of its polygon's lines at it, as an
     integer key, those of the lines through it taken both ways (2 cells
     meet at a crossing, 4 at a meeting point, 1 at an old vertex). Cells
     are the groups of equal ``(polygon, key)``; their corners are sorted by
     angle about their average.

  This is exact for simple arrangements. A polygon is flagged in ``hard``
  when its arrangement is not simple at the working precision: a new corner
  within ``tol`` (twice the zero tolerance times the line's largest term
  scale on the polygon) of another line (three lines through a point, a
  meeting point on the boundary), a cell count other than Euler's ``1 +
  lines + meeting points``, or two corners of a cell less than ``2^-44``
  radians apart seen from its average. The doubled tolerance covers the one
  :func:`_sequential` applies at each corner (the term scale is convex, so
  its maximum over a polygon is at a vertex): a polygon kept here has no
  value that ``_sequential`` would snap to zero, and both give the same
  cells.

  Args:
    v, cnt, act: the polygons (every one with lines) and the layer's
      pattern on them for the neurons that are not their lines.
    pi, ni: each line's polygon (sorted) and neuron.
    zl: the lines' snapped values at the vertex slots ``(k, C)``.
    tol: the lines' near-zero thresholds ``(C,)``.
    change: where each line's sign changes, edge ``j -> j + 1`` ``(k, C)``.

  Returns:
    ``(cells, hard)`` as for :func:`_arrangement`.
  """
  _, k, f = v.shape
  n_lines = pi.size
  hard = np.zeros(f, dtype=bool)
  # Lines of each polygon by local index r: line first[p] + r, r < per[p].
  per = np.bincount(pi, minlength=f)
  end = np.cumsum(per)
  first = end - per
  width = int(per.max())
  own = np.arange(width)[:, None] < per               # (width, f)
  table = np.minimum(first + np.arange(width)[:, None], n_lines - 1)
  ids = np.arange(n_lines)
  rank = ids - first[pi]

  # 1. Boundary crossings: column c (side 0) and n_lines + c (side 1) of line c.
  edge = np.nonzero(change.T)[1].reshape(n_lines, 2).T.ravel()
  edge_end = (edge + 1) % k
  line = np.concatenate([ids, ids])
  xp = pi[line]
  z0 = zl[edge, line]
  t = z0 / (z0 - zl[edge_end, line])
  x0, y0 = v[0][edge, xp], v[1][edge, xp]
  x_x = x0 + t * (v[0][edge_end, xp] - x0)
  y_x = y0 + t * (v[1][edge_end, xp] - y0)
  lines_x = np.take(table, xp, axis=1)                # (width, 2C): the polygon's lines
  w0 = zl[edge, lines_x]
  z_x = w0 + t * (zl[edge_end, lines_x] - w0)
  z_x[rank[line], np.arange(2 * n_lines)] = 0.0
  along = edge + t                                    # position along the boundary
  start, stop = along[:n_lines], along[n_lines:]

  # 2. Pairs of lines of one polygon (c1 < c2), then those that meet inside.
  later = end[pi] - ids - 1
  c1 = np.repeat(ids, later)
  c2 = np.arange(c1.size) - np.repeat(np.cumsum(later) - later - ids - 1, later)
  s1, e1, s2, e2 = start[c1], stop[c1], start[c2], stop[c2]
  meet = ((s1 < s2) & (s2 < e1)) != ((s1 < e2) & (e2 < e1))
  c1, c2 = c1[meet], c2[meet]
  n_meets = c1.size
  b = c1 + n_lines                                    # the chord of line c1: c1 -> b
  r1, r2 = rank[c1], rank[c2]
  za, zb = z_x[r2, c1], z_x[r2, b]
  hard[pi[c1[(za > 0) == (zb > 0)]]] = True           # c2 not across the chord
  s = za / (za - zb)
  x_m = x_x[c1] + s * (x_x[b] - x_x[c1])
  y_m = y_x[c1] + s * (y_x[b] - y_x[c1])
  z_a = np.take(z_x, c1, axis=1)
  z_m = z_a + s * (np.take(z_x, b, axis=1) - z_a)     # (width, I)
  meets = np.arange(n_meets)
  z_m[r1, meets] = 0.0
  z_m[r2, meets] = 0.0

  # Signs at the new corners; a near-zero value of a line other than the
  # ones through the corner means the arrangement is not simple there.
  z_new = np.concatenate([z_x, z_m], axis=1)
  p_new = np.concatenate([xp, pi[c1]])
  lines_new = np.take(table, p_new, axis=1)
  own_new = np.take(own, p_new, axis=1)
  through = np.add.reduce((np.abs(z_new) <= tol[lines_new]) & own_new, axis=0)
  through[:2 * n_lines] -= 1
  through[2 * n_lines:] -= 2
  hard[p_new[through != 0]] = True

  # 3. Keys: each old vertex in its one cell, each crossing in the 2 cells
  # beside its line, each meeting point in the 4 around it (the signs of the
  # lines through it, zero so far, set both ways).
  vk, vp = np.nonzero(np.arange(k)[:, None] < cnt)
  key_new = _keys((z_new > 0) & own_new)
  words = key_new.shape[0]
  bit = np.zeros((words, n_lines), dtype=np.int64)
  bit[rank // 52, ids] = np.left_shift(1, rank % 52)
  # An old vertex's key: its polygon's lines' bits summed, for every vertex
  # slot at once (lines are sorted by polygon).
  key_v = np.stack([np.add.reduceat((zl > 0) * word, first, axis=1) for word in bit])[:, vk, vp]
  key_x = key_new[:, :2 * n_lines]
  key_m = key_new[:, 2 * n_lines:]
  bit1, bit2 = bit[:, c1], bit[:, c2]
  keys = np.concatenate([key_v, key_x, key_x + np.concatenate([bit, bit], axis=1),
                         key_m, key_m + bit2, key_m + bit1, key_m + bit1 + bit2], axis=1)
  poly = np.concatenate([vp, xp, xp, np.tile(pi[c1], 4)])
  xs = np.concatenate([v[0][vk, vp], x_x, x_x, np.tile(x_m, 4)])
  ys = np.concatenate([v[1][vk, vp], y_x, y_x, np.tile(y_m, 4)])

  # Cells: runs of equal (polygon, key).
  rows = poly.size
  head = np.ones(rows, dtype=bool)
  if words == 1 and width + f.bit_length() <= 62:
    keys = keys[0] | (poly << width)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    head[1:] = keys[1:] != keys[:-1]
    keys = keys[None, :]
  else:
    order = np.lexsort((*keys, poly))
    keys, poly_s = keys[:, order], poly[order]
    head[1:] = np.any(keys[:, 1:] != keys[:, :-1], axis=0) | (poly_s[1:] != poly_s[:-1])
  starts = np.flatnonzero(head)
  cell = np.cumsum(head) - 1
  n_cells = starts.size
  cnt_c = np.diff(starts, append=rows)
  src = poly[order[starts]]
  xs, ys = xs[order], ys[order]
  # Corners of each cell counter-clockwise: by angle about their average,
  # the cell index and the angle (resolution 2^-44 rad) in one integer key.
  d_x = xs - (np.add.reduceat(xs, starts) / cnt_c)[cell]
  d_y = ys - (np.add.reduceat(ys, starts) / cnt_c)[cell]
  quantum = ((np.arctan2(d_y, d_x) + np.pi) * 2.0 ** 44).astype(np.int64)
  if n_cells < 1 << 16:
    turn = (cell << 47) | quantum
    order = np.argsort(turn, kind="stable")
    turn = turn[order]
    tie = turn[1:] == turn[:-1]
  else:
    order = np.lexsort((quantum, cell))
    tie = (cell[order][1:] == cell[order][:-1]) & (quantum[order][1:] == quantum[order][:-1])
  if tie.any():
    hard[src[cell[order][1:][tie]]] = True
  xs, ys = xs[order], ys[order]
  size = int(cnt_c.max())
  slot = np.arange(rows) - starts[cell]
  v_c = np.empty((2, size, n_cells))
  v_c[0], v_c[1] = xs[starts], ys[starts]             # padding: the first vertex
  v_c[0][slot, cell] = xs
  v_c[1][slot, cell] = ys
  # Activation patterns: the polygon's, with its lines' signs on the cell.
  active = act[src]
  lines_c = per[src]                                  # (cell, local line) pairs
  cr = np.repeat(np.arange(n_cells), lines_c)
  cl = np.arange(cr.size) - np.repeat(np.cumsum(lines_c) - lines_c, lines_c)
  cell_keys = keys[:, starts]
  bits = (cell_keys[0, cr] >> cl if words == 1 else cell_keys[cl // 52, cr] >> (cl % 52)) & 1
  active[cr, ni[first[src][cr] + cl]] = bits
  cells = _Cells(v=v_c, cnt=cnt_c, src=src, active=active)

  # Euler's count of the faces of a simple arrangement, per polygon.
  if n_cells != f + n_lines + n_meets or cnt_c.min() < 3:
    expected = 1 + per + np.bincount(pi[c1], minlength=f)
    found = np.bincount(src, minlength=f)
    small = np.bincount(src[cnt_c < 3], minlength=f)
    hard |= (found != expected) | (small > 0)
  if hard.any():
    cells = _select(cells, ~hard[src])
  return cells, hard


def _vertex_values_seq(v: np.ndarray, p: np.ndarray, rtol: float) -> np.ndarray:
  """Snapped pre-activations ``(n, K, m)`` at vertices ``v`` of maps ``p``.

  ``p`` has shape ``(n, 3, m)``: rows are the coefficients of ``y_0``,
  ``y_1`` and the constant, so ``z = y_0 p_0 + y_1 p_1 + p_2``; the zero
  tolerance is relative to ``|y_0 p_0| + |y_1 p_1| + |p_2|``.
  """
  a0, a1, b = p[:, 0:1, :], p[:, 1:2, :], p[:, 2:3, :]
  y0, y1 = v[..., 0:1], v[..., 1:2]
  z = y0 * a0 + y1 * a1 + b
  scale = np.abs(y0 * a0) + np.abs(y1 * a1) + np.abs(b)
  z[np.abs(z) <= rtol * scale] = 0.0
  return z


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


def _sequential(v_in: np.ndarray, cnt: np.ndarray, p: np.ndarray, rtol: float) -> _Cells:
  """Cuts polygons one zero line at a time (the reference rules).

  Used for the polygons whose arrangement is not simple (see
  :func:`_arrangement`): each round cuts every polygon by its own next
  neuron whose values at the polygon's current vertices (evaluated from its
  map and snapped) are strictly positive at one and strictly negative at
  another. Lines through existing vertices, several lines through a point
  and lines that only touch a polygon therefore never make slivers, and the
  cells do not depend on the order of the cuts.
  """
  n, m = p.shape[0], p.shape[2]
  v = np.ascontiguousarray(v_in.transpose(2, 1, 0))
  valid = (np.arange(v.shape[1]) < cnt[:, None])[..., None]
  z = _vertex_values_seq(v, p, rtol)
  act = np.any((z > 0) & valid, axis=1)
  cand = act & np.any((z < 0) & valid, axis=1)
  src = np.arange(n)
  upcoming = _next_true(cand)           # (n, m + 1): next candidate >= k
  ptr = np.zeros(n, dtype=np.int64)
  while True:
    nxt = upcoming[src[:n], ptr[:n]]
    idx = np.flatnonzero(nxt < m)
    if idx.size == 0:
      break
    neuron = nxt[idx]
    ptr[idx] = neuron + 1
    zi = _vertex_values_seq(v[idx], p[src[idx], :, neuron][:, :, None], rtol)[..., 0]
    valid = np.arange(v.shape[1]) < cnt[idx, None]
    pos = np.any((zi > 0) & valid, axis=1)
    cut = pos & np.any((zi < 0) & valid, axis=1)
    # Uncut: active iff positive somewhere (zero throughout: inactive).
    act[idx, neuron] = pos
    idx, zi, neuron = idx[cut], zi[cut], neuron[cut]
    if idx.size == 0:
      continue
    v_pos, c_pos, v_neg, c_neg = _cut_polygons(v[idx], cnt[idx], zi)
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
  v, cnt = v[:n], cnt[:n]
  slot = np.where(np.arange(v.shape[1]) < cnt[:, None], np.arange(v.shape[1]), 0)
  v_out = np.take_along_axis(v, slot[..., None], axis=1).transpose(2, 1, 0)
  return _Cells(v=v_out, cnt=cnt, src=src[:n], active=act[:n])


def _refine(cells: _Cells, p: np.ndarray, rtol: float) -> _Cells:
  """The cells of one layer: every polygon cut along its neurons' zero lines."""
  parts = []
  for lo in range(0, cells.cnt.shape[0], _CHUNK_POLYGONS):
    sl = slice(lo, lo + _CHUNK_POLYGONS)
    cnt, maps = cells.cnt[sl], p[sl]
    v = cells.v[:, :int(cnt.max()), sl]
    with np.errstate(divide="ignore", invalid="ignore"):
      part, hard = _arrangement(v, cnt, maps, rtol)
    parts.append(part._replace(src=part.src + lo))
    if hard.any():
      which = np.flatnonzero(hard)
      extra = _sequential(v[:, :, which], cnt[which], maps[which], rtol)
      parts.append(extra._replace(src=which[extra.src] + lo))
  return _concat_cells(parts)


def regions_2d(params: Any, lo: Any, hi: Any, *, value_rtol: float | None = None) -> Regions2D:
  """The exact partition of a rectangle into the regions of a 2-input network.

  The rectangle ``[lo[0], hi[0]] x [lo[1], hi[1]]`` is refined layer by
  layer in float64 (host NumPy, outside ``jax.jit``; params of any float
  dtype are converted): every polygon carries the affine maps of the
  current layer's pre-activations (``z = a_0 y_0 + a_1 y_1 + b`` per
  neuron), and is cut along each zero line that passes strictly through
  it. All polygons and neurons of a layer are handled in one vectorised pass
  (the cells of a polygon are the faces of an arrangement of lines, found
  from their corners); polygons where lines meet at a vertex or at a
  common point are cut one line at a time. Both follow the rules below.

  Tie and tolerance rules (deterministic): a pre-activation of at most
  ``value_rtol`` times ``|a_0 y_0| + |a_1 y_1| + |b|`` at a vertex counts as
  zero there, i.e. the line passes exactly through that vertex; so lines
  through existing vertices (several lines through one point, lines through
  the rectangle's corners) and lines along an edge or only touching a
  polygon never create slivers. By default ``value_rtol`` is ``VALUE_RTOL``
  (1e-10) for float64 weights and 100 units of roundoff of the weights'
  dtype when coarser (about 1.2e-5 for float32), as in
  :func:`linear_pieces_1d`: weights rounded to float32 break exact
  coincidences (the valleys of :func:`compositional_mlp`) by about ``1e-7``,
  which would otherwise add slivers narrower than float32 resolves. A
  polygon is cut only by a neuron strictly positive at one of its vertices
  and strictly negative at another; the cells do not depend on the order of
  the cuts. On each region a neuron is active iff its pre-activation is
  positive somewhere on it (zero throughout counts as inactive).

  Args:
    params: an MLP as for :func:`mlp_apply` with exactly two inputs.
    lo: the lower-left corner, two finite numbers.
    hi: the upper-right corner, ``hi[i] > lo[i]``.
    value_rtol: the relative zero tolerance of pre-activations (see above);
      ``None`` picks it from the weights' dtype.

  Returns:
    :class:`Regions2D` ``(vertices, patterns, A, c, count)``.

  Raises:
    ValueError: on malformed or non-chaining layers, non-finite weights, a
      network whose first kernel does not have two rows, a bad rectangle
      (naming ``lo`` / ``hi``) or ``value_rtol`` outside ``[0, 1)``.

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
  rtol = _check_rtol(params, value_rtol)

  (x0, y0), (x1, y1) = lo_arr, hi_arr
  cells = _Cells(v=np.array([[[x0], [x1], [x1], [x0]], [[y0], [y0], [y1], [y1]]]),
                 cnt=np.array([4]), src=np.zeros(1, dtype=np.int64),
                 active=np.ones((1, 2), dtype=bool))
  # The affine map of the layer input on each cell: rows y_0, y_1, constant.
  maps = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
  patterns: list[np.ndarray] = []
  for kernel, bias in layers[:-1]:
    p = _next_maps(maps, cells, kernel, bias)      # this layer's pre-activations
    cells = _refine(cells, p, rtol)
    patterns = [pat[cells.src] for pat in patterns]
    patterns.append(cells.active)
    maps = p
  kernel, bias = layers[-1]
  out = _next_maps(maps, cells, kernel, bias)
  corners = np.ascontiguousarray(cells.v.transpose(2, 1, 0))
  vertices = [corners[r, :n] for r, n in enumerate(cells.cnt.tolist())]
  return Regions2D(vertices=vertices, patterns=patterns,
                   A=np.transpose(out[:, :2, :], (0, 2, 1)), c=out[:, 2, :],
                   count=int(cells.cnt.shape[0]))


def _next_maps(maps: np.ndarray, cells: _Cells, kernel: np.ndarray, bias: np.ndarray
               ) -> np.ndarray:
  """``(maps[src] * active) @ kernel + bias`` (the bias on the constant row).

  ``maps`` holds the previous layer's pre-activation maps per source
  polygon; each cell takes its source's map, switches off its inactive
  neurons and applies the next layer.
  """
  f, m = cells.active.shape
  masked = np.take(maps, cells.src, axis=0)
  masked *= cells.active[:, None, :]
  out = matmul(masked.reshape(3 * f, m), kernel).reshape(f, 3, kernel.shape[1])
  out[:, 2, :] += bias
  return out
