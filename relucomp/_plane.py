"""Exact regions of a network of any number of inputs on a plane or a segment.

A plane ``x(y) = origin + y_0 u_0 + y_1 u_1`` through the input space turns
the network's first layer into a layer of two inputs, ``z = y_0 (u_0 @ K) +
y_1 (u_1 @ K) + (origin @ K + b)``; the rest of the network is unchanged. So
the exact partition of the plane is :func:`regions_2d` of that composed
network, and the pieces along a segment are :func:`linear_pieces_1d` of the
network composed with the segment's map. Each region's affine map is then
written on the full input again, from its activation pattern.

Conditioning of the composition. The composed bias ``origin @ K + b`` is a
sum of ``n_in + 1`` terms that cancel where a neuron's zero line crosses the
plane: a plain float64 dot product there has an error of about ``n_in *
eps * sum_i |origin_i K_ij|``, which, measured in units of the neuron's
change across the plane (``|u @ K|``), grows with ``|origin| / |u|``: a
plane through three nearby points far from the origin (short axes) would
see its lines moved by a visible fraction of its size. The composed bias is
therefore computed with compensated (error-free transformation) products,
:func:`compensated_matmul`, accurate to about one rounding of the result
plus ``(log2(n) eps)^2`` times the sum of the terms' absolute values,
whatever the cancellation or the axes' lengths. The axes' coefficients
``u @ K`` come from a plain product: their error, ``n_in eps`` of their own
terms, tilts a line by that relative amount and is not amplified. The 2-D
and 1-D enumerations then see the plane's network to within a few units of
roundoff (``n_in`` units for the slopes) of its own coefficients, which
their zero tolerance (``value_rtol``, by default the one :func:`regions_2d`
picks for the *given* weights' dtype, ``1e-10`` or coarser) covers with a
wide margin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jax.typing import ArrayLike

from relucomp import _regions

__all__ = ["plane_regions", "segment_pieces", "PlaneRegions", "compensated_matmul"]

#: Axes whose angle has a sine at most this are collinear. Points stored in
#: float32 and lying on one line are off it by relative rounding errors of
#: about 6e-8, which gives sines of that order; this threshold rejects those
#: too, and a plane this thin would be a strip of slivers anyway.
COLLINEAR_SINE = 1e-6
#: ``maps="full"`` refuses to build ``A`` larger than this many bytes.
FULL_MAPS_MAX_BYTES = 1 << 31
MAPS = ("full", "plane")
#: The default rectangle of :func:`plane_regions` in plane coordinates: the
#: triangle's bounding square ``[0, 1]^2`` with a margin of 0.25.
DEFAULT_LO = (-0.25, -0.25)
DEFAULT_HI = (1.25, 1.25)
_SPLIT = 134217729.0            # 2^27 + 1: Dekker's splitting of a float64
# Products of at most this many terms per call of the compensated product.
_CHUNK = 1 << 22


class PlaneRegions(_regions.Regions2D):
  """A :class:`Regions2D` of a plane through three points (from :func:`plane_regions`).

  The same fields as :class:`Regions2D`, with ``vertices`` in the plane's
  coordinates (the three points at ``(0, 0)``, ``(1, 0)`` and ``(0, 1)``)
  and ``A`` of shape ``(count, n_out, n_in)`` on the full input;
  :func:`plot_partition` marks the three points on it.
  """
  __slots__ = ()


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``a + b`` and its rounding error, exactly (Knuth's TwoSum)."""
  s = a + b
  bp = s - a
  return s, (a - (s - bp)) + (b - bp)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  c = _SPLIT * a
  hi = c - (c - a)
  return hi, a - hi


def compensated_matmul(a: np.ndarray, k: np.ndarray) -> np.ndarray:
  """``a @ k`` in float64 as if computed in twice the precision, then rounded.

  Hand-written (NumPy has no compensated product): every product is split
  into its rounded value and its exact error (Dekker's TwoProduct), the
  rounded values are summed pairwise with exact errors (Knuth's TwoSum) and
  all errors are added back at the end (as in Ogita, Rump and Oishi's
  Dot2). The error is at most about ``eps |a @ k| + (log2(n) eps)^2 (|a| @
  |k|)``, against ``n eps (|a| @ |k|)`` for a plain product.

  Args:
    a: ``(r, n)`` float64.
    k: ``(n, m)`` float64, entries below about ``1e290`` in magnitude (the
      splitting multiplies by ``2^27``).

  Returns:
    ``(r, m)`` float64.
  """
  a = np.asarray(a, np.float64)
  k = np.asarray(k, np.float64)
  r, n = a.shape
  m = k.shape[1]
  out = np.empty((r, m))
  if n == 0:
    out[:] = 0.0
    return out
  with np.errstate(over="ignore", invalid="ignore"):   # overflow: non-finite, refused later
    _products(a, k, out)
  return out


def _products(a: np.ndarray, k: np.ndarray, out: np.ndarray) -> None:
  """The compensated product of :func:`compensated_matmul` into ``out``.

  The terms are laid out ``(n, rows, m)`` and padded with zeros to a power
  of two along ``n``, so each pairwise level adds two contiguous halves.
  """
  r, n = a.shape
  m = k.shape[1]
  size = 1 << (n - 1).bit_length()
  k_hi, k_lo = _split(k)
  rows = max(1, _CHUNK // max(1, size * m))
  for start in range(0, r, rows):
    block = a[start:start + rows].T                      # (n, rows)
    a_hi, a_lo = _split(block)
    p = np.zeros((size, block.shape[1], m))
    np.multiply(block[:, :, None], k[:, None, :], out=p[:n])
    err = a_hi[:, :, None] * k_hi[:, None, :]
    err -= p[:n]
    err += a_hi[:, :, None] * k_lo[:, None, :]
    err += a_lo[:, :, None] * k_hi[:, None, :]
    err += a_lo[:, :, None] * k_lo[:, None, :]
    total = err.sum(axis=0)
    half = size
    while half > 1:
      half //= 2
      p, e = _two_sum(p[:half], p[half:2 * half])
      total += e.sum(axis=0)
    out[start:start + rows] = p[0] + total


def compose_first_layer(layers: list[tuple[np.ndarray, np.ndarray]], origin: np.ndarray,
                        axes: np.ndarray) -> list[dict[str, np.ndarray]]:
  """The network composed with ``x = origin + y @ axes`` (``axes`` ``(k, n_in)``).

  Returns float64 params of ``k`` inputs. The composed bias ``origin @ K +
  b`` by :func:`compensated_matmul` (it cancels where a line crosses, and its
  error in units of the plane grows with ``|origin| / |axes|``); the axes'
  coefficients ``axes @ K`` by a plain product, whose error (``n_in eps``
  of the axes' own terms) only tilts a line by that relative amount.
  """
  kernel, bias = layers[0]
  k = axes.shape[0]
  row = np.append(origin, 1.0)[None, :]
  with np.errstate(over="ignore", invalid="ignore"):
    first = np.vstack([axes @ kernel,
                       compensated_matmul(row, np.vstack([kernel, bias[None, :]]))])
  if not np.all(np.isfinite(first)):
    raise ValueError("points must be of moderate size: the plane's (or segment's) "
                     "first-layer coefficients overflow float64.")
  return ([{"kernel": first[:k], "bias": first[k]}]
          + [{"kernel": w, "bias": b} for w, b in layers[1:]])


def full_maps(layers: list[tuple[np.ndarray, np.ndarray]],
              patterns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Each region's affine map on the full input, from its activation pattern.

  ``A = W_L D_{L-1} W_{L-1} ... D_1 W_1`` (``W_l`` the transposed kernels)
  built from the output backwards, ``n_out`` rows at a time, and ``c = b_L +
  sum_l G_l (d_l * b_l)`` with ``G_l`` the product down to layer ``l``.

  Returns:
    ``(A, c)`` of shapes ``(count, n_out, n_in)`` and ``(count, n_out)``.
  """
  kernel, bias = layers[-1]
  n_out = kernel.shape[1]
  count = patterns[0].shape[0] if patterns else 1
  n_in = layers[0][0].shape[0]
  a_full = np.empty((count, n_out, n_in))
  c_full = np.empty((count, n_out))
  widest = max(w.shape[0] for w, _ in layers)
  rows = max(1, _CHUNK // max(1, n_out * widest))
  for start in range(0, count, rows):
    stop = min(count, start + rows)
    g = np.broadcast_to(kernel.T, (stop - start, n_out, kernel.shape[0])).copy()
    c = np.broadcast_to(bias, (stop - start, n_out)).copy()
    for l in range(len(layers) - 2, 0, -1):
      w, b = layers[l]
      g *= patterns[l][start:stop, None, :]
      c += g @ b
      g = (g.reshape(-1, w.shape[1]) @ w.T).reshape(stop - start, n_out, w.shape[0])
    c_full[start:stop] = c
    if len(layers) == 1:
      a_full[start:stop] = g
      continue
    w, b = layers[0]
    g *= patterns[0][start:stop, None, :]
    c_full[start:stop] += g @ b
    # The last product straight into the output (it is the largest array).
    np.matmul(g.reshape(-1, w.shape[1]), w.T, out=a_full[start:stop].reshape(-1, n_in))
  return a_full, c_full


def _points(points: Any, n_in: int, name: str, rows: int | None) -> np.ndarray:
  """``points`` as float64 of shape ``(rows, n_in)`` (``(n_in,)`` if rows is None)."""
  want = (n_in,) if rows is None else (rows, n_in)
  text = f"({n_in},)" if rows is None else f"({rows}, n_in) = ({rows}, {n_in})"
  try:
    arr = np.array(points, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be an array of numbers of shape {text}; got "
                     f"{type(points).__name__}.") from None
  if arr.shape != want:
    raise ValueError(f"{name} must have shape {text} (n_in: the first kernel's rows); "
                     f"got shape {arr.shape}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"{name} must be finite (no NaN or inf).")
  return arr


def _sine(u: np.ndarray, v: np.ndarray) -> float:
  """The sine of the angle between two non-zero vectors (scaled first)."""
  u = u / np.max(np.abs(u))
  v = v / np.max(np.abs(v))
  u = u / np.linalg.norm(u)
  rest = v - (u @ v) * u
  return float(np.linalg.norm(rest) / np.linalg.norm(v))


def plane_axes(points: np.ndarray) -> np.ndarray:
  """The axes ``points[1:] - points[0]``, checked for coincident or collinear points."""
  axes = points[1:] - points[0]
  for i, j in ((0, 1), (0, 2), (1, 2)):
    if np.array_equal(points[i], points[j]):
      raise ValueError(f"points must be three distinct points; points[{i}] and "
                       f"points[{j}] coincide.")
  sine = _sine(axes[0], axes[1])
  if sine <= COLLINEAR_SINE:
    raise ValueError(f"points must not be collinear: the sine of the angle between "
                     f"points[1] - points[0] and points[2] - points[0] is {sine:.1e} "
                     f"(at most {COLLINEAR_SINE:g} counts as collinear).")
  return axes


def _rtol(params: Any, value_rtol: float | None) -> float | None:
  """The zero tolerance of the *given* weights' dtype (the composed ones are float64)."""
  return _regions.value_rtol_for(params) if value_rtol is None else value_rtol


def plane_regions(params: Any, points: ArrayLike, *, lo: Any = DEFAULT_LO,
                  hi: Any = DEFAULT_HI, maps: str = "full",
                  value_rtol: float | None = None) -> PlaneRegions:
  """The exact partition of the plane through three points, for any number of inputs.

  The plane is ``x(y) = points[0] + y_0 (points[1] - points[0]) + y_1
  (points[2] - points[0])``: in its coordinates ``y`` the three points are
  ``(0, 0)``, ``(1, 0)`` and ``(0, 1)``. The rectangle ``[lo[0], hi[0]] x
  [lo[1], hi[1]]`` of plane coordinates (by default the triangle's bounding
  square with a margin of 0.25, ``[-0.25, 1.25]^2``; a parallelogram in the
  input space when the axes are not orthogonal) is partitioned exactly by
  :func:`regions_2d` applied to the network composed with ``x(y)``, and
  every region's affine map is written on the full input from its
  activation pattern, so it is the map :func:`affine_map` gives at any
  point of the region.

  Exactness and tolerance: the composed bias is computed with compensated
  products (about one rounding, whatever the cancellation or the lengths
  of the axes), the slopes with a plain product (see the module notes), and
  the enumeration's zero tolerance is that of :func:`regions_2d` for the
  given weights' dtype (``1e-10`` relative for float64 weights, 100 units
  of roundoff for coarser ones), which is far above the composition's
  error. Runs on the host in float64 (outside ``jax.jit``).

  Cost: the enumeration costs a time per region that grows with the width
  and depth (tens of microseconds at widths 64 to 256 and depths 2 to 3,
  some hundreds at width 512 and depth 5 or 6); the maps on the full input take ``count * n_out * n_in`` float64 numbers
  (a 784-input classifier with 10 outputs: 63 kB per region), so for large
  partitions ask for ``maps="plane"``, the maps in plane coordinates.

  Args:
    params: an MLP as for :func:`mlp_apply` with ``n_in`` inputs (any
      ``n_in >= 1``; for ``n_in = 1`` the three points cannot span a plane).
    points: shape ``(3, n_in)``, three points that are distinct and not
      collinear (the sine of the angle between the axes above ``1e-6``).
    lo: the rectangle's lower-left corner in plane coordinates.
    hi: its upper-right corner, ``hi[i] > lo[i]``.
    maps: ``"full"`` (default): each region's map on the full input, ``A``
      of shape ``(count, n_out, n_in)``; ``"plane"``: in plane coordinates,
      ``A`` of shape ``(count, n_out, 2)`` with ``f(x(y)) = A[r] @ y + c[r]``.
    value_rtol: the relative zero tolerance (see :func:`regions_2d`);
      ``None`` picks it from the dtype of ``params``.

  Returns:
    A :class:`Regions2D` (a ``PlaneRegions``, which :func:`plot_partition`
    marks the points on) with ``vertices`` in plane coordinates, the
    ``patterns``, ``A`` of shape ``(count, n_out, n_in)`` and ``c`` of shape
    ``(count, n_out)``: ``f(x) = A[r] @ x + c[r]`` on region ``r`` (with
    ``maps="plane"``, see above).

  Raises:
    ValueError: on malformed params or non-finite weights (naming
      ``params[i]``), ``points`` not of shape ``(3, n_in)``, not finite,
      coincident or collinear, a bad rectangle (naming ``lo`` / ``hi``),
      an unknown ``maps``, or ``maps="full"`` when ``A`` would exceed 2 GiB.

  Example:
    >>> import numpy as np
    >>> import relucomp
    >>> rng = np.random.default_rng(0)
    >>> params = [{"kernel": rng.normal(size=(64, 16)), "bias": rng.normal(size=16)},
    ...           {"kernel": rng.normal(size=(16, 3)), "bias": np.zeros(3)}]
    >>> points = rng.normal(size=(3, 64))
    >>> regions = relucomp.plane_regions(params, points)
    >>> regions.A.shape[1:]                      # maps on the full 64-D input
    (3, 64)
    >>> x = points.mean(axis=0)                  # the plane's point y = (1/3, 1/3)
    >>> pattern = np.asarray(relucomp.activation_pattern(params, x)[0])
    >>> r = int(np.flatnonzero((regions.patterns[0] == pattern).all(axis=1))[0])
    >>> a, c = relucomp.affine_map(params, x)    # the map of x's region, on the full input
    >>> bool(np.allclose(a, regions.A[r], atol=1e-4) and np.allclose(c, regions.c[r], atol=1e-4))
    True
  """
  layers = _regions.host_layers(params)
  pts = _points(points, layers[0][0].shape[0], "points", 3)
  if maps not in MAPS:
    raise ValueError(f"maps must be one of {MAPS}; got {maps!r}.")
  axes = plane_axes(pts)
  composed = compose_first_layer(layers, pts[0], axes)
  flat = _regions.regions_2d(composed, lo, hi, value_rtol=_rtol(params, value_rtol))
  if maps == "plane":
    return PlaneRegions(*flat)
  size = 8 * flat.count * layers[-1][0].shape[1] * layers[0][0].shape[0]
  if size > FULL_MAPS_MAX_BYTES:
    raise ValueError(
        f"maps='full' would need {size / 2**30:.1f} GiB for A ({flat.count} regions x "
        f"{layers[-1][0].shape[1]} outputs x {layers[0][0].shape[0]} inputs, float64; at most "
        f"{FULL_MAPS_MAX_BYTES / 2**30:g} GiB): pass maps='plane' for the maps in plane "
        "coordinates, or a smaller rectangle.")
  a_full, c_full = full_maps(layers, flat.patterns)
  return PlaneRegions(*flat._replace(A=a_full, c=c_full))


def segment_pieces(params: Any, start: ArrayLike, end: ArrayLike, *, merge: bool = True,
                   value_rtol: float | None = None) -> _regions.LinearPieces:
  """The exact linear pieces of a network of any number of inputs along a segment.

  The segment is ``x(t) = start + t (end - start)`` for ``t`` in ``[0, 1]``;
  its pieces are those of :func:`linear_pieces_1d` applied to the network
  composed with ``x(t)`` (its bias by compensated products, as in
  :func:`plane_regions`; zero tolerance of the given weights' dtype).

  Args:
    params: an MLP as for :func:`mlp_apply` with ``n_in`` inputs.
    start: shape ``(n_in,)``, the point at ``t = 0``.
    end: shape ``(n_in,)``, the point at ``t = 1``, different from ``start``.
    merge: join neighbouring activation regions with equal affine maps, as
      in :func:`linear_pieces_1d`.
    value_rtol: the relative zero tolerance; ``None`` picks it from the
      dtype of ``params``.

  Returns:
    :class:`LinearPieces` in the parameter ``t``: ``breakpoints`` in
    ``(0, 1)``, and on each piece ``f(x(t)) = slopes[k] * t +
    intercepts[k]``.

  Raises:
    ValueError: on malformed params or non-finite weights, ``start`` or
      ``end`` not of shape ``(n_in,)`` or not finite, or ``start == end``.

  Example:
    >>> import numpy as np
    >>> import relucomp
    >>> params = [{"kernel": np.array([[1.0, -1.0], [1.0, -1.0]]), "bias": np.zeros(2)},
    ...           {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]   # |x_0 + x_1|
    >>> pieces = relucomp.segment_pieces(params, [-1.0, -1.0], [3.0, 1.0])
    >>> pieces.count, pieces.breakpoints.tolist(), pieces.slopes[:, 0].tolist()
    (2, [0.3333333333333333], [-6.0, 6.0])
  """
  layers = _regions.host_layers(params)
  n_in = layers[0][0].shape[0]
  start = _points(start, n_in, "start", None)
  end = _points(end, n_in, "end", None)
  if np.array_equal(start, end):
    raise ValueError("end must differ from start (a segment of positive length).")
  composed = compose_first_layer(layers, start, (end - start)[None, :])
  return _regions.linear_pieces_1d(composed, 0.0, 1.0, merge=merge,
                                   value_rtol=_rtol(params, value_rtol))
