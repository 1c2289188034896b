"""A ReLU MLP as a collection of affine maps (MATH.md §4; Heinecke and Hwang).

For an input ``x`` let ``D_l`` be the 0/1 diagonal of the neurons of hidden
layer ``l`` that are active at ``x`` (pre-activation ``> 0``; exactly zero
counts as inactive). On the region of inputs sharing that pattern the network
is affine, ``f(y) = A y + c`` with ``A = W_L D_{L-1} W_{L-1} ... D_1 W_1``,
where ``W_l`` is the transposed kernel of layer ``l``. Everything here is
pure ``jax.numpy``: jittable, vmappable, float32 or float64.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from relucomp import _mlp
from relucomp import _validation as v

__all__ = ["activation_pattern", "affine_map", "region_polytope", "atoms",
           "Atoms", "lipschitz_bound", "local_lipschitz"]


def _prepare(params: Any, x: ArrayLike, *, min_layers: int = 1):
  shapes = _mlp.check_params(params)
  if len(shapes) < min_layers:
    raise ValueError(
        f"params must have at least {min_layers} layers (at least "
        f"{min_layers - 1} hidden); got {len(shapes)}.")
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[-1] != shapes[0][0]:
    raise ValueError(
        f"x must have shape (..., n_in) with n_in = {shapes[0][0]} (the first "
        f"kernel's rows); got shape {x.shape}.")
  for i, layer in enumerate(params):
    v.check_finite(layer["kernel"], f"params[{i}]['kernel']")
    v.check_finite(layer["bias"], f"params[{i}]['bias']")
  v.check_finite(x, "x")
  dtype = v.float_dtype(x, *[layer["kernel"] for layer in params])
  layers = [(jnp.asarray(layer["kernel"], dtype), jnp.asarray(layer["bias"], dtype))
            for layer in params]
  return layers, x.astype(dtype), dtype


def _hidden_maps(layers, x, dtype):
  """Per hidden layer: the pattern and the affine map of the pre-activations.

  Yields ``(d, P, q)`` with ``d`` the 0/1 pattern ``(..., n_l)`` and the
  pre-activation ``z_l(y) = P y + q`` on the region of ``x``: ``P`` of shape
  ``(..., n_l, n_in)`` and ``q`` of shape ``(..., n_l)``.
  """
  n_in = x.shape[-1]
  batch = x.shape[:-1]
  m = jnp.broadcast_to(jnp.eye(n_in, dtype=dtype), batch + (n_in, n_in))
  c = jnp.zeros(batch + (n_in,), dtype)
  out = []
  for kernel, bias in layers[:-1]:
    p = jnp.einsum("jk,...ji->...ki", kernel, m)
    q = c @ kernel + bias
    z = jnp.einsum("...ki,...i->...k", p, x) + q
    d = (z > 0).astype(dtype)
    out.append((d, p, q))
    m = p * d[..., :, None]
    c = q * d
  return out, m, c


def activation_pattern(params: Any, x: ArrayLike) -> list[jax.Array]:
  """Which neurons of each hidden layer are active at ``x``.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    One boolean array of shape ``(..., n_l)`` per hidden layer: ``True``
    where the pre-activation is strictly positive.

  Raises:
    ValueError: on malformed params, non-finite weights or inputs, or ``x``
      whose last axis is not ``n_in``.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> relucomp.activation_pattern(params, jnp.array([2.0]))
    [Array([ True, False], dtype=bool)]
  """
  layers, x, _ = _prepare(params, x)
  pattern = []
  h = x
  for kernel, bias in layers[:-1]:
    z = h @ kernel + bias
    pattern.append(z > 0)
    h = jax.nn.relu(z)
  return pattern


def affine_map(params: Any, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """The affine map ``f(y) = A y + c`` of the network on the region of ``x``.

  ``A = W_L D_{L-1} W_{L-1} ... D_1 W_1`` with the pattern ``D_l`` of ``x``
  (``W_l`` the transposed kernels) and ``c`` the biases carried through the
  same products.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    ``(A, c)`` of shapes ``(..., n_out, n_in)`` and ``(..., n_out)``.

  Raises:
    ValueError: as :func:`activation_pattern`.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.array([0.0, 1.0])},
    ...           {"kernel": jnp.array([[2.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> a, c = relucomp.affine_map(params, jnp.array([-3.0]))  # 0 + (1 - x)
    >>> print(a, c)
    [[-1.]] [1.]
  """
  layers, x, dtype = _prepare(params, x)
  _, m, c = _hidden_maps(layers, x, dtype)
  kernel, bias = layers[-1]
  return jnp.einsum("jk,...ji->...ki", kernel, m), c @ kernel + bias


def region_polytope(params: Any, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """The activation region of ``x`` as ``{y : G y <= h}``.

  Every hidden neuron gives one inequality: its pre-activation, an affine
  function ``P y + q`` on the region, keeps the sign it has at ``x``
  (``P y + q >= 0`` for an active neuron, ``<= 0`` for an inactive one).
  Rows are ordered by layer, then neuron; redundant rows are kept.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    ``(G, h)`` of shapes ``(..., N, n_in)`` and ``(..., N)`` with ``N`` the
    number of hidden neurons.

  Raises:
    ValueError: as :func:`activation_pattern`, or a network without hidden
      layers.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.array([0.0, 1.0])},
    ...           {"kernel": jnp.array([[2.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> g, h = relucomp.region_polytope(params, jnp.array([0.5]))  # 0 <= y <= 1
    >>> print(g[:, 0], h)
    [-1.  1.] [0. 1.]
  """
  layers, x, dtype = _prepare(params, x, min_layers=2)
  maps, _, _ = _hidden_maps(layers, x, dtype)
  rows, rhs = [], []
  for d, p, q in maps:
    sign = 2 * d - 1                              # +1 active, -1 inactive
    rows.append(-sign[..., :, None] * p)
    rhs.append(sign * q)
  return jnp.concatenate(rows, axis=-2), jnp.concatenate(rhs, axis=-1)


class Atoms(NamedTuple):
  """The atomic decomposition of the linear part ``A`` on one region.

  ``A = sum_{p, q} coefficients[..., p, q] * atoms[p, q]``.

  Attributes:
    atoms: rank-one matrices ``outer(W_L[:, p], W_1[q, :])`` of shape
      ``(n_last, n_first, n_out, n_in)``: ``p`` a neuron of the last hidden
      layer, ``q`` one of the first. They depend on the weights only.
    coefficients: shape ``(..., n_last, n_first)``: the sum over active
      paths from ``q`` to ``p`` of the products of the hidden weights along
      the path (zero unless both ends are active). For one hidden layer it
      is the diagonal 0/1 pattern: ``A`` is the sum of the active atoms.
  """
  atoms: jax.Array
  coefficients: jax.Array


def atoms(params: Any, x: ArrayLike) -> Atoms:
  """The rank-one atoms of ``A`` and their path coefficients at ``x``.

  With ``W_l`` the transposed kernels and ``D_l`` the pattern of ``x``,
  ``A = W_L C W_1`` where ``C = D_{L-1} W_{L-1} ... W_2 D_1`` collects, for
  each pair (neuron ``p`` of the last hidden layer, neuron ``q`` of the
  first), the sum of weight products over the active paths from ``q`` to
  ``p``; ``A`` is then the combination of the atoms ``W_L[:, p] W_1[q, :]``
  with coefficients ``C[p, q]`` (Heinecke and Hwang, Theorem 5).

  Args:
    params: an MLP with at least one hidden layer.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    :class:`Atoms` ``(atoms, coefficients)``.

  Raises:
    ValueError: as :func:`activation_pattern`, or a network without hidden
      layers.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[3.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> dec = relucomp.atoms(params, jnp.array([-2.0]))
    >>> print(dec.coefficients)  # only the second neuron is active
    [[0. 0.]
     [0. 1.]]
    >>> print(jnp.einsum("pq,pqoi->oi", dec.coefficients, dec.atoms))
    [[-1.]]
  """
  layers, x, dtype = _prepare(params, x, min_layers=2)
  maps, _, _ = _hidden_maps(layers, x, dtype)
  first = maps[0][0]
  coeff = first[..., :, None] * jnp.eye(first.shape[-1], dtype=dtype)
  for (kernel, _), (d, _, _) in zip(layers[1:-1], maps[1:]):
    coeff = d[..., :, None] * jnp.einsum("jk,...jq->...kq", kernel, coeff)
  k_first = layers[0][0]                          # (n_in, n_first)
  k_last = layers[-1][0]                          # (n_last, n_out)
  atom = jnp.einsum("po,iq->pqoi", k_last, k_first)
  return Atoms(atoms=atom, coefficients=coeff)


def lipschitz_bound(params: Any) -> jax.Array:
  """A global Lipschitz bound: the product of the kernels' spectral norms.

  ReLU is 1-Lipschitz, so ``||f(x) - f(y)||_2 <= prod_l ||W_l||_2
  ||x - y||_2`` for all inputs; every region's ``||A||_2`` is below it.

  Args:
    params: an MLP as for :func:`mlp_apply`.

  Returns:
    A scalar.

  Raises:
    ValueError: on malformed params or non-finite weights.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [0.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.lipschitz_bound(params))
    5.0
  """
  layers, _, _ = _prepare(params, jnp.zeros((_mlp.check_params(params)[0][0],)))
  norms = [jnp.linalg.svd(kernel, compute_uv=False)[0] for kernel, _ in layers]
  return jnp.prod(jnp.stack(norms))


def local_lipschitz(params: Any, x: ArrayLike) -> jax.Array:
  """The exact Lipschitz constant ``||A||_2`` of the network on ``x``'s region.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    The largest singular value of ``A``, shape ``x.shape[:-1]``.

  Raises:
    ValueError: as :func:`activation_pattern`.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [0.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.local_lipschitz(params, jnp.array([1.0])))
    3.0
  """
  a, _ = affine_map(params, x)
  return jnp.linalg.svd(a, compute_uv=False)[..., 0]
