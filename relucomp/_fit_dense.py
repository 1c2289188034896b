"""Dense baselines: randomly initialised ReLU MLPs trained directly.

* ``"kaiming"``: PyTorch's default ``nn.Linear`` initialisation (every
  weight and bias of a layer with ``fan_in`` inputs from
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), width 4 by default for one input,
  any width and any number of inputs.
* ``"raai"``: the RAAI initialisation (:func:`relucomp._init.raai_layer`),
  one input, width 4.

One stage of ``pretrain_steps + finetune_steps`` Adam steps. One input is
normalised as for the compositional methods; several inputs are
standardised per column.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from relucomp import _engine as engine
from relucomp import _init

__all__ = ["DenseTrainer", "setup", "kaiming_dense", "dense_param_count", "dense_width_for",
           "METHODS", "DEFAULT_WIDTH"]

#: The dense methods.
METHODS = ("kaiming", "raai")
#: Hidden width for one input (the compositional network's width).
DEFAULT_WIDTH = _init.WIDTH


def kaiming_dense(key: jax.Array, sizes: tuple[int, ...], dtype: Any) -> list[dict]:
  """PyTorch's default ``nn.Linear`` initialisation of an MLP with ``sizes``."""
  layers = []
  for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1),
                              zip(sizes[:-1], sizes[1:])):
    block = jax.random.uniform(k, (n_in + 1, n_out), dtype, -1.0, 1.0)
    block = block / jnp.sqrt(jnp.asarray(n_in, dtype))
    layers.append({"kernel": block[:n_in], "bias": block[n_in]})
  return layers


def dense_param_count(n_in: int, width: int, depth: int) -> int:
  """Weights and biases of an ``n_in -> width x depth -> 1`` MLP."""
  return n_in * width + width + (depth - 1) * (width * width + width) + width + 1


def dense_width_for(n_in: int, depth: int, n_params: int) -> int:
  """Smallest width whose ``depth``-layer dense MLP has ``>= n_params``."""
  w = 1
  while dense_param_count(n_in, w, depth) < n_params:
    w += 1
  return w


@dataclasses.dataclass(frozen=True)
class DenseTrainer(engine.Trainer):
  """A dense MLP ``n_in -> width x depth -> 1`` from ``init`` ("kaiming"/"raai")."""
  init_name: str = "kaiming"
  depth: int = 5
  width: int = _init.WIDTH
  n_in: int = 1
  two_stage = False

  def normalise(self, x, y):
    return engine.normalise_1d(x, y) if self.n_in == 1 else engine.standardise(x, y)

  def init(self, key, problem, options):
    del options
    dtype = problem.xn.dtype
    if self.init_name == "raai":
      return _init.raai_mlp(key, self.depth, dtype=dtype), {}
    if self.n_in == 1:
      return _init.kaiming_mlp(key, self.depth, width=self.width, dtype=dtype), {}
    sizes = (self.n_in,) + (self.width,) * self.depth + (1,)
    return kaiming_dense(key, sizes, dtype), {}

  def default_optimizers(self, lr, n1, n2):
    return (engine.adam_cosine(lr[0], n1, warmup=False),
            engine.adam_cosine(lr[1], n2, warmup=True))


def setup(x: jax.Array, y: jax.Array, *, method: str, depth: int, width: Any,
          curvature: str) -> tuple[engine.Trainer, Any, int, Any]:
  """``(trainer, options, n_params, default learning rate)`` for checked ``x, y``.

  ``width`` is the hidden width (the front door fills in the default).
  """
  del y, curvature
  n_in = 1 if x.ndim == 1 else x.shape[1]
  width = DEFAULT_WIDTH if width is None else width
  if method == "raai" and width != _init.WIDTH:
    raise ValueError(f"method='raai' has width {_init.WIDTH}; got width={width!r}.")
  trainer = DenseTrainer(init_name=method, depth=depth, width=width, n_in=n_in)
  return (trainer, None, dense_param_count(n_in, width, depth),
          engine.DEFAULT_RANDOM_INIT_LEARNING_RATE)
