"""The shared training machinery: normalisation, stage optimisers, the loop.

Every model family of :func:`relucomp.fit` is a :class:`Trainer`: a small,
hashable description of a model (how to start, the stage-1
parameterisation and its prediction, the map to the stage-2 parameters and
their prediction, the plain MLP they compute, the default optimisers).
:func:`train` runs any trainer through the same path::

    normalise (x, y) -> (xn, z)           Problem: the affine maps to fold back
    init(key)       -> stage-1 params      (peaks, amplitudes, ... or None)
    stage 1         -> optax steps on mean((predict1(p, xn) - z)^2)
    stage2_start(p) -> stage-2 params      (e.g. the balanced plain MLP)
    stage 2         -> optax steps on mean((predict2(q, xn) - z)^2)
    to_mlp(q)       -> plain MLP, folded back onto raw x and y

Both stages run as ``lax.scan`` loops inside one ``jax.jit``; the function
is pure in its array arguments, so ``jax.vmap`` over keys or targets trains
many models at once. This module imports no model family.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from relucomp import _levenberg
from relucomp import _validation as v

__all__ = ["Problem", "Trainer", "train", "run_steps", "normalise_1d", "standardise",
           "fold", "mlp_predict", "adam_cosine", "relative_steps", "stage_optimizers",
           "check_lr_optimizer", "check_int", "check_data", "check_key", "snapshots_every",
           "target_range", "INSET", "WARMUP_STEPS", "DEFAULT_RANDOM_INIT_LEARNING_RATE"]

Params = list  # list of {"kernel", "bias"} layers

#: ``x`` is mapped onto ``[INSET, 1 - INSET]`` in 1-D: the construction has
#: kinks at exactly 0 and 1 (every wave vanishes at both ends), and a data
#: point on a kink gets a ReLU derivative decided by rounding.
INSET = 2.0 ** -10
#: Linear warm-up steps of the stage-2 (and one-stage) learning rate.
WARMUP_STEPS = 50
#: Default (absolute) learning rate of the randomly initialised methods.
DEFAULT_RANDOM_INIT_LEARNING_RATE = 1e-3


# --------------------------------------------------------------------------
# Normalisation: raw (x, y) <-> normalised (xn, z), folded into the MLP.

class Problem(NamedTuple):
  """The data on the normalised scale and the maps back to the raw one.

  ``xn = x * in_scale + in_shift`` (per feature) and ``y = ylo + yscale z``.
  """
  xn: jax.Array
  z: jax.Array
  in_scale: jax.Array
  in_shift: jax.Array
  ylo: jax.Array
  yscale: jax.Array
  interval: jax.Array   # (2,) for one input, (k, 2) for several
  y_range: jax.Array    # (2,)


def target_range(y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(ylo, yhi, yscale)``: ``z = (y - ylo) / yscale`` maps ``y`` onto ``[0, 1]``
  (``yscale = 1`` for a constant ``y``)."""
  ylo, yhi = jnp.min(y), jnp.max(y)
  return ylo, yhi, jnp.where(yhi > ylo, yhi - ylo, jnp.ones((), y.dtype))


def _with_target(xn, y, in_scale, in_shift, interval) -> Problem:
  ylo, yhi, yscale = target_range(y)
  return Problem(xn=xn, z=(y - ylo) / yscale, in_scale=in_scale, in_shift=in_shift,
                 ylo=ylo, yscale=yscale, interval=interval, y_range=jnp.stack([ylo, yhi]))


def normalise_1d(x: jax.Array, y: jax.Array) -> Problem:
  """One input: ``x`` affinely onto ``[INSET, 1 - INSET]``, ``y`` by its range."""
  lo, hi = jnp.min(x), jnp.max(x)
  scale = (1 - 2 * INSET) / (hi - lo)
  shift = INSET - lo * scale
  return _with_target(x * scale + shift, y, scale, shift, jnp.stack([lo, hi]))


def standardise(x: jax.Array, y: jax.Array) -> Problem:
  """Several inputs ``(n, k)``: every column to mean 0 and variance 1."""
  mean, std = jnp.mean(x, axis=0), jnp.std(x, axis=0)
  interval = jnp.stack([jnp.min(x, axis=0), jnp.max(x, axis=0)], axis=1)
  return _with_target((x - mean) / std, y, 1 / std, -mean / std, interval)


def fold(mlp: Params, problem: Problem) -> Params:
  """The MLP on normalised ``(xn, z)`` as the MLP on raw ``(x, y)``."""
  out = [dict(layer) for layer in mlp]
  first = out[0]
  n_in = first["kernel"].shape[0]
  scale = jnp.broadcast_to(problem.in_scale, (n_in,))
  shift = jnp.broadcast_to(problem.in_shift, (n_in,))
  out[0] = {"kernel": first["kernel"] * scale[:, None],
            "bias": first["bias"] + shift @ first["kernel"]}
  out[-1] = {"kernel": out[-1]["kernel"] * problem.yscale,
             "bias": out[-1]["bias"] * problem.yscale + problem.ylo}
  return out


def mlp_predict(mlp: Params, xn: jax.Array) -> jax.Array:
  """A plain MLP with one output on ``xn`` of shape ``(n,)`` or ``(n, k)``: ``(n,)``."""
  first = mlp[0]
  if xn.ndim == 1:
    h = xn[:, None] * first["kernel"][0] + first["bias"]
  else:
    h = xn @ first["kernel"] + first["bias"]
  for layer in mlp[1:]:
    h = _small_matmul(jax.nn.relu(h), layer["kernel"]) + layer["bias"]
  return h[:, 0]


def _small_matmul(h: jax.Array, kernel: jax.Array) -> jax.Array:
  """``h @ kernel``; for narrow layers as products and a sum over the short axis.

  XLA rounds a batched matrix product (``jax.vmap`` of fits) differently
  from the unbatched one, and training amplifies that; the elementwise form
  rounds the same batched or not. Wide layers keep the matrix product.
  """
  if max(kernel.shape) > 16:
    return h @ kernel
  return jnp.sum(h[..., :, None] * kernel, axis=-2)


# --------------------------------------------------------------------------
# Optimisers of the two stages.

def adam_cosine(lr: jax.Array, steps: int, *, warmup: bool, b1: float = 0.9,
                eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam (``b2 = 0.99``) with a cosine decay of ``lr`` to ``1e-3`` of it.

  With ``warmup`` the rate first rises linearly over ``min(WARMUP_STEPS,
  steps // 10)`` steps.
  """
  n_warm = min(WARMUP_STEPS, steps // 10) if warmup else 0
  if n_warm > 0:
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, n_warm, steps, 1e-3)
  else:
    unit = optax.cosine_decay_schedule(1.0, max(steps, 1), alpha=1e-3)
  return optax.adam(lambda n: lr * unit(n), b1=b1, b2=0.99, eps=eps)


class RelativeState(NamedTuple):
  """State of :func:`relative_steps`: the inner state and the step scale."""
  inner: Any
  scale: jax.Array
  count: jax.Array


def relative_steps(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """Steps of ``inner`` measured in units of the starting RMS residual.

  At its first update the scale ``rel = sqrt(loss)`` is read from ``value``
  (the loss before that step) and kept; every update is then
  ``rel * inner(grads / rel)``. Adam moves every weight by about its
  learning rate per step, so this makes the rate relative to how far the
  starting network is from the data.
  """
  def init(params):
    return RelativeState(inner.init(params), jnp.ones(()), jnp.zeros((), jnp.int32))

  def update(grads, state, params=None, *, value, **extra):
    del extra
    dtype = jax.tree.leaves(grads)[0].dtype
    rel = jnp.where(state.count == 0, jnp.sqrt(value).astype(dtype),
                    state.scale.astype(dtype))
    rel = jnp.maximum(rel, jnp.finfo(dtype).tiny)
    upd, inner_state = inner.update(jax.tree.map(lambda g: g / rel, grads), state.inner,
                                    params)
    return (jax.tree.map(lambda u: u * rel, upd),
            RelativeState(inner_state, rel, state.count + 1))

  return optax.GradientTransformationExtraArgs(init, update)


def _given(optimizer: Any) -> tuple[Any, Any]:
  if optimizer is None or (isinstance(optimizer, str) and optimizer == "adam"):
    return None, None
  if isinstance(optimizer, optax.GradientTransformation):
    return optimizer, optimizer
  return tuple(optimizer)


def stage_optimizers(optimizer: Any, defaults: tuple[Any, Any]) -> tuple[Any, Any]:
  """``(stage 1, stage 2)``: the given optimisers, ``defaults`` where ``None``."""
  given = _given(optimizer)
  return tuple(d if g is None else g for g, d in zip(given, defaults))


# --------------------------------------------------------------------------
# The model description and the loop.

@dataclasses.dataclass(frozen=True)
class Trainer(abc.ABC):
  """A model family as the loop sees it (frozen: it is a static jit argument).

  Subclasses set their settings as dataclass fields and override the
  methods; all methods are pure functions of their array arguments.
  ``two_stage = False`` means one stage: ``init`` returns the stage-2 start
  and every step trains it.
  """
  two_stage = True

  def normalise(self, x: jax.Array, y: jax.Array) -> Problem:
    return normalise_1d(x, y)

  @abc.abstractmethod
  def init(self, key: jax.Array, problem: Problem, options: Any) -> tuple[Any, dict]:
    """``(start, aux)``: stage-1 params (stage-2 params if one stage) and a
    dict of fixed arrays every other method receives (``aux["sign"]``, if
    present, is reported as ``FitResult.sign``)."""

  # The two stage-1 methods below exist only for two-stage families; a
  # one-stage family (``two_stage = False``) never reaches them.

  def predict1(self, p: Any, aux: dict, xn: jax.Array) -> jax.Array:
    """Stage-1 prediction on the normalised scale (two-stage families)."""
    raise NotImplementedError(f"{type(self).__name__} is two-stage but defines no predict1")

  def stage2_start(self, p: Any, aux: dict) -> Any:
    """Stage-1 params -> the stage-2 params that stage 2 starts from (two-stage families)."""
    raise NotImplementedError(f"{type(self).__name__} is two-stage but defines no stage2_start")

  def predict2(self, q: Any, aux: dict, xn: jax.Array) -> jax.Array:
    """Stage-2 prediction on the normalised scale (default: ``q`` is a plain MLP)."""
    del aux
    return mlp_predict(q, xn)

  def to_mlp(self, q: Any, aux: dict) -> Params:
    """Stage-2 params -> the plain MLP they compute (normalised scale)."""
    del aux
    return q

  def pretrained(self, p: Any, aux: dict) -> Optional[dict]:
    """What ``FitResult.pretrained`` reports of the stage-1 result."""
    del p, aux
    return None

  def default_optimizers(self, lr: jax.Array, n1: int, n2: int) -> tuple[Any, Any]:
    """The optimisers of the two stages when the caller gives none."""
    return adam_cosine(lr[0], n1, warmup=False), adam_cosine(lr[1], n2, warmup=True)


def run_steps(residual_fn: Callable[[Any], jax.Array], params: Any,
              tx: optax.GradientTransformation, steps: int,
              keep: bool = False, batched: Optional[tuple[Callable, Any]] = None
              ) -> tuple[Any, jax.Array, Any]:
  """``steps`` optimiser steps on the mean squared ``residual_fn`` in one ``lax.scan``.

  Returns the params, the loss before each step and, with ``keep``, the
  params after every step stacked along a leading axis (else ``None``).
  Each optimiser gets the extra arguments it takes (see
  :func:`relucomp._levenberg.update`); ``batched = (residual_fn(params,
  batch), batch)`` goes to a transformation that takes it instead
  (:func:`relucomp._levenberg.takes_batch`).
  """
  if steps == 0:
    empty = jnp.zeros((0,), jax.tree.leaves(params)[0].dtype)
    return params, empty, None
  loss_fn = lambda p: jnp.mean(residual_fn(p) ** 2)

  def step(carry, _):
    p, s = carry
    loss, grads = jax.value_and_grad(loss_fn)(p)
    if batched is not None and _levenberg.takes_batch(tx):
      updates, s = tx.update(grads, s, p, residual_fn=batched[0], batch=batched[1])
    else:
      updates, s = _levenberg.update(tx, grads, s, p, loss, loss_fn, residual_fn)
    p = optax.apply_updates(p, updates)
    return (p, s), (loss, p if keep else None)

  (params, _), (losses, traj) = jax.lax.scan(step, (params, tx.init(params)), None,
                                             length=steps)
  return params, losses, traj


def snapshots_every(every: Optional[int], n1: int, n2: int, start: Any,
                    traj1: Any, to_mlp1: Any, traj2: Any, to_mlp2: Any) -> Any:
  """The raw-scale MLPs after ``0, every, 2 every, ...`` steps of both stages.

  ``traj1``/``traj2`` hold the parameters after every step of stage 1 and
  stage 2 (stacked along a leading axis); ``to_mlp1``/``to_mlp2`` turn one
  of them into the plain MLP on the raw scale; ``start`` is the starting MLP.
  """
  if every is None:
    return None
  marks = range(every, n1 + n2 + 1, every)
  first = [s - 1 for s in marks if s <= n1]
  second = [s - n1 - 1 for s in marks if s > n1]
  parts = [jax.tree.map(lambda a: a[None], start)]
  for idx, traj, to_mlp in ((first, traj1, to_mlp1), (second, traj2, to_mlp2)):
    if idx:
      picked = jax.tree.map(lambda a, i=jnp.asarray(idx): a[i], traj)
      parts.append(jax.vmap(to_mlp)(picked))
  return jax.tree.map(lambda *a: jnp.concatenate(a), *parts)


def _in_y_units(loss: jax.Array, yscale: jax.Array) -> jax.Array:
  """``loss * yscale**2`` without overflowing or underflowing on the way:
  the result is finite whenever the dtype can hold it."""
  return (loss * yscale) * yscale


@functools.partial(jax.jit, static_argnames=("trainer", "n1", "n2", "optimizer", "track"))
def train(trainer: Trainer, x: jax.Array, y: jax.Array, key: jax.Array, lr: jax.Array,
          options: Any, *, n1: int, n2: int, optimizer: Any,
          track: Optional[int]) -> dict[str, Any]:
  """Trains ``trainer`` on ``(x, y)``: the arrays of a :class:`FitResult`."""
  problem = trainer.normalise(x, y)
  xn, z = problem.xn, problem.z
  start, aux = trainer.init(key, problem, options)
  if not trainer.two_stage:
    n1, n2 = 0, n1 + n2
  opt1, opt2 = stage_optimizers(optimizer, trainer.default_optimizers(lr, n1, n2))
  keep = track is not None
  raw = lambda q: fold(trainer.to_mlp(q, aux), problem)
  raw1 = lambda p: raw(trainer.stage2_start(p, aux))
  if trainer.two_stage:
    p, hist1, traj1 = run_steps(lambda p: trainer.predict1(p, aux, xn) - z, start, opt1,
                                n1, keep, batched=(
                                    lambda p, b: trainer.predict1(p, aux, b[0]) - b[1],
                                    (xn, z)))
    q0, first_mlp, pretrained = trainer.stage2_start(p, aux), raw1(start), (
        trainer.pretrained(p, aux))
  else:
    q0, hist1, traj1, first_mlp, pretrained = start, None, None, raw(start), None
  residual2 = lambda q: trainer.predict2(q, aux, xn) - z
  q, hist2, traj2 = run_steps(residual2, q0, opt2, n2, keep, batched=(
      lambda q, b: trainer.predict2(q, aux, b[0]) - b[1], (xn, z)))
  history = hist2 if hist1 is None else jnp.concatenate([hist1, hist2])
  loss = jnp.mean(residual2(q) ** 2)
  diverged = ~(jnp.isfinite(loss) & jnp.all(jnp.isfinite(history)))
  snapshots = snapshots_every(track, n1, n2, first_mlp, traj1, raw1, traj2, raw)
  return dict(params=raw(q), mse=_in_y_units(loss, problem.yscale),
              rmse=jnp.sqrt(loss) * problem.yscale,
              history=_in_y_units(history, problem.yscale), diverged=diverged,
              pretrained=pretrained, snapshots=snapshots, interval=problem.interval,
              y_range=problem.y_range,
              sign=jnp.asarray(aux.get("sign", 1.0), x.dtype),
              learning_rate=jnp.asarray(lr, x.dtype))


# --------------------------------------------------------------------------
# Argument checks shared by every family.

def check_int(value: Any, name: str, minimum: int) -> int:
  """``value`` as an ``int`` (Python or NumPy integer, not bool) ``>= minimum``."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
  return int(value)


def check_lr_optimizer(learning_rate: Any, optimizer: Any) -> tuple[jax.Array, Any]:
  """Validates ``learning_rate`` (number or pair) and ``optimizer`` (None, one or two).

  Returns the learning rates as a ``(2,)`` array (NumPy for a concrete
  ``learning_rate``, checked without compiling anything) and the optimiser
  as ``None``, one ``GradientTransformation`` or a pair of them.
  """
  lr = v.host(learning_rate)         # NumPy for a concrete value: nothing compiled
  xp = jnp if lr is None else np
  lr = jnp.asarray(learning_rate) if lr is None else lr
  if lr.ndim == 0:
    lr = xp.stack([lr, lr])
  if lr.shape != (2,) or not jnp.issubdtype(lr.dtype, jnp.number) or jnp.iscomplexobj(lr):
    raise ValueError("learning_rate must be a real number or a pair (stage 1, stage 2); "
                     f"got {learning_rate!r}.")
  positive = lambda a, xp=xp: xp.isfinite(a) & (a > 0)
  v.require(positive, lr, f"learning_rate must be positive and finite; got {learning_rate!r}.",
            host_fn=positive)
  if isinstance(optimizer, str) and optimizer == "adam":
    return lr, "adam"    # the Adam defaults, also where a family defaults to second order
  if optimizer is not None:
    pair = (optimizer,) if isinstance(optimizer, optax.GradientTransformation) else optimizer
    if not (isinstance(pair, (tuple, list)) and len(pair) in (1, 2) and all(
        o is None or isinstance(o, optax.GradientTransformation) for o in pair)):
      raise ValueError("optimizer must be None, \"adam\", an optax GradientTransformation "
                       "or a pair (stage 1, stage 2) of them, where None keeps that stage's "
                       f"default; got {optimizer!r}.")
    if len(pair) == 1:
      optimizer = pair[0]
    else:
      optimizer = None if all(o is None for o in pair) else tuple(pair)
  return lr, optimizer


def check_key(key: Any) -> jax.Array:
  """One PRNG key (new-style or raw ``uint32[2]``), else a ValueError naming ``key``."""
  if isinstance(key, np.ndarray):
    key = jax.device_put(key)          # as jnp.asarray, without compiling a copy
  try:
    arr = key if isinstance(key, jax.Array) else None
    if arr is not None and jnp.issubdtype(arr.dtype, jax.dtypes.prng_key):
      ok = arr.ndim == 0
    else:
      ok = (arr is not None and arr.dtype == jnp.uint32 and arr.shape == (2,))
  except TypeError:
    ok = False
  if not ok:
    shape = getattr(key, "shape", None)
    raise ValueError(
        "key must be one PRNG key, e.g. jax.random.key(0) (for many models use "
        f"jax.vmap over keys or relucomp.fit_batch); got {type(key).__name__}"
        + (f" of shape {tuple(shape)} and dtype {key.dtype}" if shape is not None else "")
        + ".")
  return key


def check_data(x: Any, y: Any, *, features: str,
               method: str = "") -> tuple[jax.Array, jax.Array]:
  """Validates ``x`` and ``y`` and casts both to one floating dtype.

  ``features`` is ``"one"`` (``x`` of shape ``(n,)``), ``"several"``
  (``(n, k)``, ``k >= 2``) or ``"any"`` (either).
  """
  # Concrete values are checked on NumPy copies (no XLA program compiled),
  # traced ones (under jax.vmap, jit) as before: checkify checks if active.
  hx, hy = v.host(x), v.host(y)
  xa = jnp.asarray(x) if hx is None else hx
  ya = jnp.asarray(y) if hy is None else hy
  for a, name in ((xa, "x"), (ya, "y")):
    if not (jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)):
      raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}.")
  if ya.ndim != 1:
    raise ValueError(f"y must be a 1-D array of targets, shape (n,); got shape {ya.shape}.")
  allowed = {"one": (1,), "several": (2,), "any": (1, 2)}[features]
  if xa.ndim not in allowed or (xa.ndim == 2 and features == "several" and xa.shape[1] < 2):
    want = {"one": f"(n,): method={method!r} fits one input (1-D x)",
            "several": f"(n, k) with k >= 2 features for method={method!r}",
            "any": "(n,) or (n, k)"}
    raise ValueError(f"x must have shape {want[features]}; got shape {xa.shape}.")
  if xa.shape[0] != ya.shape[0]:
    raise ValueError("x and y must have the same number of points (the same length); got "
                     f"{xa.shape[0]} rows of x and {ya.shape[0]} targets.")
  if xa.shape[0] < 3:
    raise ValueError(f"x and y need at least 3 points; got {xa.shape[0]}.")
  v.check_finite(xa, "x")
  v.check_finite(ya, "y")
  v.require(lambda a: jnp.all(jnp.max(a, axis=0) > jnp.min(a, axis=0)), xa,
            "x must contain at least two distinct values in every feature (all x equal, "
            "or a constant column).",
            host_fn=lambda a: np.max(a, axis=0) > np.min(a, axis=0))
  dtype = v.float_dtype(xa, ya)
  return _on_device(x, xa, dtype), _on_device(y, ya, dtype)


def _on_device(given: Any, arr: Any, dtype: Any) -> jax.Array:
  """``arr`` (a NumPy copy or a traced array) as a ``dtype`` array; the given
  array itself when it already is one (no copy, nothing compiled)."""
  if isinstance(arr, np.ndarray):
    if isinstance(given, jax.Array) and given.dtype == dtype:
      return given
    return jax.device_put(arr.astype(dtype))
  return arr.astype(dtype)
