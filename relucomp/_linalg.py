"""Symmetric positive definite solves written in plain XLA operations.

Every second-order step of the one-input fits (Levenberg-Marquardt, the
variable-projection least squares of stage 1, the curvature estimate that
places the peaks, the start of ``"dc"``) solves a small damped system
``A x = b`` with ``A`` symmetric positive definite. ``jnp.linalg.solve``
and ``jax.scipy.linalg.cho_solve`` lower, on the CPU, to LAPACK kernels
that split a *batch* of systems (a ``vmap`` of fits) over the CPU's
thread pool and wait for the pieces on a thread of that same pool. When
two such kernels run at once (two fits in two Python threads, or one
program with several independent batched solves) every pool thread can
end up waiting and the program never finishes (seen with jax 0.10.2 on
two cores: it hangs with no error). The Cholesky factorisation here is a
``fori_loop`` over the columns of ordinary array operations, so it runs
wherever XLA runs, batched or not, and never waits on a pool.

The cost is that of LAPACK's unblocked algorithm (``n`` column steps of
``O(n^2)`` work each): for the one-input fits (at most a few hundred
unknowns) about that of forming ``J^T J``. The block Gauss-Newton steps of
``CompositionalDense`` keep LAPACK: their blocks grow with the number of
inputs (thousands of unknowns for an image), where an unblocked loop is
many times slower; two of those programs should not run at once in two
threads on the CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["spd_solve", "lstsq"]


def _cholesky(a: jax.Array) -> jax.Array:
  """Lower Cholesky factor of ``a`` (``(..., n, n)``), left-looking by columns.

  A pivot that rounding has pushed below ``eps * a[j, j]`` (zero or
  negative included) is raised to it: the factor is then of a slightly
  damped matrix, never NaN. The floor is relative to each column's own
  diagonal, so that, like the factorisation itself, it does not depend on
  how the unknowns are scaled.
  """
  n = a.shape[-1]
  finfo = jnp.finfo(a.dtype)
  floor = jnp.maximum(finfo.eps * jnp.abs(jnp.diagonal(a, axis1=-2, axis2=-1)), finfo.tiny)
  rows = jnp.arange(n)

  def column(j, factor):
    # column j of A minus what the finished columns of L already account for
    col = a[..., :, j] - jnp.einsum("...ik,...k->...i", factor, factor[..., j, :])
    pivot = jnp.sqrt(jnp.maximum(col[..., j], floor[..., j]))
    new = jnp.where(rows > j, col / pivot[..., None], 0.0)
    new = jnp.where(rows == j, pivot[..., None], new)
    return factor.at[..., :, j].set(new)

  return jax.lax.fori_loop(0, n, column, jnp.zeros_like(a))


def _forward(factor: jax.Array, b: jax.Array) -> jax.Array:
  """Solves ``L y = b`` for lower triangular ``L`` (``b``: ``(..., n, k)``)."""
  n = factor.shape[-1]

  def row(i, y):
    value = (b[..., i, :] - jnp.einsum("...k,...kj->...j", factor[..., i, :], y))
    return y.at[..., i, :].set(value / factor[..., i, i][..., None])

  return jax.lax.fori_loop(0, n, row, jnp.zeros_like(b))


def _backward(factor: jax.Array, y: jax.Array) -> jax.Array:
  """Solves ``L^T x = y`` for lower triangular ``L``."""
  n = factor.shape[-1]

  def row(step, x):
    i = n - 1 - step
    value = y[..., i, :] - jnp.einsum("...k,...kj->...j", factor[..., :, i], x)
    return x.at[..., i, :].set(value / factor[..., i, i][..., None])

  return jax.lax.fori_loop(0, n, row, jnp.zeros_like(y))


def spd_solve(a: jax.ArrayLike, b: jax.ArrayLike) -> jax.Array:
  """Solves ``a x = b`` for symmetric positive definite ``a`` by Cholesky.

  Args:
    a: ``(..., n, n)``, symmetric positive definite (only its lower triangle
      and diagonal are read).
    b: ``(..., n)`` or ``(..., n, k)``, batch dimensions as ``a``'s.

  Returns:
    ``x`` with the shape of ``b``.

  Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    >>> x = spd_solve(a, jnp.array([1.0, 2.0]))
    >>> bool(jnp.allclose(a @ x, jnp.array([1.0, 2.0]), atol=1e-6))
    True
  """
  a = jnp.asarray(a)
  b = jnp.asarray(b, a.dtype)
  vector = b.ndim == a.ndim - 1
  rhs = b[..., None] if vector else b
  factor = _cholesky(a)
  x = _backward(factor, _forward(factor, rhs))
  return x[..., 0] if vector else x


def lstsq(basis: jax.Array, z: jax.Array) -> jax.Array:
  """Least squares by the normal equations, for a few well-scaled columns.

  A ridge of ``1e-12 trace(B^T B)`` (and the pivot floor of the
  factorisation) keeps a rank-deficient ``basis`` (fewer points than
  columns) finite: the answer is then close to the minimum-norm one.

  Args:
    basis: ``(n, p)``.
    z: ``(n,)``.

  Returns:
    The ``(p,)`` coefficients minimising ``|basis @ c - z|``.

  Example:
    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 5)
    >>> c = lstsq(jnp.stack([jnp.ones_like(t), t], axis=1), 2.0 + 3.0 * t)
    >>> bool(jnp.allclose(c, jnp.array([2.0, 3.0]), atol=1e-4))
    True
  """
  gram = jnp.sum(basis[:, :, None] * basis[:, None, :], axis=0)
  ridge = 1e-12 * jnp.trace(gram) * jnp.eye(gram.shape[0], dtype=gram.dtype)
  return spd_solve(gram + ridge, jnp.sum(basis * z[:, None], axis=0))
