"""``fit`` beyond one convex variable: differences (1-D) and several inputs.

:func:`relucomp.fit` hands these cases to :func:`fit_beyond`:

* ``method="dc"`` (``x`` of shape ``(n,)``): the target as a difference of
  two compositional networks ``F_a - F_b`` (:func:`difference_mlp`).
  Stage 1 trains both networks' peaks (``a = 0.01 + 0.98 sigmoid(theta)``,
  as for ``"enforced"``), their signed amplitudes (every other scale
  follows the law), the line of ``F_a`` and an output bias, through the
  closed form; the amplitudes, line and bias start at the least-squares fit
  for the starting peaks. Stage 2 trains all weights of the 8-wide MLP
  built from it, its neurons balanced first (:func:`relucomp.balance_neurons`,
  as for the 1-D methods). ``params`` is that one plain MLP (``1 -> 8 -> ... -> 8 ->
  1``).
* ``method="compositional"`` (``x`` of shape ``(n, k)``, ``k >= 2``): a
  :class:`CompositionalNet` of two :class:`CompositionalDense` layers, both
  with ``width`` units; stage 1 reparameterised, stage 2 free weights.
  ``params`` is the single plain MLP it computes.
* ``method="kaiming"`` with ``x`` of shape ``(n, k)``, or with an explicit
  ``width``: a dense ReLU MLP of ``depth`` hidden layers, PyTorch's default
  initialisation, trained directly for ``pretrain_steps + finetune_steps``
  steps. For ``(n, k)`` inputs its default width is the smallest that gives
  at least as many trainable parameters as ``"compositional"`` with the
  same ``depth`` and ``width``.

Normalisation: 1-D inputs are mapped onto ``[INSET, 1 - INSET]`` and ``y``
by its range onto ``[0, 1]`` exactly as for the 1-D methods; several inputs
are standardised per column (the layer's projections assume unit-variance
inputs) and ``y`` by its range. The maps are folded into the first and last
layers, so ``mlp_apply(result.params, x)`` predicts raw ``y``. Optimisers
follow :func:`fit` (default Adam with cosine decays; learning rates
``DEFAULT_LEARNING_RATE[method]`` for the two stages, ``(1e-2, 3e-4)`` for
both; stage 2 with first-moment decay ``STAGE2_B1 = 0.98`` like the 1-D
methods, the dense baseline with plain Adam).

Every step of both stages runs in one ``lax.scan`` inside one ``jax.jit``;
the functions are pure in their array arguments, so ``jax.vmap`` over keys
or targets trains many models at once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from relucomp import _init
from relucomp import _layer
from relucomp import _levenberg
from relucomp import _mlp
from relucomp import _training
from relucomp import _validation as v
from relucomp._series import compositional, enforced_scales

__all__ = ["fit_beyond", "CompositionalNet", "METHODS", "DEFAULT_WIDTH"]

#: Methods handled here (``"kaiming"`` only for several inputs or a given width).
METHODS = ("dc", "compositional", "kaiming")
#: Units per layer of ``"compositional"``.
DEFAULT_WIDTH = 4

Params = list


# -- helpers -----------------------------------------------------------------

def _run(residual_fn: Callable[[Any], jax.Array], params: Any,
         tx: optax.GradientTransformation, steps: int,
         keep: bool = False) -> tuple[Any, jax.Array, Any]:
  """``steps`` optimiser steps on the mean squared ``residual_fn`` in one ``lax.scan``.

  Returns the params, the loss before each step and, with ``keep``, the
  params after every step stacked along a leading axis (else ``None``).
  """
  state = tx.init(params)
  loss_fn = lambda p: jnp.mean(residual_fn(p) ** 2)

  def step(carry, _):
    p, s = carry
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, s = _levenberg.update(tx, grads, s, p, loss, loss_fn, residual_fn)
    p = optax.apply_updates(p, updates)
    return (p, s), (loss, p if keep else None)

  (params, _), (losses, traj) = jax.lax.scan(step, (params, state), None, length=steps)
  return params, losses, traj


def fold_affine(params: Params, *, in_shift: jax.Array, in_scale: jax.Array,
                out_shift: jax.Array, out_scale: jax.Array) -> Params:
  """The MLP on raw ``x`` equal to ``out_shift + out_scale * mlp((x - in_shift) / in_scale)``.

  ``in_shift``/``in_scale`` are scalars or have shape ``(n_in,)``.
  """
  out = [dict(p) for p in params]
  n_in = out[0]["kernel"].shape[0]
  in_shift = jnp.broadcast_to(in_shift, (n_in,))
  in_scale = jnp.broadcast_to(in_scale, (n_in,))
  kernel = out[0]["kernel"] / in_scale[:, None]
  out[0] = {"kernel": kernel, "bias": out[0]["bias"] - in_shift @ kernel}
  out[-1] = {"kernel": out[-1]["kernel"] * out_scale,
             "bias": out[-1]["bias"] * out_scale + out_shift}
  return out


def _residual(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
  return _mlp.mlp_apply(params, x)[..., 0] - y


def _mse(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(_residual(params, x, y) ** 2)


def kaiming_dense(key: jax.Array, sizes: tuple[int, ...], dtype: Any) -> Params:
  """PyTorch's default ``nn.Linear`` initialisation of an MLP with ``sizes``.

  Every weight and bias of a layer with ``fan_in`` inputs is drawn from
  ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (as :func:`relucomp._init.kaiming_mlp`,
  for any number of inputs).
  """
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


# -- 1-D: difference of two compositional networks ------------------------------

def _dc_model(p: dict[str, jax.Array]) -> dict[str, jax.Array]:
  peaks = _training._peaks(p["theta"])                        # (2, d + 1)
  scales = jax.vmap(enforced_scales)(peaks, p["amplitude"])    # (2, d)
  return {"peaks": peaks, "scales": scales, "slope": p["slope"], "bias": p["bias"]}


def _dc_closed(t: jax.Array, m: dict[str, jax.Array]) -> jax.Array:
  zero = jnp.zeros_like(m["slope"])
  return (m["bias"] + compositional(t, m["peaks"][0], m["scales"][0], slope=m["slope"])
          - compositional(t, m["peaks"][1], m["scales"][1], slope=zero))


def _dc_mlp(m: dict[str, jax.Array]) -> Params:
  zero = jnp.zeros_like(m["slope"])
  layers = _layer.difference_mlp(m["peaks"][0], m["scales"][0], m["peaks"][1],
                                 m["scales"][1], slope_a=m["slope"], slope_b=zero)
  layers[-1] = {"kernel": layers[-1]["kernel"], "bias": layers[-1]["bias"] + m["bias"]}
  return layers


def _dc_initial(key: jax.Array, t: jax.Array, z: jax.Array, depth: int) -> dict:
  """Shared-law starting peaks from ``key``; amplitudes, line, bias by least squares.

  With the peaks fixed the output is linear in ``(bias, slope, s_a1, s_b1)``
  (the law makes every scale proportional to the amplitude).
  """
  ka, kb = jax.random.split(key)
  peaks = jnp.stack([_init.initial_peaks(ka, depth, dtype=t.dtype),
                     _init.initial_peaks(kb, depth, dtype=t.dtype)])
  one = jnp.ones((2,), t.dtype)
  unit = jax.vmap(enforced_scales)(peaks, one)
  zero = jnp.zeros((), t.dtype)
  wa = compositional(t, peaks[0], unit[0], slope=zero)        # -sum unit_i W_i
  wb = compositional(t, peaks[1], unit[1], slope=zero)
  basis = jnp.stack([jnp.ones_like(t), t, wa, -wb], axis=1)
  coef = jnp.linalg.lstsq(basis, z)[0]   # minimum norm: fine for few points
  return {"theta": _training._peaks_inverse(peaks), "amplitude": coef[2:],
          "slope": coef[1], "bias": coef[0]}


@functools.partial(jax.jit, static_argnames=("depth", "n1", "n2", "optimizer", "track"))
def _train_dc(x, y, key, lr, *, depth, n1, n2, optimizer, track=None):
  norm = _training.normalisation(x, y)
  t = x * norm["tscale"] + norm["tshift"]
  z = (y - norm["ylo"]) / norm["yscale"]
  opt1, opt2 = _training.stage_optimizers(optimizer, lr, n1, n2, b1=_training.STAGE2_B1)
  p0 = _dc_initial(key, t, z, depth)
  keep = track is not None
  p, hist1, traj1 = _run(lambda q: _dc_closed(t, _dc_model(q)) - z, p0, opt1, n1, keep)
  pretrained = _dc_model(p)
  mlp, hist2, traj2 = _run(lambda q: _residual(q, t[:, None], z),
                           _mlp.balanced(_dc_mlp(pretrained)), opt2, n2, keep)
  params = _training._fold(mlp, norm)
  from_stage1 = lambda q: _training._fold(_dc_mlp(_dc_model(q)), norm)
  snapshots = _training.snapshots_every(track, n1, n2, from_stage1(p0), traj1, from_stage1,
                                        traj2, lambda q: _training._fold(q, norm))
  return _finish(params, x[:, None], y, jnp.concatenate([hist1, hist2]), norm["yscale"],
                 pretrained=pretrained, interval=jnp.stack([norm["lo"], norm["hi"]]),
                 y_range=jnp.stack([norm["ylo"], norm["yhi"]]), lr=lr, snapshots=snapshots)


def _finish(params, x, y, history, yscale, *, pretrained, interval, y_range, lr,
            snapshots=None):
  history = history * yscale ** 2
  mse = _mse(params, x, y)
  diverged = ~(jnp.isfinite(mse) & jnp.all(jnp.isfinite(history)))
  return dict(params=params, mse=mse, history=history, diverged=diverged,
              pretrained=pretrained, snapshots=snapshots, interval=interval,
              y_range=y_range, sign=jnp.ones((), x.dtype),
              learning_rate=jnp.asarray(lr, x.dtype))


# -- dense baselines -------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("width", "depth", "steps", "optimizer", "track"))
def _train_dense(x, y, key, lr, *, width, depth, steps, optimizer, track=None):
  """A Kaiming-initialised dense MLP on ``x (n, k)``, trained directly."""
  one_d = x.shape[1] == 1
  if one_d:
    norm = _training.normalisation(x[:, 0], y)
    shift, scale = norm["lo"] - _training.INSET / norm["tscale"], 1 / norm["tscale"]
    interval = jnp.stack([norm["lo"], norm["hi"]])
  else:
    shift, scale = jnp.mean(x, axis=0), jnp.std(x, axis=0)
    interval = jnp.stack([jnp.min(x, axis=0), jnp.max(x, axis=0)], axis=1)
  ylo, yhi, yscale = _training.target_range(y)
  xn, z = (x - shift) / scale, (y - ylo) / yscale
  _, opt = _training.stage_optimizers(optimizer, lr, 0, steps, b1=0.9)   # plain Adam
  if one_d:
    mlp = _init.kaiming_mlp(key, depth, width=width, dtype=x.dtype)
  else:
    mlp = kaiming_dense(key, (x.shape[1],) + (width,) * depth + (1,), x.dtype)
  raw = lambda q: fold_affine(q, in_shift=shift, in_scale=scale, out_shift=ylo,
                             out_scale=yscale)
  start = raw(mlp)
  mlp, hist, traj = _run(lambda q: _residual(q, xn, z), mlp, opt, steps, track is not None)
  snapshots = _training.snapshots_every(track, 0, steps, start, None, raw, traj, raw)
  return _finish(raw(mlp), x, y, hist, yscale, pretrained=None, interval=interval,
                 y_range=jnp.stack([ylo, yhi]), lr=lr, snapshots=snapshots)


# -- several inputs: a network of CompositionalDense layers --------------------

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

  def to_mlp(self) -> Params:
    """The plain MLP (``2 depth + 3`` layers) this network computes."""
    return _layer.compose_mlps(_layer.layer_to_mlp(self.first),
                               _layer.layer_to_mlp(self.second))


def _n_trainable(module: nnx.Module) -> int:
  return int(sum(a.size for a in jax.tree.leaves(nnx.state(module, nnx.Param))))


def compositional_param_count(in_features: int, *, width: int, depth: int) -> int:
  """Trainable parameters of :class:`CompositionalNet` in stage 2 (the larger)."""
  def build():
    net = CompositionalNet(in_features, width=width, depth=depth, rngs=nnx.Rngs(0))
    net.set_stage("free")
    return net
  return _n_trainable(nnx.eval_shape(build))


@functools.partial(jax.jit, static_argnames=("width", "depth", "n1", "n2", "optimizer",
                                             "track"))
def _train_compositional(x, y, key, lr, *, width, depth, n1, n2, optimizer, track=None):
  shift, scale = jnp.mean(x, axis=0), jnp.std(x, axis=0)
  ylo, yhi, yscale = _training.target_range(y)
  xn, z = (x - shift) / scale, (y - ylo) / yscale
  opt1, opt2 = _training.stage_optimizers(optimizer, lr, n1, n2, b1=_training.STAGE2_B1)
  net = CompositionalNet(x.shape[1], width=width, depth=depth, rngs=nnx.Rngs(key),
                         param_dtype=x.dtype)
  raw = lambda mlp: fold_affine(mlp, in_shift=shift, in_scale=scale, out_shift=ylo,
                                out_scale=yscale)

  def train(net, steps, tx):
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    residual = lambda p: nnx.merge(graphdef, p, rest)(xn)[:, 0] - z
    params, hist, traj = _run(residual, params, tx, steps, track is not None)
    to_mlp = lambda p: raw(nnx.merge(graphdef, p, rest).to_mlp())
    return nnx.merge(graphdef, params, rest), hist, traj, to_mlp

  start = raw(net.to_mlp())
  net, hist1, traj1, to_mlp1 = train(net, n1, opt1)
  net.set_stage("free")
  net, hist2, traj2, to_mlp2 = train(net, n2, opt2)
  snapshots = _training.snapshots_every(track, n1, n2, start, traj1, to_mlp1, traj2,
                                        to_mlp2)
  return _finish(raw(net.to_mlp()), x, y, jnp.concatenate([hist1, hist2]), yscale,
                 pretrained=None,
                 interval=jnp.stack([jnp.min(x, axis=0), jnp.max(x, axis=0)], axis=1),
                 y_range=jnp.stack([ylo, yhi]), lr=lr, snapshots=snapshots)


# -- entry point -----------------------------------------------------------------

#: Default ``(stage 1, stage 2)`` learning rates of ``"dc"`` and
#: ``"compositional"`` (absolute; the multi-input/wide ``"kaiming"`` uses
#: ``relucomp._training.DEFAULT_RANDOM_INIT_LEARNING_RATE``). For ``"dc"``
#: stage 2 starts from the stage-1 network with balanced neurons
#: (:func:`relucomp.balance_neurons`), whose error is already small: on five
#: non-convex targets (x^3 - x, sin 2 pi x, exp(-8 x^2), 1/(1 + 25 x^2),
#: sin 3x + 0.3 x^2) steps of 3e-4 gave a lower median than 1e-4 and 1e-3
#: on all five.
DEFAULT_LEARNING_RATE = {"dc": (1e-2, 3e-4), "compositional": (1e-2, 3e-4)}


def fit_beyond(x, y, *, key, method, depth, n1, n2, learning_rate, optimizer, width,
               curvature, track_pieces_every):
  """The ``"dc"``, ``"compositional"`` and multi-input/wide ``"kaiming"`` fits.

  Called by :func:`relucomp.fit` after it has checked ``method``, ``depth``
  and the step counts; checks the rest and returns a ``FitResult``.
  """
  if width is not None:
    width = _training._check_int(width, "width", 1)
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  if y.ndim != 1:
    raise ValueError(f"y must be a 1-D array of targets, shape (n,); got shape {y.shape}.")
  if method == "dc" and x.ndim != 1:
    raise ValueError(f"method='dc' fits one input: x must have shape (n,); got {x.shape}.")
  if method == "compositional" and (x.ndim != 2 or x.shape[1] < 2):
    raise ValueError(
        "method='compositional' needs several inputs: x must have shape (n, k) with "
        f"k >= 2 features; got shape {x.shape} (for one input use method='enforced' "
        "or 'dc').")
  if x.ndim not in (1, 2):
    raise ValueError(f"x must have shape (n,) or (n, k); got shape {x.shape}.")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"x and y must have the same number of points; got {x.shape[0]} "
                     f"rows of x and {y.shape[0]} targets.")
  if x.shape[0] < 3:
    raise ValueError(f"x and y need at least 3 points; got {x.shape[0]}.")
  if track_pieces_every is not None and x.ndim == 2 and x.shape[1] > 2:
    raise ValueError(
        "track_pieces_every needs one or two input features (pieces and regions are "
        f"counted exactly only in 1-D and 2-D); x has {x.shape[1]} features.")
  v.check_finite(x, "x")
  v.check_finite(y, "y")
  v.require(lambda a: jnp.all(jnp.max(a, axis=0) > jnp.min(a, axis=0)), x,
            "x must contain at least two distinct values in every feature (some "
            "column of x is constant).")
  if learning_rate is None:
    learning_rate = (DEFAULT_LEARNING_RATE[method] if method != "kaiming"
                     else _training.DEFAULT_RANDOM_INIT_LEARNING_RATE)
  lr, optimizer = _training.check_lr_optimizer(learning_rate, optimizer)
  dtype = v.float_dtype(x, y)
  x, y, lr = x.astype(dtype), y.astype(dtype), lr.astype(dtype)

  if method == "dc":
    out = _train_dc(x, y, key, lr, depth=depth, n1=n1, n2=n2, optimizer=optimizer,
                    track=track_pieces_every)
    n_params = _mlp.count_params(out["params"])
  elif method == "compositional":
    width = width or DEFAULT_WIDTH
    out = _train_compositional(x, y, key, lr, width=width, depth=depth, n1=n1, n2=n2,
                               optimizer=optimizer, track=track_pieces_every)
    n_params = compositional_param_count(x.shape[1], width=width, depth=depth)
  else:  # kaiming, several inputs or an explicit width
    xk = x[:, None] if x.ndim == 1 else x
    if width is None:
      width = dense_width_for(xk.shape[1], depth, compositional_param_count(
          xk.shape[1], width=DEFAULT_WIDTH, depth=depth))
    out = _train_dense(xk, y, key, lr, width=width, depth=depth, steps=n1 + n2,
                       optimizer=optimizer, track=track_pieces_every)
    n_params = _mlp.count_params(out["params"])
  return _training.make_result(out, method=method, depth=depth, n1=n1, n2=n2,
                               track_pieces_every=track_pieces_every, curvature=curvature,
                               optimizer=optimizer, n_params=n_params, stacklevel=4)
