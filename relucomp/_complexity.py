"""Local complexity: the exact number of regions near each input.

For every input ``x_i`` and every one of ``planes`` random 2-D planes
through it, the regions of the network met by the disc of radius ``radius``
around ``x_i`` on that plane are counted exactly: the plane's square
``[-radius, radius]^2`` (orthonormal coordinates, so distances are the
input space's) is partitioned by :func:`regions_2d` of the network composed
with the plane (as in :func:`plane_regions`), and a region counts when its
polygon comes closer than ``radius`` to the centre. With ``kind="segment"``
the planes are segments ``x_i + t u`` for ``t`` in ``[-radius, radius]``
and the count is that of their activation regions
(:func:`linear_pieces_1d` with ``merge=False``).

The directions depend on ``key`` only (and on the shape of ``x``), not on
the network, so every snapshot of a training run is counted on the same
planes and the counts are comparable along training.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from relucomp import _plane
from relucomp import _regions

__all__ = ["local_complexity"]

KINDS = ("plane", "segment")


def _stacked_layers(params: Any) -> tuple[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]]:
  """Params with optional leading (snapshot) axes: their batch shape and float64 layers."""
  if isinstance(params, dict) or not isinstance(params, (list, tuple)) or not params:
    _regions.host_layers(params)              # raises the usual message
  try:
    layers = [(np.asarray(layer["kernel"], np.float64), np.asarray(layer["bias"], np.float64))
              for layer in params]
  except (KeyError, TypeError, ValueError):
    _regions.host_layers(params)
    raise
  if layers[0][0].ndim < 2:
    _regions.host_layers(params)
  batch = layers[0][0].shape[:-2]
  for i, (kernel, bias) in enumerate(layers):
    if kernel.shape[:-2] != batch or bias.shape[:-1] != batch:
      raise ValueError(
          f"params[{i}] must have the leading (snapshot) axes {batch} of params[0]['kernel']; "
          f"got kernel {kernel.shape} and bias {bias.shape}.")
  first = [{"kernel": k[(0,) * len(batch)], "bias": b[(0,) * len(batch)]} for k, b in layers]
  _regions.host_layers(first)                 # shapes chain
  for i, (kernel, bias) in enumerate(layers):
    if not np.all(np.isfinite(kernel)):
      raise ValueError(f"params[{i}]['kernel'] must be finite (no NaN or inf).")
    if not np.all(np.isfinite(bias)):
      raise ValueError(f"params[{i}]['bias'] must be finite (no NaN or inf).")
  return batch, layers


def _directions(key: jax.Array, m: int, planes: int, k: int, n_in: int) -> np.ndarray:
  """Orthonormal directions ``(m, planes, k, n_in)``: QR of Gaussian matrices (uniform
  on the Grassmannian), drawn in float32 whatever ``jax_enable_x64``."""
  gauss = np.asarray(jax.random.normal(key, (m, planes, n_in, k), jnp.float32), np.float64)
  q, r = np.linalg.qr(gauss)
  q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
  return np.swapaxes(q, -1, -2)


def _meets_disc(vertices: list[np.ndarray], radius: float) -> int:
  """How many convex CCW polygons come closer than ``radius`` to the origin."""
  by_size: dict[int, list[np.ndarray]] = {}
  for poly in vertices:
    by_size.setdefault(len(poly), []).append(poly)
  total = 0
  for polys in by_size.values():
    v = np.stack(polys)                                  # (g, k, 2)
    w = np.roll(v, -1, axis=1)
    edge = w - v
    # Origin inside (or on) the polygon: on the left of every edge.
    cross = edge[..., 0] * (-v[..., 1]) - edge[..., 1] * (-v[..., 0])
    inside = np.all(cross >= 0, axis=1)
    length2 = np.sum(edge * edge, axis=-1)
    t = np.clip(np.sum(-v * edge, axis=-1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    closest = v + t[..., None] * edge
    distance = np.sqrt(np.min(np.sum(closest * closest, axis=-1), axis=1))
    total += int(np.sum(inside | (distance < radius)))
  return total


def _positive(value: Any, name: str) -> float:
  try:
    out = float(np.asarray(value).reshape(()))
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a positive finite scalar; got {value!r}.") from None
  if not (math.isfinite(out) and out > 0):
    raise ValueError(f"{name} must be a positive finite scalar; got {out}.")
  return out


def local_complexity(params: Any, x: ArrayLike, *, radius: float, key: jax.Array,
                     planes: int = 4, kind: str = "plane",
                     value_rtol: float | None = None) -> np.ndarray:
  """The exact number of regions within ``radius`` of each input, on random planes.

  For each input ``x[i]`` and each of ``planes`` planes through it, spanned
  by two orthonormal directions drawn with ``key`` (the QR of a Gaussian
  ``(n_in, 2)`` matrix, so uniformly random planes), this counts the
  activation regions of the network that the disc of radius ``radius``
  centred at ``x[i]`` in that plane meets (exactly: the plane's square
  ``[-radius, radius]^2`` is partitioned by :func:`regions_2d` of the
  network composed with the plane, its bias by compensated products, and
  each region whose polygon comes closer than ``radius`` to
  the centre counts). With ``kind="segment"`` each plane is replaced by a
  segment ``x[i] + t u``, ``|t| <= radius``, along one random unit
  direction ``u``, and its activation regions are counted. The directions
  depend on ``key`` and the shape of ``x`` only, so different networks (the
  snapshots of one training run) are counted on the same planes.

  ``params`` may carry leading axes (``result.snapshots`` of a ``fit`` run,
  shape ``(S, n_in, n_out)`` per kernel): every network is counted, on the
  same planes. Runs on the host in float64 (outside ``jax.jit``).

  Args:
    params: an MLP as for :func:`mlp_apply` (or a stack of MLPs with the same
      leading axes on every kernel and bias).
    x: inputs of shape ``(m, n_in)``.
    radius: the radius of the neighbourhood (positive), in the units of ``x``.
    key: a JAX PRNG key for the directions.
    planes: the number of planes (or segments) through each input.
    kind: ``"plane"`` (default; needs ``n_in >= 2``) or ``"segment"``.
    value_rtol: the relative zero tolerance (see :func:`regions_2d`);
      ``None`` picks it from the dtype of ``params``.

  Returns:
    Integer counts of shape ``batch + (m, planes)`` (``batch`` the leading
    axes of ``params``, empty for one network); every count is at least 1.

  Raises:
    ValueError: on malformed params or non-finite weights, ``x`` not of shape
      ``(m, n_in)`` or not finite, ``radius`` not positive, ``planes`` not a
      positive integer, an unknown ``kind``, or ``kind="plane"`` with one input.

  Example:
    >>> import jax
    >>> import numpy as np
    >>> import relucomp
    >>> rng = np.random.default_rng(0)
    >>> params = [{"kernel": rng.normal(size=(10, 32)), "bias": rng.normal(size=32)},
    ...           {"kernel": rng.normal(size=(32, 1)), "bias": np.zeros(1)}]
    >>> x = rng.normal(size=(5, 10))
    >>> counts = relucomp.local_complexity(params, x, radius=0.5, key=jax.random.key(0))
    >>> counts.shape, bool((counts >= 1).all())
    ((5, 4), True)
    >>> far = relucomp.local_complexity(params, x, radius=5.0, key=jax.random.key(0))
    >>> bool((far >= counts).all())              # a larger disc meets more regions
    True
  """
  batch, layers = _stacked_layers(params)
  n_in = layers[0][0].shape[-2]
  if np.ndim(x) != 2:
    raise ValueError(f"x must have shape (m, n_in) with n_in = {n_in} (the first kernel's "
                     f"rows); got shape {np.shape(x)}.")
  xs = _plane._points(x, n_in, "x", np.shape(x)[0])
  radius = _positive(radius, "radius")
  if isinstance(planes, bool) or not isinstance(planes, (int, np.integer)) or planes < 1:
    raise ValueError(f"planes must be an integer >= 1; got {planes!r}.")
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
  if kind == "plane" and n_in < 2:
    raise ValueError("kind='plane' needs a network with at least two inputs; got n_in = 1 "
                     "(use kind='segment').")
  if value_rtol is None:
    value_rtol = _regions.value_rtol_for(params)
  m = xs.shape[0]
  k = 2 if kind == "plane" else 1
  dirs = _directions(key, m, int(planes), k, n_in)
  counts = np.empty(batch + (m, int(planes)), np.int64)
  for index in np.ndindex(*batch):
    net = [(w[index], b[index]) for w, b in layers]
    counts[index] = _count_one(net, xs, dirs, radius, kind, value_rtol)
  return counts


def _count_one(layers, xs, dirs, radius, kind, value_rtol) -> np.ndarray:
  """Counts of one network, shape ``(m, planes)``."""
  kernel, bias = layers[0]
  m, planes, k, n_in = dirs.shape
  # The centres' pre-activations by compensated products (they cancel where a
  # zero line passes near x_i); the unit directions' by a plain product (its
  # error is relative to the direction's own terms, not amplified by |x|).
  centre = _plane.compensated_matmul(np.hstack([xs, np.ones((m, 1))]),
                                     np.vstack([kernel, bias[None, :]]))
  slopes = (dirs.reshape(-1, n_in) @ kernel).reshape(m, planes, k, -1)
  rest = [{"kernel": w, "bias": b} for w, b in layers[1:]]
  out = np.empty((m, planes), np.int64)
  lo, hi = (-radius, -radius), (radius, radius)
  for i in range(m):
    for p in range(planes):
      net = [{"kernel": slopes[i, p], "bias": centre[i]}] + rest
      if kind == "plane":
        regions = _regions.regions_2d(net, lo, hi, value_rtol=value_rtol)
        out[i, p] = _meets_disc(regions.vertices, radius)
      else:
        out[i, p] = _regions.linear_pieces_1d(net, -radius, radius, merge=False,
                                              value_rtol=value_rtol).count
  return out
