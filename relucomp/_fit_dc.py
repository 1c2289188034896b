"""One input, any smooth target: a difference of two compositional networks (``"dc"``).

The target is ``F_a - F_b`` (:func:`relucomp.difference_mlp`). Stage 1
trains both networks' peaks (through :mod:`relucomp._reparam`), their signed
amplitudes (every other scale follows the law), the line of ``F_a`` and an
output bias, through the closed form; the amplitudes, line and bias start at
the least-squares fit for the starting peaks. Stage 2 trains all weights of
the 8-wide MLP built from it, its neurons balanced first. ``params`` is that
one plain MLP (``1 -> 8 -> ... -> 8 -> 1``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from relucomp import _engine as engine
from relucomp import _init
from relucomp import _layer
from relucomp import _levenberg
from relucomp import _mlp
from relucomp._fit_convex import SECOND_ORDER_MAX_PARAMS
from relucomp._linalg import lstsq
from relucomp._reparam import logits_from_peaks, peaks_from_logits
from relucomp._series import compositional, enforced_scales

__all__ = ["DifferenceTrainer", "setup", "DEFAULT_LEARNING_RATE", "STAGE2_B1", "configure",
           "default_steps", "SECOND_ORDER_STEPS", "n_params_of"]

#: Default ``(stage 1, stage 2)`` learning rates (absolute). Stage 2 starts
#: from the stage-1 network with balanced neurons, whose error is already
#: small: on five non-convex targets (x^3 - x, sin 2 pi x, exp(-8 x^2),
#: 1/(1 + 25 x^2), sin 3x + 0.3 x^2) steps of 3e-4 gave a lower median than
#: 1e-4 and 1e-3 on all five.
DEFAULT_LEARNING_RATE = (1e-2, 3e-4)
#: Adam's first-moment decay in stage 2 (as for the convex methods).
STAGE2_B1 = 0.98
#: Default ``(pretrain_steps, finetune_steps)`` of the second-order scheme
#: (networks of at most ``relucomp._fit_convex.SECOND_ORDER_MAX_PARAMS``
#: weights: Adam in stage 1 as before, Levenberg-Marquardt in stage 2), and
#: of Adam in both stages.
SECOND_ORDER_STEPS = (1000, 100)
ADAM_STEPS = (1000, 1000)


def stage1_model(p: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Unconstrained stage-1 parameters -> both networks' peaks and scales."""
  peaks = peaks_from_logits(p["theta"])                        # (2, d + 1)
  scales = jax.vmap(enforced_scales)(peaks, p["amplitude"])    # (2, d)
  return {"peaks": peaks, "scales": scales, "slope": p["slope"], "bias": p["bias"]}


def closed_form(t: jax.Array, m: dict[str, jax.Array]) -> jax.Array:
  """``bias + F_a(t) - F_b(t)`` of a stage-1 model."""
  zero = jnp.zeros_like(m["slope"])
  return (m["bias"] + compositional(t, m["peaks"][0], m["scales"][0], slope=m["slope"])
          - compositional(t, m["peaks"][1], m["scales"][1], slope=zero))


def build_mlp(m: dict[str, jax.Array]) -> list[dict[str, jax.Array]]:
  """The plain 8-wide MLP of a stage-1 model."""
  zero = jnp.zeros_like(m["slope"])
  layers = _layer.difference_mlp(m["peaks"][0], m["scales"][0], m["peaks"][1],
                                 m["scales"][1], slope_a=m["slope"], slope_b=zero)
  layers[-1] = {"kernel": layers[-1]["kernel"], "bias": layers[-1]["bias"] + m["bias"]}
  return layers


def initial_stage1(key: jax.Array, t: jax.Array, z: jax.Array, depth: int) -> dict:
  """Starting peaks from ``key``; amplitudes, line, bias by least squares.

  With the peaks fixed the output is linear in ``(bias, slope, s_a1, s_b1)``
  (the law makes every scale proportional to the amplitude).
  """
  ka, kb = jax.random.split(key)
  peaks = jnp.stack([_init.initial_peaks(ka, depth, dtype=t.dtype),
                     _init.initial_peaks(kb, depth, dtype=t.dtype)])
  unit = jax.vmap(enforced_scales)(peaks, jnp.ones((2,), t.dtype))
  zero = jnp.zeros((), t.dtype)
  wa = compositional(t, peaks[0], unit[0], slope=zero)        # -sum unit_i W_i
  wb = compositional(t, peaks[1], unit[1], slope=zero)
  basis = jnp.stack([jnp.ones_like(t), t, wa, -wb], axis=1)
  coef = lstsq(basis, z)                 # near the minimum norm for few points
  return {"theta": logits_from_peaks(peaks), "amplitude": coef[2:],
          "slope": coef[1], "bias": coef[0]}


@dataclasses.dataclass(frozen=True)
class DifferenceTrainer(engine.Trainer):
  """``"dc"`` at ``depth``; ``second_order``: stage 2 by Levenberg-Marquardt."""
  depth: int = 5
  second_order: bool = False

  def init(self, key, problem, options):
    del options
    return initial_stage1(key, problem.xn, problem.z, self.depth), {}

  def predict1(self, p, aux, xn):
    return closed_form(xn, stage1_model(p))

  def stage2_start(self, p, aux):
    return _mlp.balanced(build_mlp(stage1_model(p)))

  def pretrained(self, p, aux):
    return stage1_model(p)

  def default_optimizers(self, lr, n1, n2):
    stage1 = engine.adam_cosine(lr[0], n1, warmup=False)
    if self.second_order:
      return stage1, _levenberg.levenberg_marquardt()
    return stage1, engine.adam_cosine(lr[1], n2, warmup=True, b1=STAGE2_B1)


def n_params_of(depth: int) -> int:
  """Weights and biases of the 8-wide difference network of ``depth`` layers."""
  return 8 + 8 + (depth - 1) * (64 + 8) + 8 + 1


def configure(trainer: DifferenceTrainer, optimizer: Any) -> DifferenceTrainer:
  """Second order in stage 2 when no optimiser is given and the network is
  small (see :func:`relucomp._fit_convex.configure`)."""
  return dataclasses.replace(trainer, second_order=optimizer is None and (
      n_params_of(trainer.depth) <= SECOND_ORDER_MAX_PARAMS))


def default_steps(trainer: DifferenceTrainer) -> tuple[int, int]:
  """``(pretrain_steps, finetune_steps)`` when ``fit`` is given none."""
  return SECOND_ORDER_STEPS if trainer.second_order else ADAM_STEPS


def setup(x: jax.Array, y: jax.Array, *, method: str, depth: int, width: Any,
          curvature: str) -> tuple[engine.Trainer, Any, int, Any]:
  """``(trainer, options, n_params, default learning rate)`` for checked ``x, y``."""
  del y, method, width, curvature
  return DifferenceTrainer(depth=depth), None, n_params_of(depth), DEFAULT_LEARNING_RATE
