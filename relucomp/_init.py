"""Initialisers for the training setups: random MLPs and the shared peaks.

* :func:`kaiming_mlp` is PyTorch's default ``nn.Linear`` initialisation.
* :func:`raai_mlp` is the randomized asymmetric anti-correlated
  initialisation (RAAI) of Singh and Sreejith (2021), as described in
  :func:`raai_layer`.
* :func:`initial_peaks` draws the starting peaks that the compositional
  setups (``"enforced"``, ``"free_scales"``, ``"no_pretrain"``) share.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["kaiming_mlp", "raai_mlp", "raai_layer", "initial_peaks", "WIDTH",
           "PEAK_INIT_RANGE", "RAAI_SIGMA", "mlp_shapes"]

#: Width of every hidden layer (the compositional network's width).
WIDTH = 4
#: Starting peaks are drawn uniformly from this interval.
PEAK_INIT_RANGE = (0.3, 0.7)
#: RAAI's weight scale: entries are N(0, RAAI_SIGMA**2 / fan_in).
RAAI_SIGMA = 0.6007


def mlp_shapes(depth: int, width: int = WIDTH) -> list[tuple[int, int]]:
  """``(n_in, n_out)`` of each layer of a 1-input, 1-output MLP."""
  return [(1, width)] + [(width, width)] * (depth - 1) + [(width, 1)]


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
