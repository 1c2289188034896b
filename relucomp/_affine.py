"""A ReLU MLP as a collection of affine maps (Heinecke and Hwang; see docs/concepts.md).

For an input ``x`` let ``D_l`` be the 0/1 diagonal of the neurons of hidden
layer ``l`` that are active at ``x`` (pre-activation ``> 0``; exactly zero
counts as inactive). On the region of inputs sharing that pattern the network
is affine, ``f(y) = A y + c`` with ``A = W_L D_{L-1} W_{L-1} ... D_1 W_1``,
where ``W_l`` is the transposed kernel of layer ``l``. Everything here is
pure ``jax.numpy``: jittable, vmappable, float32 or float64.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import functools

import jax
import jax.numpy as jnp
import numpy as np
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
  x = v.array(x, "x")
  if x.ndim < 1 or x.shape[-1] != shapes[0][0]:
    raise ValueError(
        f"x must have shape (..., n_in) with n_in = {shapes[0][0]} (the first "
        f"kernel's rows); got shape {x.shape}.")
  for i, layer in enumerate(params):
    _check_finite(layer["kernel"], f"params[{i}]['kernel']")
    _check_finite(layer["bias"], f"params[{i}]['bias']")
  _check_finite(x, "x")
  dtype = jnp.dtype(v.float_dtype(x, *[layer["kernel"] for layer in params]))
  layers = [(layer["kernel"], layer["bias"]) for layer in params]
  return layers, x, dtype


def _check_finite(value: Any, name: str) -> None:
  """``check_finite`` with a NumPy test for concrete values (no compile)."""
  host = v.concrete(value)
  if host is None:
    v.check_finite(value, name)          # traced: a checkify check if active
  elif not np.all(np.isfinite(host)):
    raise ValueError(f"{name} must be finite (no NaN or inf).")


def _cast(layers, x, dtype):
  return ([(jnp.asarray(k, dtype), jnp.asarray(b, dtype)) for k, b in layers],
          jnp.asarray(x, dtype))


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
    p = kernel.T @ m                              # (..., n_l, n_in)
    q = c @ kernel + bias
    z = (p @ x[..., None])[..., 0] + q
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
  layers, x, dtype = _prepare(params, x)
  return _pattern_core(layers, x, dtype)


@functools.partial(jax.jit, static_argnames="dtype")
def _pattern_core(layers, x, dtype):
  layers, x = _cast(layers, x, dtype)
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
  return v.check_output(_affine_core(layers, x, dtype), "params and x", dtype)


@functools.partial(jax.jit, static_argnames="dtype")
def _affine_core(layers, x, dtype):
  layers, x = _cast(layers, x, dtype)
  _, m, c = _hidden_maps(layers, x, dtype)
  kernel, bias = layers[-1]
  return kernel.T @ m, c @ kernel + bias


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
  return v.check_output(_polytope_core(layers, x, dtype), "params and x", dtype)


@functools.partial(jax.jit, static_argnames="dtype")
def _polytope_core(layers, x, dtype):
  layers, x = _cast(layers, x, dtype)
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

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[3.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> dec = relucomp.atoms(params, jnp.array([0.5]))
    >>> dec.atoms.shape, dec.coefficients.tolist()
    ((2, 2, 1, 1), [[1.0, 0.0], [0.0, 0.0]])
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
  return v.check_output(_atoms_core(layers, x, dtype), "params and x", dtype)


@functools.partial(jax.jit, static_argnames="dtype")
def _atoms_core(layers, x, dtype):
  layers, x = _cast(layers, x, dtype)
  maps, _, _ = _hidden_maps(layers, x, dtype)
  first = maps[0][0]
  coeff = first[..., :, None] * jnp.eye(first.shape[-1], dtype=dtype)
  for (kernel, _), (d, _, _) in zip(layers[1:-1], maps[1:]):
    coeff = d[..., :, None] * (kernel.T @ coeff)
  k_first = layers[0][0]                          # (n_in, n_first)
  k_last = layers[-1][0]                          # (n_last, n_out)
  atom = jnp.einsum("po,iq->pqoi", k_last, k_first)
  return Atoms(atoms=atom, coefficients=coeff)


_BOUND_METHODS = ("spectral", "max_weight")


def lipschitz_bound(params: Any, *, method: str = "spectral") -> jax.Array:
  """A global Lipschitz bound of the network, by one of two estimates.

  With ``W_l`` the transposed kernels of an ``L``-layer network (``L - 1``
  hidden layers of widths ``n_1 .. n_{L-1}``), every region's linear part
  ``A`` obeys ``||A||_2 <= bound``, so ``||f(x) - f(y)||_2 <= bound
  ||x - y||_2`` for all inputs.

  * ``"spectral"``: ``prod_l ||W_l||_2`` (ReLU is 1-Lipschitz; Heinecke and
    Hwang, Theorem 6(ii)).
  * ``"max_weight"``: Heinecke and Hwang, Theorem 6(i), from the largest
    hidden weight ``w = max_{1 < l < L} max |W_l|`` and the number of paths
    through the hidden layers. ``A = sum_{i, j} C[i, j] W_L[:, i] W_1[j, :]``
    (Theorem 5, see :func:`atoms`) and ``|C[i, j]| <= w^(L-2) n_2 ...
    n_{L-2}``, so

        ||A||_2 <= w^(L-2) n_2 ... n_{L-2} (sum_j ||W_1[j, :]||_2)
                                             (sum_i ||W_L[:, i]||_2).

    ``W_1[j, :]`` is column ``j`` of the first kernel and ``W_L[:, i]`` row
    ``i`` of the last. With these normalised to length 1 (the theorem's
    assumption) the bound is ``w^(L-2) n_1 n_2 ... n_{L-1}``; the form above
    holds without it. For one hidden layer it is ``sum_j ||W_1[j, :]||
    ||W_2[:, j]||``; without hidden layers ``||W_1||_2`` (exact).

  Which is tighter depends on the weights. A hidden ``n x n`` kernel has
  ``||W_l||_2 <= n w``, with equality only for a rank-one kernel of
  equal-magnitude entries; on random Gaussian weights its norm is about
  ``sqrt(n log n)`` times below ``n w``, so ``"spectral"`` is tighter by
  roughly that factor per layer, and on random and trained networks by
  orders of magnitude (the benchmarks page measures both). ``"max_weight"``
  weighs the end layers neuron by neuron, where the product of norms pays a
  whole kernel's norm, so it is the tighter one when the weights are close
  to its worst case: with one hidden layer it pairs each neuron's first- and
  last-layer norms (the example below: 3 where the product of norms is 5);
  first and last kernels that use one neuron each around a hidden
  ``0.5 * ones((n, n))`` give 0.5 (exact) against ``n / 2``.

  16-bit weights are computed in float32 (they are exactly representable).
  ``"max_weight"`` is computed from logarithms, so no intermediate power
  overflows or underflows.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    method: ``"spectral"`` (default) or ``"max_weight"``.

  Returns:
    A scalar of the computing dtype (float32, or float64 under
    ``jax_enable_x64``).

  Raises:
    ValueError: on an unknown ``method``, malformed params, non-finite
      weights, weights beyond the largest number of the computing dtype
      (float64 NumPy weights of 1e200 with float64 disabled: enable
      ``jax_enable_x64``), or a bound that overflows that dtype. Under
      ``jax.jit`` the value checks are skipped (see :func:`checkified`)
      and an overflow gives ``inf``.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [0.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.lipschitz_bound(params))
    5.0
    >>> print(relucomp.lipschitz_bound(params, method="max_weight"))  # 3 * 1 + 4 * 0
    3.0
    >>> print(relucomp.local_lipschitz(params, jnp.array([1.0])))  # exact: 3
    3.0
  """
  if method not in _BOUND_METHODS:
    raise ValueError(f"method must be one of {_BOUND_METHODS}; got {method!r}.")
  layers, _, dtype = _prepare_wide(
      params, np.zeros((_mlp.check_params(params)[0][0],)), biases=False)
  bound = _bound_core(layers, dtype, method)
  _check_overflow(bound, dtype, "the bound")
  return bound


def _prepare_wide(params: Any, x: Any, *, biases: bool):
  """``_prepare`` in at least float32 (LAPACK has no 16-bit SVD), refusing
  concrete values that the computing dtype cannot hold."""
  _mlp.check_params(params)
  host_x = v.concrete(x)
  dtype = v.float_dtype(x if host_x is None else host_x,
                        *[layer["kernel"] for layer in params])
  dtype = jnp.dtype(jnp.promote_types(dtype, jnp.float32))
  _check_fits(params, dtype, biases=biases, x=host_x)
  layers, x, _ = _prepare(params, x)
  return layers, x, dtype


def _check_fits(params: Any, dtype: Any, *, biases: bool, x: Any = None) -> None:
  """Concrete values too large for ``dtype`` would become inf when cast."""
  largest = float(jnp.finfo(dtype).max)
  named = [(f"params[{i}]['{name}']", layer[name]) for i, layer in enumerate(params)
           for name in (("kernel", "bias") if biases else ("kernel",))]
  if x is not None:
    named.append(("x", x))
  for name, value in named:
    host = v.concrete(value)
    if host is None or host.size == 0:
      continue
    peak = float(np.max(np.abs(host.astype(np.float64))))
    if np.isfinite(peak) and peak > largest:
      raise ValueError(
          f"{name} holds values up to {peak:.3g}, beyond the largest {dtype.name} "
          f"({largest:.3g}) the computation runs in; enable jax_enable_x64 to "
          "compute in float64, or rescale.")


def _check_overflow(value: jax.Array, dtype: Any, what: str) -> None:
  host = v.concrete(value)
  if host is not None and not np.all(np.isfinite(host)):
    raise ValueError(
        f"{what} overflows {dtype.name} (the weights are finite, the result is "
        f"larger than {float(jnp.finfo(dtype).max):.3g}); enable jax_enable_x64 "
        "to compute in float64.")


def _scaled(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(a / m, m)`` with ``m`` the largest entry of each matrix (1 where 0),
  so that norms of entries near the dtype's limit do not overflow in LAPACK."""
  if a.size == 0:
    return a, jnp.ones(a.shape[:-2], a.dtype)
  m = jnp.max(jnp.abs(a), axis=(-2, -1), keepdims=True)
  m = jnp.where(m > 0, m, jnp.ones_like(m))
  return a / m, m[..., 0, 0]


def _spectral_norm(kernel: jax.Array) -> jax.Array:
  """``||a||_2`` over the last two axes (0 for an empty matrix)."""
  if kernel.size == 0:
    return jnp.zeros(kernel.shape[:-2], kernel.dtype)
  unit, m = _scaled(kernel)
  return m * jnp.linalg.svd(unit, compute_uv=False)[..., 0]


@functools.partial(jax.jit, static_argnames=("dtype", "method"))
def _bound_core(layers, dtype, method="spectral"):
  layers, _ = _cast(layers, jnp.zeros(()), dtype)
  kernels = [kernel for kernel, _ in layers]
  if method == "spectral" or len(kernels) == 1:
    return jnp.prod(jnp.stack([_spectral_norm(kernel) for kernel in kernels]))
  (first, m_first), (last, m_last) = _scaled(kernels[0]), _scaled(kernels[-1])
  first = jnp.linalg.norm(first, axis=0)          # ||W_1[j, :]|| / m, neuron j of layer 1
  last = jnp.linalg.norm(last, axis=1)            # ||W_L[:, i]|| / m, neuron i of layer L-1
  if len(kernels) == 2:
    return m_first * m_last * jnp.sum(first * last)
  hidden = [kernel for kernel in kernels[1:-1] if kernel.size]
  w = (jnp.max(jnp.stack([jnp.max(jnp.abs(k)) for k in hidden]))
       if len(hidden) == len(kernels) - 2 else jnp.zeros((), dtype))
  widths = [k.shape[1] for k in kernels[1:-2]]   # n_2 .. n_{L-2}
  log_paths = sum(float(np.log(n)) if n else -np.inf for n in widths)
  log_bound = (jnp.log(m_first * jnp.sum(first)) + jnp.log(m_last * jnp.sum(last))
               + (len(kernels) - 2) * jnp.log(w) + log_paths)
  return jnp.exp(log_bound)


def local_lipschitz(params: Any, x: ArrayLike) -> jax.Array:
  """The exact Lipschitz constant ``||A||_2`` of the network on ``x``'s region.

  16-bit inputs are computed in float32; a network with an empty layer is
  constant (0); an empty batch gives an empty result.

  Args:
    params: an MLP as for :func:`mlp_apply`.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    The largest singular value of ``A``, shape ``x.shape[:-1]``.

  Raises:
    ValueError: as :func:`activation_pattern`, on weights or inputs beyond
      the largest number of the computing dtype (enable
      ``jax_enable_x64``), or on a result that overflows it.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [0.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.local_lipschitz(params, jnp.array([1.0])))
    3.0
    >>> relucomp.local_lipschitz(params, jnp.zeros((0, 1))).shape
    (0,)
  """
  layers, x, dtype = _prepare_wide(params, x, biases=True)
  result = _local_core(layers, x, dtype)
  _check_overflow(result, dtype, "the local Lipschitz constant")
  return result


@functools.partial(jax.jit, static_argnames="dtype")
def _local_core(layers, x, dtype):
  a, _ = _affine_core(layers, x, dtype)
  if a.size == 0:
    return jnp.zeros(a.shape[:-2], dtype)
  return _spectral_norm(a)
