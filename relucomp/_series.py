"""The output series F(x) = s_0 x - sum_i s_i W_i(x) and the law (docs/concepts.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from relucomp import _triangle
from relucomp import _validation as v

__all__ = ["enforced_scales", "compositional"]


def check_peaks_scales(peaks: ArrayLike, scales: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Validates the (peaks, scales) pair shared by the closed form and the MLP.

  Returns both as arrays of one floating dtype, with ``peaks`` cut to the
  ``d = len(scales)`` entries the waves use.
  """
  peaks = v.array(peaks, "peaks")
  scales = v.array(scales, "scales")
  if scales.ndim != 1 or scales.shape[0] < 1:
    raise ValueError(
        "scales must be a 1-D array with at least one entry (depth d = "
        f"len(scales) >= 1); got shape {scales.shape}.")
  d = scales.shape[0]
  if peaks.ndim != 1 or peaks.shape[0] not in (d, d + 1):
    raise ValueError(
        f"peaks must be a 1-D array of length d or d + 1 where d = len(scales) "
        f"= {d}; got shape {peaks.shape}.")
  v.check_open_unit(peaks, "peaks")
  v.check_finite(scales, "scales")
  dtype = v.float_dtype(peaks, scales)
  return peaks[:d].astype(dtype), scales.astype(dtype)


def enforced_scales(peaks: ArrayLike, amplitude: ArrayLike) -> jax.Array:
  """The scales that make the output differentiable in the infinite limit.

  The law ``s_{i+1} = s_i (1 - a_{i+1}) a_{i+2}`` with ``s_1 = amplitude``
  fixes every scale from the peaks. A depth-``d`` network needs ``d + 1``
  peaks: the last one only sets the ratio ``s_d / s_{d-1}``.

  Args:
    peaks: 1-D array ``a_1 .. a_{d+1}`` of length ``d + 1 >= 2``, each entry
      in the open interval ``(0, 1)``.
    amplitude: the first scale ``s_1``; positive for a convex output,
      negative for a concave one.

  Returns:
    The scales ``s_1 .. s_d``, shape ``(d,)``.

  Raises:
    ValueError: if ``peaks`` has fewer than two entries, is not 1-D, has an
      entry outside ``(0, 1)``, or ``amplitude`` is not a finite scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> print(relucomp.enforced_scales(jnp.full(4, 0.5), 0.25))  # Yarotsky: 4^-i
    [0.25     0.0625   0.015625]
  """
  peaks = v.array(peaks, "peaks")
  amplitude = v.array(amplitude, "amplitude")
  if peaks.ndim != 1 or peaks.shape[0] < 2:
    raise ValueError(
        "peaks must be a 1-D array of length d + 1 >= 2 (the law needs one "
        f"peak more than the depth d >= 1); got shape {peaks.shape}.")
  if amplitude.ndim != 0:
    raise ValueError(f"amplitude must be a scalar; got shape {amplitude.shape}.")
  v.check_open_unit(peaks, "peaks")
  v.check_finite(amplitude, "amplitude")
  dtype = v.float_dtype(peaks, amplitude)
  return v.check_output(_law(peaks.astype(dtype), amplitude.astype(dtype)),
                        "peaks and amplitude", dtype)


@jax.jit
def _law(peaks: jax.Array, amplitude: jax.Array) -> jax.Array:
  ratios = (1 - peaks[1:-1]) * peaks[2:]
  cumulative = jnp.concatenate([jnp.ones((1,), peaks.dtype), jnp.cumprod(ratios)])
  return amplitude * cumulative


def compositional(x: ArrayLike, peaks: ArrayLike, scales: ArrayLike, *,
                  slope: ArrayLike = 1.0) -> jax.Array:
  """The closed form ``F(x) = slope * x - sum_{i=1..d} s_i W_i(x)``.

  This is the function the network of :func:`compositional_mlp` computes on
  ``[0, 1]``; with every ``s_i != 0`` it has exactly ``2^d`` linear pieces.

  Args:
    x: points, any shape (the network agrees with this formula on
      ``[0, 1]``; outside it the triangles continue as lines).
    peaks: 1-D array of length ``d`` or ``d + 1`` with entries in ``(0, 1)``;
      an extra last peak (as :func:`enforced_scales` needs) is ignored.
    scales: 1-D array ``s_1 .. s_d`` of finite values, ``d >= 1``.
    slope: the coefficient ``s_0`` of the line.

  Returns:
    ``F(x)``, same shape as ``x``.

  Raises:
    ValueError: on empty ``scales``, a length mismatch, peaks outside
      ``(0, 1)``, non-finite values or values that overflow the dtype (when
      concrete).

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> peaks = jnp.full(9, 0.5)
    >>> f = relucomp.compositional(jnp.linspace(0, 1, 5), peaks,
    ...                            relucomp.enforced_scales(peaks, 0.25))
    >>> bool(jnp.max(jnp.abs(f - jnp.linspace(0, 1, 5) ** 2)) < 2.0 ** -18)
    True
  """
  peaks, scales = check_peaks_scales(peaks, scales)
  v.check_finite(slope, "slope")
  v.check_scalar(slope, "slope")
  v.check_finite(x, "x")
  dtype = v.float_dtype(x, peaks, scales, slope)
  return v.check_output(_closed_form(jnp.asarray(x, dtype), peaks.astype(dtype),
                                     scales.astype(dtype), jnp.asarray(slope, dtype)),
                        "x, peaks, scales and slope", dtype)


@jax.jit
def _closed_form(x: jax.Array, peaks: jax.Array, scales: jax.Array,
                 slope: jax.Array) -> jax.Array:
  waves = _triangle.waves(x, peaks)
  return slope * x - jnp.tensordot(scales, waves, axes=1)
