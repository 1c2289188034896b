"""Initialisers for the training setups: random MLPs and the shared peaks.

* :func:`kaiming_mlp` is PyTorch's default ``nn.Linear`` initialisation.
* :func:`raai_mlp` is the randomized asymmetric anti-correlated
  initialisation (RAAI) of Singh and Sreejith (2021), as described in
  :func:`raai_layer`.
* :func:`initial_peaks` draws the starting peaks that the compositional
  setups (``"enforced"``, ``"free_scales"``, ``"no_pretrain"``) share.
* :func:`data_peaks` places them from the data instead: the construction's
  breakpoints follow the target's curvature (:func:`knot_density`,
  :func:`peaks_from_density`), as the knots of free-knot splines do.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from relucomp._linalg import spd_solve

__all__ = ["kaiming_mlp", "raai_mlp", "raai_layer", "initial_peaks", "WIDTH",
           "PEAK_INIT_RANGE", "RAAI_SIGMA", "mlp_shapes", "knot_density", "peaks_from_density",
           "data_peaks", "jitter_peaks", "DENSITY_EXPONENT", "DATA_PEAK_SPREAD"]

#: Width of every hidden layer (the compositional network's width).
WIDTH = 4
#: Starting peaks are drawn uniformly from this interval.
PEAK_INIT_RANGE = (0.3, 0.7)
#: RAAI's weight scale: entries are N(0, RAAI_SIGMA**2 / fan_in).
RAAI_SIGMA = 0.6007
#: Knots of a least-squares piecewise-linear fit are best spread with density
#: ``|f''|^(2/5)`` (the asymptotically optimal density for the L2 error).
DENSITY_EXPONENT = 0.4
#: Standard deviation of the per-key jitter of the data-placed peaks, in the
#: logit of the peak (``a = sigmoid(theta)``).
DATA_PEAK_SPREAD = 0.3
#: Cells of the piecewise-linear fit :func:`knot_density` estimates ``f''`` from.
DENSITY_CELLS = 64


def mlp_shapes(depth: int, width: int = WIDTH) -> list[tuple[int, int]]:
  """``(n_in, n_out)`` of each layer of a 1-input, 1-output MLP."""
  return [(1, width)] + [(width, width)] * (depth - 1) + [(width, 1)]


@functools.partial(jax.jit, static_argnames=("depth", "width", "dtype"))
def kaiming_mlp(key: jax.Array, depth: int, *, width: int = WIDTH,
                dtype=jnp.float32) -> list[dict[str, jax.Array]]:
  """PyTorch's default ``nn.Linear`` initialisation of a 1-to-1 ReLU MLP.

  Every kernel entry and every bias entry of a layer with ``fan_in`` inputs
  is drawn independently from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
  (Kaiming-uniform with ``a = sqrt(5)`` for the weights, and PyTorch's bias
  rule).

  Args:
    key: a PRNG key.
    depth: number of hidden layers (``>= 1``).
    width: neurons per hidden layer.
    dtype: floating dtype of the result.

  Returns:
    ``depth + 1`` layers ``{"kernel": (n_in, n_out), "bias": (n_out,)}``.

  Example:
    >>> import jax
    >>> params = kaiming_mlp(jax.random.key(0), 2)
    >>> [layer["kernel"].shape for layer in params]
    [(1, 4), (4, 4), (4, 1)]
  """
  # One draw for the whole network (cheaper to compile than one per layer).
  shapes = mlp_shapes(depth, width)
  sizes = [n_out * (n_in + 1) for n_in, n_out in shapes]
  u = jax.random.uniform(key, (sum(sizes),), dtype, -1.0, 1.0)
  layers, start = [], 0
  for (n_in, n_out), size in zip(shapes, sizes):
    block = u[start:start + size].reshape(n_in + 1, n_out) / jnp.sqrt(jnp.asarray(n_in, dtype))
    layers.append({"kernel": block[:n_in], "bias": block[n_in]})
    start += size
  return layers


@functools.partial(jax.jit, static_argnames=("n_in", "n_out", "dtype", "parts"))
def raai_layer(key: jax.Array, n_in: int, n_out: int, *, dtype=jnp.float32,
               parts: bool = False):
  """One layer of the RAAI initialisation (as implemented here).

  For every neuron (a column of the kernel together with its bias entry):

  1. its ``n_in`` incoming weights are drawn jointly normal with mean 0,
     variance ``RAAI_SIGMA**2 / n_in`` each and pairwise correlation
     ``-1 / (n_in - 1)`` (the anti-correlated part: the weights of a neuron
     sum to zero; for ``n_in == 1`` there is nothing to correlate);
  2. its bias is drawn ``N(0, RAAI_SIGMA**2 / n_in)``, independent;
  3. one of the ``n_in + 1`` entries (weights and bias), chosen uniformly,
     is replaced by a draw from ``Beta(2, 1)`` (the randomized asymmetric
     part of Lu et al., which keeps each neuron active on part of its input).

  Args:
    key: a PRNG key.
    n_in: fan-in of the layer.
    n_out: number of neurons.
    dtype: floating dtype.
    parts: if true, also return the pieces ``(normal, index, beta)`` the
      layer was built from (``normal`` of shape ``(n_in + 1, n_out)``, the
      bias in the last row), for tests.

  Returns:
    ``{"kernel": (n_in, n_out), "bias": (n_out,)}``, or ``(layer, parts)``.
  """
  kn, ku = jax.random.split(key)
  return _raai_from_draws(jax.random.normal(kn, (n_in + 1, n_out), dtype),
                          jax.random.uniform(ku, (2, n_out), dtype), n_in, parts)


def _raai_from_draws(g: jax.Array, u: jax.Array, n_in: int, parts: bool):
  """RAAI entries from standard normals ``g`` (n_in + 1, n_out), uniforms ``u`` (2, n_out)."""
  dtype = g.dtype
  scale = RAAI_SIGMA / jnp.sqrt(jnp.asarray(n_in, dtype))
  w = g[:n_in]
  if n_in > 1:  # centre and rescale: unit variance, pairwise correlation -1/(n_in - 1)
    w = (w - jnp.mean(w, axis=0, keepdims=True)) * jnp.sqrt(jnp.asarray(n_in / (n_in - 1), dtype))
  normal = scale * jnp.concatenate([w, g[n_in:]], axis=0)
  index = jnp.minimum(jnp.floor(u[0] * (n_in + 1)).astype(jnp.int32), n_in)
  # Beta(2, 1) has CDF v^2 on [0, 1]: the square root of a uniform draw.
  beta = jnp.sqrt(u[1])
  chosen = jnp.arange(n_in + 1)[:, None] == index[None, :]
  entries = jnp.where(chosen, beta[None, :], normal)
  layer = {"kernel": entries[:n_in], "bias": entries[n_in]}
  if parts:
    return layer, (normal, index, beta)
  return layer


@functools.partial(jax.jit, static_argnames=("depth", "width", "dtype"))
def raai_mlp(key: jax.Array, depth: int, *, width: int = WIDTH,
             dtype=jnp.float32) -> list[dict[str, jax.Array]]:
  """RAAI initialisation of a 1-to-1 ReLU MLP.

  Every layer, the linear output layer included, is drawn as
  :func:`raai_layer` describes, with its own fan-in (the random numbers of
  all layers come from one normal and one uniform draw).

  Example:
    >>> import jax
    >>> params = raai_mlp(jax.random.key(0), 3)
    >>> [layer["bias"].shape for layer in params]
    [(4,), (4,), (4,), (1,)]
  """
  shapes = mlp_shapes(depth, width)
  kn, ku = jax.random.split(key)
  n_normal = sum((n_in + 1) * n_out for n_in, n_out in shapes)
  n_unif = sum(2 * n_out for _, n_out in shapes)
  g = jax.random.normal(kn, (n_normal,), dtype)   # one draw each for the whole network
  u = jax.random.uniform(ku, (n_unif,), dtype)
  layers, i, j = [], 0, 0
  for n_in, n_out in shapes:
    gi = g[i:i + (n_in + 1) * n_out].reshape(n_in + 1, n_out)
    ui = u[j:j + 2 * n_out].reshape(2, n_out)
    layers.append(_raai_from_draws(gi, ui, n_in, False))
    i += (n_in + 1) * n_out
    j += 2 * n_out
  return layers


def initial_peaks(key: jax.Array, depth: int, *, dtype=jnp.float32) -> jax.Array:
  """The ``depth + 1`` starting peaks shared by the compositional setups.

  Drawn independently and uniformly from ``PEAK_INIT_RANGE``.

  Example:
    >>> import jax
    >>> initial_peaks(jax.random.key(0), 5).shape
    (6,)
  """
  lo, hi = PEAK_INIT_RANGE
  return jax.random.uniform(key, (depth + 1,), dtype, lo, hi)


@functools.partial(jax.jit, static_argnames=("cells",))
def knot_density(t: jax.Array, z: jax.Array, *, exponent: float = DENSITY_EXPONENT,
                 cells: int = DENSITY_CELLS) -> tuple[jax.Array, jax.Array]:
  """The cumulative knot density ``G`` on ``[0, 1]`` of data ``z(t)``, ``t`` in ``[0, 1]``.

  ``f''`` is estimated from a least-squares piecewise-linear fit of ``z``
  with ``cells`` equal cells (a small penalty on second differences keeps
  cells without data defined): the slope jump at each node over the cell
  width. The density is ``|f''|^exponent`` plus ``1e-3`` of its mean (so
  that straight parts still get some knots); ``G`` is its integral,
  normalised to 1.

  Returns:
    ``(nodes, G)``: ``cells + 1`` nodes ``0 .. 1`` and ``G`` at them
    (nondecreasing, ``G(0) = 0``, ``G(1) = 1``).

  Example:
    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 200)
    >>> nodes, cdf = knot_density(t, t ** 2)     # constant curvature
    >>> bool(jnp.allclose(cdf, nodes, atol=0.05))
    True
  """
  dtype = t.dtype
  nodes = jnp.linspace(0.0, 1.0, cells + 1, dtype=dtype)
  h = 1.0 / cells
  idx = jnp.clip(jnp.floor(t / h).astype(jnp.int32), 0, cells - 1)
  w = t / h - idx
  basis = (jax.nn.one_hot(idx, cells + 1, dtype=dtype) * (1 - w)[:, None]
           + jax.nn.one_hot(idx + 1, cells + 1, dtype=dtype) * w[:, None])
  gram = basis.T @ basis
  second = jnp.diff(jnp.eye(cells + 1, dtype=dtype), 2, axis=0)
  scale = jnp.trace(gram) / (cells + 1)
  coef = spd_solve(gram + 1e-6 * scale * second.T @ second
                   + 1e-9 * scale * jnp.eye(cells + 1, dtype=dtype), basis.T @ z)
  curvature = jnp.abs(jnp.diff(coef, 2)) / h ** 2          # |f''| at the inner nodes
  dens = curvature ** exponent
  dens = jnp.concatenate([dens[:1], (dens[1:] + dens[:-1]) / 2, dens[-1:]])  # per cell
  dens = dens + 1e-3 * jnp.mean(dens) + jnp.finfo(dtype).tiny
  cdf = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(dens)])
  return nodes, cdf / cdf[-1]


@functools.partial(jax.jit, static_argnames=("depth", "candidates"))
def peaks_from_density(nodes: jax.Array, cdf: jax.Array, depth: int, *,
                       candidates: int = 193) -> jax.Array:
  """``depth + 1`` peaks whose breakpoints follow the cumulative density ``cdf``.

  ``nodes`` must be equally spaced from 0 to 1 (as :func:`knot_density`
  returns them).

  Level ``k`` of the construction splits every piece ``[l, r]`` of
  ``W_{k-1}`` at ``l + a_k (r - l)`` where ``W_{k-1}`` rises and at
  ``r - a_k (r - l)`` where it falls (docs/concepts.md). Level by level,
  ``a_k`` is the value on a grid of ``candidates`` in ``[0.02, 0.98]``
  whose breakpoints come closest to splitting every piece's share of knots
  in half: the sum over the pieces of ``(G(knot) - (G(l) + G(r)) / 2)^2``.

  Example:
    >>> import jax.numpy as jnp
    >>> nodes = jnp.linspace(0.0, 1.0, 65)
    >>> print(peaks_from_density(nodes, nodes, 3))   # uniform: Yarotsky's 1/2
    [0.5 0.5 0.5 0.5]
  """
  dtype = nodes.dtype
  cells = nodes.shape[0] - 1

  def cdf_at(q):   # linear interpolation on the uniform nodes (compiles small)
    u = jnp.clip(q, 0.0, 1.0) * cells
    i = jnp.clip(jnp.floor(u).astype(jnp.int32), 0, cells - 1)
    return cdf[i] + (u - i) * (cdf[i + 1] - cdf[i])

  grid = jnp.linspace(0.02, 0.98, candidates, dtype=dtype)
  lo, hi = jnp.zeros((1,), dtype), jnp.ones((1,), dtype)
  rising = jnp.ones((1,), bool)
  peaks = []
  for _ in range(depth + 1):
    half = (cdf_at(lo) + cdf_at(hi)) / 2
    width = hi - lo
    knots = jnp.where(rising[None], lo[None] + grid[:, None] * width[None],
                      hi[None] - grid[:, None] * width[None])
    a = grid[jnp.argmin(jnp.sum((cdf_at(knots) - half[None]) ** 2, axis=1))]
    peaks.append(a)
    knot = jnp.where(rising, lo + a * width, hi - a * width)
    lo = jnp.stack([lo, knot], axis=1).reshape(-1)
    hi = jnp.stack([knot, hi], axis=1).reshape(-1)
    rising = jnp.stack([jnp.ones_like(rising), jnp.zeros_like(rising)], axis=1).reshape(-1)
  return jnp.stack(peaks)


def jitter_peaks(key: jax.Array, peaks: jax.Array, spread: float) -> jax.Array:
  """``peaks`` moved by ``N(0, spread^2)`` in their logit, kept in ``[0.01, 0.99]``."""
  from relucomp._reparam import logits_from_peaks, peaks_from_logits  # pylint: disable=import-outside-toplevel
  theta = logits_from_peaks(jnp.clip(peaks, 0.02, 0.98))
  return peaks_from_logits(theta + spread * jax.random.normal(key, theta.shape, theta.dtype))


@functools.partial(jax.jit, static_argnames=("depth",))
def data_peaks(key: jax.Array, t: jax.Array, z: jax.Array, depth: int, *,
               spread: float = DATA_PEAK_SPREAD) -> jax.Array:
  """Starting peaks from the data: :func:`peaks_from_density` of
  :func:`knot_density`, jittered per key by :func:`jitter_peaks`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 100)
    >>> data_peaks(jax.random.key(0), t, t ** 3, 5).shape
    (6,)
  """
  nodes, cdf = knot_density(t, z)
  return jitter_peaks(key, peaks_from_density(nodes, cdf, depth), spread)
