"""The stage-1 reparameterisation of peaks: unconstrained logits <-> peaks.

A peak is ``a = PEAK_MARGIN + (1 - 2 PEAK_MARGIN) sigmoid(theta)`` with
``theta`` trained, so it never leaves ``[PEAK_MARGIN, 1 - PEAK_MARGIN]``.
Shared by the 1-D families ("enforced", "free_scales", "dc").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["PEAK_MARGIN", "peaks_from_logits", "logits_from_peaks"]

#: Peaks are ``a = PEAK_MARGIN + (1 - 2 PEAK_MARGIN) * sigmoid(theta)``.
PEAK_MARGIN = 0.01


def peaks_from_logits(theta: jax.Array) -> jax.Array:
  """Peaks in ``[PEAK_MARGIN, 1 - PEAK_MARGIN]`` from unconstrained ``theta``."""
  return PEAK_MARGIN + (1 - 2 * PEAK_MARGIN) * jax.nn.sigmoid(theta)


def logits_from_peaks(peaks: jax.Array) -> jax.Array:
  """The inverse of :func:`peaks_from_logits` (peaks strictly inside the margin)."""
  u = (peaks - PEAK_MARGIN) / (1 - 2 * PEAK_MARGIN)
  return jnp.log(u) - jnp.log1p(-u)
