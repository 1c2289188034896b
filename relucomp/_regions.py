"""Exact enumeration of the linear regions of a ReLU MLP (docs/concepts.md).

The geometry runs on the host in float64, layer by layer: the input domain
is kept as a partition into cells on each of which every neuron of the
current layer is an affine function of the input. A layer's pre-activations
are evaluated at the cells' vertices; a cell is cut wherever one of them
changes sign strictly inside it, and the ReLU then acts on each piece with a
fixed pattern. This is the layer-by-layer refinement of docs/concepts.md: each layer splits every
region of the previous one.

Tolerances (shared by the 1-D and 2-D enumerations):

* A pre-activation at a vertex counts as zero when it is at most
  ``value_rtol`` times the sum of the absolute values of that neuron's own
  terms (``VALUE_RTOL`` for float64 weights, 100 units of roundoff of a
  coarser dtype: :func:`value_rtol_for`): in 1-D ``z_i = sum_j h_j W_ji +
  b_i`` from the previous layer's values, scale ``sum_j |h_j W_ji| +
  |b_i|``; in 2-D ``z_i = a_0 y_0 + a_1 y_1 + b`` from the polygon's map of
  the input, scale ``|a_0 y_0| + |a_1 y_1| + |b|``. The tolerance scales
  with that neuron alone, never with the other neurons of the layer, so a
  deep neuron carrying values near ``1e-12`` is resolved as finely as one
  carrying values near ``1``. A neuron that only touches zero
  (equal to zero at a vertex, the same sign on both sides, as ``t_1`` of the
  compositional network at ``x = 0``) never cuts a cell.
* A cell is cut only where a neuron is strictly positive at one vertex and
  strictly negative at another (after the rule above). On a cell where a
  neuron is zero throughout it counts as inactive.

In 1-D (:func:`linear_pieces_1d`, vectorised NumPy) the cells are
intervals carrying every neuron's value at their ends; in 2-D
(:func:`regions_2d`) they are convex polygons carrying the affine maps of the
layer's pre-activations, cut one zero line at a time by compiled code
(numba, :mod:`relucomp._regions2d_kernel`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from relucomp import _mlp
from relucomp import _regions2d_kernel as _kernel
from relucomp import _validation

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
#: Breakpoints closer than this many units of roundoff of their own
#: magnitude and error bound are not separated (see :func:`linear_pieces_1d`).
COINCIDENT_ULPS = 8
#: Default size guard of :func:`linear_pieces_1d` (activation regions).
MAX_REGIONS = 1 << 21
#: Default size guard of :func:`regions_2d` (regions).
MAX_REGIONS_2D = 1 << 20

_EPS = np.finfo(np.float64).eps
_EPS_32 = float(np.finfo(np.float32).eps)


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
    _validation.check_real(layer["kernel"], f"{name}[{i}]['kernel']")
    _validation.check_real(layer["bias"], f"{name}[{i}]['bias']")
    kernel = np.array(layer["kernel"], dtype=np.float64)
    bias = np.array(layer["bias"], dtype=np.float64)
    if not np.all(np.isfinite(kernel)):
      raise ValueError(f"{name}[{i}]['kernel'] must be finite (no NaN or inf).")
    if not np.all(np.isfinite(bias)):
      raise ValueError(f"{name}[{i}]['bias'] must be finite (no NaN or inf).")
    layers.append((kernel, bias))
  return layers


def _corner(value: Any, name: str) -> tuple[float, float]:
  """A corner of the rectangle of :func:`regions_2d`: two finite numbers."""
  _validation.check_real(value, name)
  arr = np.asarray(value, dtype=np.float64)
  if arr.shape != (2,):
    raise ValueError(f"{name} must have two entries (a corner of the rectangle); "
                     f"got shape {arr.shape}.")
  x, y = arr.tolist()
  if not (math.isfinite(x) and math.isfinite(y)):
    raise ValueError(f"{name} must be finite (no NaN or inf); got {arr}.")
  return x, y


def _scalar(value: Any, name: str) -> float:
  _validation.check_real(value, name)
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
  """The zero tolerance for ``params``: ``VALUE_RTOL``, or 100 ulp of float32.

  Weights stored in float32 carry relative errors near ``1e-7``; exact
  cancellations of the construction (a neuron meeting zero at a valley)
  then leave residues of that size, which would cut slivers narrower than
  the weights can resolve, so any float32 kernel or bias sets the
  tolerance to 100 units of float32 roundoff. Weights stored in 16 bits
  (float16, bfloat16) are exactly representable in float64 and are counted
  as the numbers they store, at the float64 tolerance: 100 units of their
  own roundoff (0.8 for bfloat16) would be far coarser than their
  features. Python numbers and lists count as float64.
  """
  eps = max(_dtype_eps(_dtype(layer[name])) for layer in params for name in ("kernel", "bias"))
  return 100.0 * eps if _EPS < eps <= _EPS_32 else VALUE_RTOL


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
  if (isinstance(value_rtol, (bool, np.bool_)) or not isinstance(value_rtol, (int, float, np.integer, np.floating))
      or not (np.isfinite(value_rtol) and 0 <= value_rtol < 1)):
    raise ValueError(f"value_rtol must be in [0, 1) (a real number); got {value_rtol!r}.")
  return float(value_rtol)


def _check_bool(value: Any, name: str) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be True or False; got {value!r}.")
  return bool(value)


def _check_limit(value: Any, default: int = MAX_REGIONS) -> int:
  """``max_regions`` checked (a positive integer), or ``default`` for ``None``."""
  if value is None:
    return default
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"max_regions must be an integer >= 1 (or None); got {value!r}.")
  return int(value)


class _TooManyRegions(Exception):
  """Raised inside the enumeration when the count passes the limit."""

  def __init__(self, count: int, layer: int):
    super().__init__(count, layer)
    self.count, self.layer = count, layer


def _too_many(what: str, count: int, layer: int, n_hidden: int, growth: float,
              limit: int) -> ValueError:
  """The ValueError of the size guard, with the count so far and an estimate."""
  remaining = n_hidden - layer - 1
  estimate = count * max(growth, 1.0) ** remaining
  return ValueError(
      f"{what} would make more than max_regions = {limit} activation regions: "
      f"{count} after hidden layer {layer + 1} of {n_hidden} (about {estimate:.3g} at the "
      f"end at the growth so far). Pass a larger max_regions to enumerate them anyway "
      "(memory grows linearly with the count).")


def _root_tolerance(root, s, ci, cn, slopes_in, icpt_in, kernel, bias):
  """How far apart two roots must be to count as different (see linear_pieces_1d).

  ``COINCIDENT_ULPS`` units of roundoff of the root itself plus of its error
  bound from the map: the root ``-c / s`` of ``z = s x + c`` moves by about
  ``eps (|c|_terms + |x| |s|_terms) / |s|`` when ``c`` and ``s`` are rounded,
  where ``|c|_terms = sum_j |c_j W_j| + |b|`` and ``|s|_terms = sum_j |s_j
  W_j|`` are the sums of the absolute values of their own terms.
  """
  k_abs = np.abs(kernel.T[cn])                          # (Q, n)
  c_abs = np.einsum("qj,qj->q", np.abs(icpt_in[ci]), k_abs) + np.abs(bias[cn])
  s_abs = np.einsum("qj,qj->q", np.abs(slopes_in[ci]), k_abs)
  with np.errstate(divide="ignore", invalid="ignore"):
    spread = (c_abs + np.abs(root) * s_abs) / np.abs(s)
  return COINCIDENT_ULPS * _EPS * (np.abs(root) + np.where(np.isfinite(spread), spread, 0.0))


def _roots(x, z, pre_slope, pre_icpt, ci, cn):
  """The zero of each crossing neuron's map on its interval.

  ``-c / s`` from the interval's affine map (accurate at the scale of the
  root, however wide the interval); where rounding puts it outside the
  interval, the linear interpolation of the end values, clipped.
  """
  s = pre_slope[ci, cn]
  xl, xr = x[ci], x[ci + 1]
  with np.errstate(divide="ignore", invalid="ignore"):
    root = -pre_icpt[ci, cn] / s + 0.0             # + 0.0: no -0.0
    zl, zr = z[ci, cn], z[ci + 1, cn]
    inside = (root > xl) & (root < xr)
    if not inside.all():
      interp = np.clip(xl + zl / (zl - zr) * (xr - xl), xl, xr)
      root = np.where(inside, root, interp)
  return root, s, xl, xr


def _split_layer(x, z, slopes_in, icpt_in, kernel, bias, rtol, limit, layer):
  """Cuts the intervals of one layer where a neuron changes sign inside.

  Args:
    x: points, shape ``(P,)`` sorted.
    z: snapped pre-activations at the points, ``(P, m)``.
    slopes_in, icpt_in: the affine maps ``h = slopes x + icpt`` of the
      layer's inputs on each interval, ``(P - 1, n)``.
    kernel, bias: ``(n, m)`` and ``(m,)``.
    rtol: the zero tolerance of pre-activations.
    limit, layer: the size guard (raises ``_TooManyRegions``).

  Returns:
    ``(x, z, slopes_out, icpt_out)``: refined points, pre-activations at
    them and the post-activation maps of every neuron on each refined
    interval.

  A crossing's point is the zero of its neuron's map on the interval (see
  :func:`_roots`); the layer's pre-activations there are computed from the
  inputs' maps at that point, snapped like all others, and the crossing
  neuron is set to exactly zero.
  """
  pre_slope = matmul(slopes_in, kernel)              # (K, m)
  pre_icpt = matmul(icpt_in, kernel)
  pre_icpt += bias
  pos = z > 0
  neg = z < 0
  cross = (pos[:-1] & neg[1:]) | (neg[:-1] & pos[1:])
  ci, cn = np.nonzero(cross)                         # by interval, then neuron
  if ci.size:
    root, s, xl, xr = _roots(x, z, pre_slope, pre_icpt, ci, cn)
    tol = _root_tolerance(root, s, ci, cn, slopes_in, icpt_in, kernel, bias)
    multi = np.bincount(ci, minlength=x.shape[0] - 1)[ci] > 1
    if multi.any():
      # Sort the roots inside intervals holding several; their entries are
      # contiguous blocks in interval order, so sorting the subset by
      # (interval, root) and writing it back in place orders every block.
      sub = np.flatnonzero(multi)
      perm = np.arange(ci.size)
      perm[sub] = sub[np.lexsort((cn[sub], root[sub], ci[sub]))]
      ci, cn, tol, xl, xr, root = (a[perm] for a in (ci, cn, tol, xl, xr, root))
    prev = xl.copy()
    same = ci[1:] == ci[:-1]
    prev[1:][same] = root[:-1][same]
    end_ulps = COINCIDENT_ULPS * _EPS
    keep = (root - prev > tol + end_ulps * np.abs(prev)) & (xr - root > tol + end_ulps * np.abs(xr))
    ci, cn, root = ci[keep], cn[keep], root[keep]
  if x.shape[0] - 1 + ci.size > limit:
    raise _TooManyRegions(x.shape[0] - 1 + ci.size, layer)
  if ci.size == 0:
    return (x, z) + _mask_maps(pre_slope, pre_icpt, z)

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
  h = slopes_in[ci] * root[:, None]                  # the inputs at the new points
  h += icpt_in[ci]
  zi, _ = preactivation(h, kernel, bias, rtol)
  zi[np.arange(ci.size), cn] = 0.0                   # the neuron that crosses
  new_x[pos_new] = root
  new_z[pos_new] = zi
  return (new_x, new_z) + _mask_maps(np.repeat(pre_slope, n_new + 1, axis=0),
                                     np.repeat(pre_icpt, n_new + 1, axis=0), new_z)


def _mask_maps(slopes: np.ndarray, icpts: np.ndarray, z: np.ndarray):
  """Zeroes, in place, the maps of neurons inactive on each interval."""
  off = (z[:-1] + z[1:]) <= 0                        # sign at the midpoint
  slopes[off] = 0.0
  icpts[off] = 0.0
  return slopes, icpts


def pieces_1d_raw(layers: Sequence[tuple[np.ndarray, np.ndarray]], lo: float, hi: float,
                  rtol: float = VALUE_RTOL, max_regions: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Every activation region of a scalar-input network on ``[lo, hi]``.

  Returns:
    ``(x, slopes, intercepts, slope_scale)``: the region boundaries
    including ``lo`` and ``hi`` (shape ``(K + 1,)``), the output's affine
    map ``slopes * x + intercepts`` on each region (``(K, n_out)`` each) and
    the sum of the absolute values of the output slope's own terms
    ``|g_{L-1}| @ |W_L|`` (the neuron-relative scale of its roundoff).

  Raises:
    ValueError: when the count passes ``max_regions`` (default
      ``MAX_REGIONS``), with the count so far and an estimate.
  """
  limit = MAX_REGIONS if max_regions is None else max_regions
  x = np.array([lo, hi], dtype=np.float64)
  h = x[:, None]
  slopes = np.ones((1, 1))
  icpts = np.zeros((1, 1))
  counts = [1]
  for layer, (kernel, bias) in enumerate(layers[:-1]):
    z, _ = preactivation(h, kernel, bias, rtol)
    try:
      x, z, slopes, icpts = _split_layer(x, z, slopes, icpts, kernel, bias, rtol, limit, layer)
    except _TooManyRegions as err:
      raise _too_many("linear_pieces_1d", err.count, layer, len(layers) - 1,
                      err.count / counts[-1], limit) from None
    counts.append(x.shape[0] - 1)
    h = np.maximum(z, 0.0)
  kernel, bias = layers[-1]
  return (x, matmul(slopes, kernel), matmul(icpts, kernel) + bias,
          matmul(np.abs(slopes), np.abs(kernel)))


def merge_equal(slopes: np.ndarray, slope_scale: np.ndarray) -> np.ndarray:
  """Mask of the interior boundaries where no output's slope changes."""
  tol = SLOPE_RTOL * np.maximum(slope_scale[:-1], slope_scale[1:])
  return np.all(np.abs(slopes[1:] - slopes[:-1]) <= tol, axis=1)


def linear_pieces_1d(params: Any, lo: Any, hi: Any, *, merge: bool = True,
                     value_rtol: float | None = None,
                     max_regions: int | None = None) -> LinearPieces:
  """The exact linear pieces of a scalar-input ReLU MLP on ``[lo, hi]``.

  The interval is propagated through the network layer by layer in float64
  (host NumPy, outside ``jax.jit``): on every interval each neuron is
  affine in ``x``, and an interval is cut where a neuron's pre-activation
  changes sign strictly inside it, at the zero of that neuron's affine map
  on the interval (so a breakpoint is located at its own scale: the count
  does not change with the width of ``[lo, hi]``, from ``[0, 1]`` to
  ``[-1e300, 1e300]``). Weights of any float dtype are converted to float64
  exactly; float16 and bfloat16 weights are counted as the exact numbers
  they store, with the float64 tolerances (see ``value_rtol``).
  The cost is linear in the number of pieces (a depth-20 compositional
  network, ``2^20`` pieces, takes about a second); the size guard
  ``max_regions`` stops the enumeration before it runs out of memory.

  Tie and tolerance rules (deterministic):

  * A pre-activation counts as zero when it is within ``value_rtol`` of the
    sum of the absolute values of that neuron's own terms. By default
    ``value_rtol`` is ``VALUE_RTOL`` (1e-10) for float64, float16 and
    bfloat16 weights and 100 units of float32 roundoff (about 1.2e-5) when
    any weight is float32: rounding weights to float32 breaks the exact
    cancellations of :func:`compositional_mlp` and would otherwise add
    sliver pieces narrower than float32 can resolve (a depth-8 network: 256
    pieces, not about 300). Weights stored in 16 bits are exactly
    representable in float64 and the count is that of the stored network
    (a float32 tolerance would be 0.8 for bfloat16, far above its
    features).
    A neuron
    that touches zero without changing sign (``t_1`` of
    :func:`compositional_mlp` at ``x = 0``) never makes a breakpoint.
  * Within one interval the roots of a layer are sorted; a root ``r``
    closer than ``8 * eps * (|r| + e)`` (plus ``8 eps`` times the
    magnitude of the other point) to the previous root or to either end of
    the interval is merged into it, where ``e`` bounds how far rounding the
    neuron's map moves its root (the sums of the absolute values of the
    map's terms over its slope): so coincident or nearly coincident
    breakpoints give one breakpoint, the leftmost, at every scale. Each neuron's state on the
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
    max_regions: the most activation regions to enumerate (default
      ``MAX_REGIONS``, about 2 million, a few hundred MB); past it a
      ``ValueError`` gives the count reached and an estimate of the total.
      Raise it for larger networks.

  Returns:
    :class:`LinearPieces` ``(breakpoints, slopes, intercepts, count)``;
    ``slopes`` and ``intercepts`` have shape ``(count, n_out)`` for every
    number of outputs.

  Raises:
    ValueError: on malformed or non-chaining layers, non-finite or
      non-real weights (naming ``params[i]``), a network whose first kernel
      does not have exactly one row, non-finite ``lo``/``hi`` or ``lo >=
      hi``, ``merge`` that is not a bool, ``value_rtol`` outside ``[0, 1)``,
      ``max_regions`` that is not a positive integer, or more activation
      regions than ``max_regions``.

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
  merge = _check_bool(merge, "merge")
  rtol = _check_rtol(params, value_rtol)
  limit = _check_limit(max_regions)
  x, slopes, intercepts, slope_scale = pieces_1d_raw(layers, lo, hi, rtol, limit)
  if not (np.isfinite(slopes).all() and np.isfinite(intercepts).all()):
    raise ValueError("params, lo and hi give slopes or intercepts that overflow float64 "
                     "(largest finite 1.8e+308); scale the weights or the interval down.")
  first = np.arange(slopes.shape[0])
  if merge and slopes.shape[0] > 1:
    cut = ~merge_equal(slopes, slope_scale)
    first = np.concatenate([[0], np.flatnonzero(cut) + 1])
  return LinearPieces(breakpoints=x[first[1:]], slopes=slopes[first],
                      intercepts=intercepts[first], count=int(first.shape[0]))


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


def regions_2d(params: Any, lo: Any, hi: Any, *, value_rtol: float | None = None,
               max_regions: int | None = None) -> Regions2D:
  """The exact partition of a rectangle into the regions of a 2-input network.

  The rectangle ``[lo[0], hi[0]] x [lo[1], hi[1]]`` is refined layer by
  layer in float64 (on the host, outside ``jax.jit``; params of any float
  dtype are converted): every polygon carries the affine maps of the
  current layer's pre-activations (``z = a_0 y_0 + a_1 y_1 + b`` per
  neuron), and is cut along each zero line that passes strictly through
  it, one line at a time in the order of the neurons, by compiled code
  (numba; compiled once and cached on disk, so the first call in a new
  process only loads it). The regions come in no particular order.

  Tie and tolerance rules (deterministic): a pre-activation of at most
  ``value_rtol`` times its scale at a vertex counts as zero there, i.e. the
  line passes exactly through that vertex. The scale is the sum of the
  absolute values of the neuron's own terms: ``|a_0 y_0| + |a_1 y_1| + |b|``
  plus, past the first layer, ``sum_j |h_j W_ji| + |b_i|`` over the previous
  layer's outputs ``h_j`` at the vertex (as in :func:`linear_pieces_1d`), so
  a map whose coefficients cancel to zero, such as a line through the point
  where two earlier lines meet, is still compared at the scale of its
  terms. So lines
  through existing vertices (several lines through one point, lines through
  the rectangle's corners) and lines along an edge or only touching a
  polygon never create slivers. By default ``value_rtol`` is ``VALUE_RTOL``
  (1e-10) for float64 weights and 100 units of roundoff of the weights'
  dtype for float32 weights (about 1.2e-5), as in :func:`linear_pieces_1d`:
  weights rounded to float32 break exact coincidences (the valleys of
  :func:`compositional_mlp`) by about ``1e-7``, which would otherwise add
  slivers narrower than float32 resolves; float16 and bfloat16 weights are
  exact in float64 and are counted as stored, at the float64 tolerance. A
  polygon is cut only by a neuron strictly positive at one of its vertices
  and strictly negative at another; the cells do not depend on the order of
  the cuts. On each region a neuron is active iff its pre-activation is
  positive somewhere on it (zero throughout counts as inactive).

  A cut point is the intersection of the cutting line with the line the
  edge lies on (a side of the rectangle or an earlier neuron's line), not an
  interpolation between the edge's ends, so vertices are located at their
  own scale: the regions near the origin are the same on a rectangle of
  width 1 or 1e50.

  Args:
    params: an MLP as for :func:`mlp_apply` with exactly two inputs.
    lo: the lower-left corner, two finite numbers.
    hi: the upper-right corner, ``hi[i] > lo[i]``.
    value_rtol: the relative zero tolerance of pre-activations (see above);
      ``None`` picks it from the weights' dtype.
    max_regions: the most cells a layer may have (default
      ``MAX_REGIONS_2D``, about a million); past it a ``ValueError`` gives
      the count reached and an estimate. Raise it for larger networks.

  Returns:
    :class:`Regions2D` ``(vertices, patterns, A, c, count)``.

  Raises:
    ValueError: on malformed or non-chaining layers, non-finite or
      non-real weights, a network whose first kernel does not have two
      rows, a bad rectangle (naming ``lo`` / ``hi``), ``value_rtol`` outside
      ``[0, 1)``, ``max_regions`` that is not a positive integer, or more
      regions than ``max_regions``.

  Example:
    >>> import numpy as np
    >>> import relucomp
    >>> grid = [{"kernel": np.array([[1.0, 0.0], [0.0, 1.0]]), "bias": np.zeros(2)},
    ...         {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
    >>> parts = relucomp.regions_2d(grid, [-1.0, -1.0], [1.0, 1.0])
    >>> parts.count  # the four quadrants
    4
  """
  shapes = _mlp.check_params(params)
  if shapes[0][0] != 2:
    raise ValueError(
        "params must describe a network with two inputs (first kernel of shape "
        f"(2, n)) for a 2-D enumeration; got n_in = {shapes[0][0]}.")
  x0, y0 = _corner(lo, "lo")
  x1, y1 = _corner(hi, "hi")
  if not (x0 < x1 and y0 < y1):
    raise ValueError(f"lo must be smaller than hi in both coordinates; got lo = "
                     f"{[x0, y0]}, hi = {[x1, y1]}.")
  rtol = _check_rtol(params, value_rtol)
  limit = _check_limit(max_regions, MAX_REGIONS_2D)
  flat_layers = np.concatenate([np.ravel(layer[name]) for layer in params
                                for name in ("kernel", "bias")], dtype=np.float64)
  if not np.isfinite(flat_layers).all():
    host_layers(params)                     # raises, naming the first non-finite array
  widths = [n_out for _, n_out in shapes]
  xy, sizes, maps, flat, stopped = _kernel.enumerate_cells(
      np.array([x0, y0, x1, y1]), flat_layers, np.array([2] + widths, np.int64), rtol,
      False, limit)
  if stopped[0] >= 0:
    layer, cells, done, total = stopped.tolist()
    # The layer stopped after `done` of its `total` polygons: extrapolate it.
    raise _too_many("regions_2d", cells, layer, len(widths) - 1,
                    total / max(done, 1), limit)
  if not np.isfinite(maps).all():
    raise ValueError("params, lo and hi give affine maps that overflow float64 (largest "
                     "finite 1.8e+308); scale the weights or the rectangle down.")
  count = maps.shape[0]
  patterns, at = [], 0
  for width in widths[:-1]:
    patterns.append(flat[at:at + count * width].reshape(count, width))
    at += count * width
  vertices, at = [], 0
  for k, regions in enumerate(sizes.tolist()):
    if regions:
      vertices.extend(xy[at:at + regions * k].reshape(regions, k, 2))
      at += regions * k
  return Regions2D(vertices=vertices, patterns=patterns,
                   A=np.transpose(maps[:, :2, :], (0, 2, 1)), c=maps[:, 2, :],
                   count=count)
