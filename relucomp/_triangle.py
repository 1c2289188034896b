"""Triangle functions and the triangle waves they compose into (docs/concepts.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from relucomp import _validation as v

__all__ = ["triangle", "triangle_waves"]


def _tent(x: jax.Array, a: jax.Array) -> jax.Array:
  # min(x/a, (1-x)/(1-a)): T_a on [0, 1], extended linearly outside it.
  return jnp.minimum(x / a, (1 - x) / (1 - a))


_tent_jit = jax.jit(_tent)


def triangle(x: ArrayLike, peak: ArrayLike) -> jax.Array:
  """The triangle function ``T_a`` with its peak at ``a``.

  ``T_a(x) = x / a`` for ``0 <= x <= a`` and ``(1 - x) / (1 - a)`` for
  ``a <= x <= 1``, so ``T_a(0) = T_a(1) = 0`` and ``T_a(a) = 1``. Outside
  ``[0, 1]`` the two sides continue as straight lines (negative values).

  Args:
    x: points, any shape.
    peak: the peak location ``a`` in the open interval ``(0, 1)``; a scalar,
      or any shape that broadcasts against ``x``.

  Returns:
    ``T_a(x)`` with the broadcast shape of ``x`` and ``peak`` and a floating
    dtype (float64 when ``jax_enable_x64`` is on and the inputs allow it).

  Raises:
    ValueError: if ``peak`` is not finite or not strictly between 0 and 1,
      if ``x`` is not finite, or if a value overflows the dtype (checked
      when the values are concrete).

  Example:
    >>> import relucomp
    >>> print(relucomp.triangle(0.25, 0.5), relucomp.triangle(0.5, 0.5))
    0.5 1.0
  """
  v.check_open_unit(peak, "peak")
  v.check_finite(x, "x")
  dtype = v.float_dtype(x, peak)
  return v.check_output(_tent_jit(jnp.asarray(x, dtype), jnp.asarray(peak, dtype)),
                        "x and peak", dtype)


def triangle_waves(x: ArrayLike, peaks: ArrayLike) -> jax.Array:
  """The composed triangle waves ``W_1, ..., W_d`` for peaks ``a_1..a_d``.

  ``W_0(x) = x`` and ``W_k(x) = T_{a_k}(W_{k-1}(x))``. On ``[0, 1]`` the wave
  ``W_k`` has exactly ``2^k`` linear pieces and oscillates between 0 and 1.

  Args:
    x: points, any shape.
    peaks: 1-D array of ``d >= 1`` peaks, each in the open interval
      ``(0, 1)``.

  Returns:
    Array of shape ``(d,) + x.shape``: entry ``k - 1`` holds ``W_k(x)``.

  Raises:
    ValueError: if ``peaks`` is not 1-D, is empty, or has an entry outside
      ``(0, 1)``, if ``x`` is not finite, or if a value overflows the dtype
      (when concrete).

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> w = relucomp.triangle_waves(jnp.array([0.0, 0.25, 0.5]), jnp.array([0.5, 0.5]))
    >>> w.shape
    (2, 3)
    >>> print(w[1])
    [0. 1. 0.]
  """
  peaks = v.array(peaks, "peaks")
  if peaks.ndim != 1 or peaks.shape[0] < 1:
    raise ValueError(
        f"peaks must be a 1-D array with at least one entry (depth >= 1); got "
        f"shape {peaks.shape}.")
  v.check_open_unit(peaks, "peaks")
  v.check_finite(x, "x")
  dtype = v.float_dtype(x, peaks)
  return v.check_output(waves(jnp.asarray(x, dtype), peaks.astype(dtype)), "x and peaks", dtype)


@jax.jit
def waves(x: jax.Array, peaks: jax.Array) -> jax.Array:
  """Unchecked :func:`triangle_waves` for validated arrays of one dtype."""
  def step(w, a):
    w = _tent(w, a)
    return w, w

  _, out = jax.lax.scan(step, x, peaks)
  return out
