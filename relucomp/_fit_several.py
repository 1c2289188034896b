"""Several inputs: a network of two :class:`relucomp.CompositionalDense` layers.

``method="compositional"`` (``x`` of shape ``(n, k)``, ``k >= 2``) trains a
:class:`CompositionalNet` of two layers with ``width`` units each: stage 1
in the layers' reparameterised stage (peaks and amplitudes), stage 2 in the
free stage (the subnetworks' weights, block structure kept). ``params`` is
the plain MLP it computes. Inputs are standardised per column (the layer's
projections assume unit-variance inputs), ``y`` by its range.

Default optimisers: stage 1 Adam with a cosine decay from
``DEFAULT_LEARNING_RATE[0]``, run on ``STARTS`` independent starts at once
(keys split from ``key``; the stage-1 loss in ``FitResult.history`` is
their mean); the start with the lowest stage-1 loss goes on to stage 2.
One start alone ends stage 1 about one time in five on a plateau ten or
more times above the others (r^3: 1.3e-2 against 1.7e-4 to 1.0e-3), which
stage 2 does not leave; the best of four stage-1 runs costs far less than
the second-order stage 2. A stage-1 optimiser given by the caller trains
one start. Stage 2 :func:`relucomp.block_gauss_newton`
(one damped Gauss-Newton solve per unit and per output, combined by a small
least-squares problem with the previous step), which needs no learning rate
(``DEFAULT_LEARNING_RATE[1]`` is the rate of Adam if stage 2 is given
``optax``'s default instead, and is what ``FitResult.learning_rate``
records). ``benchmarks/several_inputs.py`` compares both stage-2
optimisers with the dense baseline.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from relucomp import _block_gauss_newton
from relucomp import _engine as engine
from relucomp import _layer

__all__ = ["CompositionalNet", "SeveralTrainer", "setup", "compositional_param_count",
           "DEFAULT_WIDTH", "DEFAULT_LEARNING_RATE", "STAGE2_B1", "STARTS", "configure"]

#: Units per layer.
DEFAULT_WIDTH = 4
#: Default ``(stage 1, stage 2)`` learning rates (absolute).
DEFAULT_LEARNING_RATE = (1e-2, 3e-4)
#: Adam's first-moment decay in stage 2 (when stage 2 is Adam: an explicit
#: optimiser choice; the default stage 2 is block Gauss-Newton).
STAGE2_B1 = 0.98
#: Independent stage-1 starts of the default (the best goes on to stage 2).
STARTS = 4


class CompositionalNet(nnx.Module):
  """``CompositionalDense(k, width) -> CompositionalDense(width, 1)``.

  Both layers have ``width`` units of ``depth`` layers. No activation sits
  between them (every unit is already a non-linear function of its
  projection), so in the plain MLP the two linear maps between them merge
  into one layer.
  """

  def __init__(self, in_features: int, *, width: int, depth: int, rngs: nnx.Rngs,
               param_dtype: Any = jnp.float32):
    self.first = _layer.CompositionalDense(in_features, width, depth=depth, units=width,
                                           rngs=rngs, param_dtype=param_dtype)
    self.second = _layer.CompositionalDense(width, 1, depth=depth, units=width,
                                            rngs=rngs, param_dtype=param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.second(self.first(x))

  def set_stage(self, stage: str) -> None:
    self.first.set_stage(stage)
    self.second.set_stage(stage)

  def to_mlp(self) -> list[dict[str, jax.Array]]:
    """The plain MLP (``2 depth + 3`` layers) this network computes."""
    return _layer.compose_mlps(_layer.layer_to_mlp(self.first),
                               _layer.layer_to_mlp(self.second))


def compositional_param_count(in_features: int, *, width: int, depth: int) -> int:
  """Trainable parameters of :class:`CompositionalNet` in stage 2 (the larger)."""
  net = nnx.eval_shape(lambda: _free_net(in_features, width, depth, jnp.float32))
  return int(sum(a.size for a in jax.tree.leaves(nnx.state(net, nnx.Param))))


def _free_net(in_features, width, depth, dtype):
  net = CompositionalNet(in_features, width=width, depth=depth, rngs=nnx.Rngs(0),
                         param_dtype=dtype)
  net.set_stage("free")
  return net


@functools.lru_cache(maxsize=None)
def _graphs(in_features: int, width: int, depth: int, dtype: str):
  """The static graph definitions of both stages (abstract: no arrays made)."""
  dt = jnp.dtype(dtype)
  first = nnx.eval_shape(lambda: CompositionalNet(in_features, width=width, depth=depth,
                                                  rngs=nnx.Rngs(0), param_dtype=dt))
  second = nnx.eval_shape(lambda: _free_net(in_features, width, depth, dt))
  return nnx.graphdef(first), nnx.graphdef(second)


@dataclasses.dataclass(frozen=True)
class SeveralTrainer(engine.Trainer):
  """``"compositional"`` on ``in_features`` inputs.

  With ``starts > 1`` the stage-1 parameters are ``starts`` networks
  stacked along a leading axis, ``predict1`` returns their predictions
  ``(starts, n)`` (independent parameters: Adam on the mean loss is one Adam
  run per start) and ``stage2_start`` keeps the one of lowest loss.
  """
  in_features: int = 2
  width: int = DEFAULT_WIDTH
  depth: int = 5
  dtype: str = "float32"
  starts: int = 1

  def normalise(self, x, y):
    return engine.standardise(x, y)

  def _start(self, key, dtype):
    net = CompositionalNet(self.in_features, width=self.width, depth=self.depth,
                           rngs=nnx.Rngs(key), param_dtype=dtype)
    return nnx.state(net, nnx.Param)

  def init(self, key, problem, options):
    del options
    dtype = problem.xn.dtype
    if self.starts == 1:
      return self._start(key, dtype), {}
    states = [self._start(k, dtype) for k in jax.random.split(key, self.starts)]
    return (jax.tree.map(lambda *a: jnp.stack(a), *states),
            {"xn": problem.xn, "z": problem.z})

  def _net(self, p, stage: int):
    return nnx.merge(_graphs(self.in_features, self.width, self.depth, self.dtype)[stage], p)

  def predict1(self, p, aux, xn):
    if self.starts == 1:
      return self._net(p, 0)(xn)[:, 0]
    return jax.vmap(lambda one: self._net(one, 0)(xn)[:, 0])(p)

  def _best(self, p, aux):
    """The start of lowest stage-1 loss (non-finite losses never win)."""
    loss = jnp.mean((self.predict1(p, aux, aux["xn"]) - aux["z"]) ** 2, axis=1)
    best = jnp.argmin(jnp.where(jnp.isfinite(loss), loss, jnp.inf))
    return jax.tree.map(lambda a: a[best], p)

  def stage2_start(self, p, aux):
    if self.starts > 1:
      p = self._best(p, aux)
    net = self._net(p, 0)
    net.set_stage("free")
    return nnx.state(net, nnx.Param)

  def predict2(self, q, aux, xn):
    return self._net(q, 1)(xn)[:, 0]

  def to_mlp(self, q, aux):
    return self._net(q, 1).to_mlp()

  def default_optimizers(self, lr, n1, n2):
    del n2
    return (engine.adam_cosine(lr[0], n1, warmup=False),
            _block_gauss_newton.block_gauss_newton())


def setup(x: jax.Array, y: jax.Array, *, method: str, depth: int, width: Any,
          curvature: str) -> tuple[engine.Trainer, Any, int, Any]:
  """``(trainer, options, n_params, default learning rate)`` for checked ``x, y``."""
  del y, method, curvature
  width = DEFAULT_WIDTH if width is None else width
  trainer = SeveralTrainer(in_features=x.shape[1], width=width, depth=depth,
                           dtype=jnp.dtype(x.dtype).name)
  n_params = compositional_param_count(x.shape[1], width=width, depth=depth)
  return trainer, None, n_params, DEFAULT_LEARNING_RATE


def configure(trainer: SeveralTrainer, optimizer: Any) -> SeveralTrainer:
  """The trainer for ``fit``'s ``optimizer``: ``STARTS`` stage-1 starts when
  stage 1 keeps its default (Adam), one when the caller gives stage 1's."""
  given = engine.stage_optimizers(optimizer, (None, None))[0]
  return dataclasses.replace(trainer, starts=STARTS if given is None else 1)
