"""The compositional network: a plain 4-wide ReLU MLP (docs/concepts.md)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from relucomp import _series
from relucomp import _validation as v

__all__ = ["compositional_mlp", "NEURONS"]

NEURONS = ("t", "u", "acc", "c")
"""Order of the four neurons in every hidden layer of :func:`compositional_mlp`.

``t`` holds the current wave, ``u`` its twin that switches on at the peak,
``acc`` the partial sum plus a constant, and ``c`` a constant that decays
with depth.

Example:
  >>> import relucomp
  >>> relucomp.NEURONS.index("acc")
  2
"""


def _magnitudes(scales: jax.Array) -> jax.Array:
  """Positive per-layer magnitudes m_k, equal to |s_k| wherever s_k != 0.

  A zero scale carries the previous magnitude forward (1 before the first
  non-zero one), so the ratios m_{k+1}/m_k stay finite.
  """
  def step(prev, s):
    m = jnp.where(s != 0, jnp.abs(s), prev)
    return m, m

  _, m = jax.lax.scan(step, jnp.ones((), scales.dtype), scales)
  return m


def compositional_mlp(peaks: ArrayLike, scales: ArrayLike, *,
                      slope: ArrayLike = 1.0) -> list[dict[str, jax.Array]]:
  """Weights of a 4-wide ReLU MLP computing ``compositional(x, peaks, scales)``.

  The network has ``d = len(scales)`` hidden layers of four neurons
  ``(t, u, acc, c)`` and one linear output; on ``[0, 1]`` it equals the
  closed form ``slope * x - sum_i s_i W_i(x)`` and so has ``2^d`` linear
  pieces. In layer ``k`` (with ``m_k = |s_k|``):

  * ``t`` holds ``m_k W_{k-1}(x)`` (always active),
  * ``u`` holds ``m_k relu(W_{k-1}(x) - a_k)``,
  * ``acc`` holds the partial sum ``F_{k-1}(x) + C`` with ``C`` large enough
    to keep it active on ``[0, 1]``,
  * ``c`` holds the constant ``m_k``.

  The decay of the scales is spread over the layers as ratios
  ``m_{k+1}/m_k`` and the sign of ``s_k`` sits in the accumulation weight
  ``s_k / m_k``, so every weight stays of order one for scales that follow
  :func:`enforced_scales`, for either sign of the amplitude.

  Args:
    peaks: 1-D array of length ``d`` or ``d + 1`` with entries in ``(0, 1)``
      (the last of ``d + 1`` is ignored).
    scales: 1-D array ``s_1 .. s_d``, finite, ``d >= 1``.
    slope: the coefficient ``s_0`` of the line.

  Returns:
    A list of ``d + 1`` layers, each ``{"kernel": (n_in, n_out), "bias":
    (n_out,)}``: ``1 -> 4``, ``d - 1`` times ``4 -> 4``, ``4 -> 1``. Use it
    with :func:`mlp_apply` or load it into a flax MLP.

  Raises:
    ValueError: on empty ``scales``, a length mismatch, peaks outside
      ``(0, 1)``, non-finite or complex values, or finite inputs whose
      weights overflow the dtype (a peak so close to 0 or 1, or consecutive
      scales so different in magnitude, that ``1 / (a (1 - a))`` or
      ``|s_(k+1) / s_k|`` is not finite; checked when concrete and under
      :func:`checkified`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> peaks = jnp.array([0.3, 0.6, 0.5, 0.4])
    >>> params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.2))
    >>> [layer["kernel"].shape for layer in params]
    [(1, 4), (4, 4), (4, 4), (4, 1)]
    >>> x = jnp.linspace(0, 1, 7)
    >>> net = relucomp.mlp_apply(params, x[:, None])[:, 0]
    >>> closed = relucomp.compositional(x, peaks, relucomp.enforced_scales(peaks, 0.2))
    >>> bool(jnp.allclose(net, closed, atol=1e-6))
    True
  """
  peaks, scales = _series.check_peaks_scales(peaks, scales)
  v.check_finite(slope, "slope")
  v.check_scalar(slope, "slope")
  dtype = v.float_dtype(peaks, scales, slope)
  layers = _build(peaks.astype(dtype), scales.astype(dtype), jnp.asarray(slope, dtype))
  v.require(lambda w: jnp.isfinite(w), jnp.concatenate(
      [jnp.ravel(layer[name]) for layer in layers for name in ("kernel", "bias")]),
      f"peaks, scales and slope give weights that overflow {jnp.dtype(dtype).name} "
      f"(largest finite {float(jnp.finfo(dtype).max):.3g}): the weights include 1 / (a (1 - a)) "
      "for every peak a and the ratio |s_(k+1) / s_k| of consecutive non-zero scales times "
      "it; use peaks further from 0 and 1, scales of closer magnitudes, or float64.")
  return layers


@jax.jit
def _build(peaks: jax.Array, scales: jax.Array, slope: jax.Array) -> list[dict[str, jax.Array]]:
  dtype = peaks.dtype
  d = scales.shape[0]

  m = _magnitudes(scales)
  sign = scales / m                       # s_k / m_k, in {-1, 0, 1}
  alpha = 1 / peaks                       # slope of T_a left of the peak
  beta = -1 / (peaks * (1 - peaks))       # change of slope at the peak
  total = jnp.abs(slope) + jnp.sum(jnp.abs(scales))
  offset = jnp.where(total > 0, 2 * total, jnp.ones((), dtype))  # C
  zero = jnp.zeros((), dtype)
  one = jnp.ones((), dtype)

  layers = [{
      "kernel": jnp.stack([m[0], m[0], slope, zero])[None, :],
      "bias": jnp.stack([zero, -m[0] * peaks[0], offset, m[0]]),
  }]
  # Hidden layers k -> k+1, built for all k at once: shape (d - 1, 4, 4).
  r = m[1:] / m[:-1]
  a, b, g = alpha[:-1], beta[:-1], sign[:-1]
  z = jnp.zeros_like(r)
  kernels = jnp.stack([
      jnp.stack([r * a, r * a, -g * a, z], axis=-1),            # from t_k
      jnp.stack([r * b, r * b, -g * b, z], axis=-1),            # from u_k
      jnp.stack([z, z, z + 1, z], axis=-1),                     # from acc_k
      jnp.stack([z, -r * peaks[1:], z, r], axis=-1),            # from c_k
  ], axis=-2)
  for k in range(d - 1):
    layers.append({"kernel": kernels[k], "bias": jnp.zeros((4,), dtype)})
  layers.append({
      "kernel": jnp.stack([-sign[-1] * alpha[-1], -sign[-1] * beta[-1], one, zero])[:, None],
      "bias": -offset[None],
  })
  return layers
