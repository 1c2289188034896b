"""Two-stage training of compositional networks on 1-D data, with optax.

Stage 1 trains the reparameterised network (peaks, amplitude or scales, and
an output affine) through the closed form ``F``; stage 2 trains the weights
of the plain MLP built from it. Both stages run in one ``lax.scan``.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from relucomp import _init
from relucomp import _levenberg
from relucomp import _mlp
from relucomp import _validation as v
from relucomp._network import compositional_mlp
from relucomp._result import FitResult, make_result
from relucomp._series import enforced_scales

__all__ = ["fit", "FitResult", "METHODS"]

#: The training setups :func:`fit` accepts for one convex or concave input.
METHODS = ("enforced", "free_scales", "no_pretrain", "kaiming", "raai")
#: Every method :func:`fit` accepts ("dc" and "compositional": see
#: :mod:`relucomp._beyond`).
ALL_METHODS = METHODS + ("dc", "compositional")
_TWO_STAGE = ("enforced", "free_scales")
_COMPOSITIONAL = ("enforced", "free_scales", "no_pretrain")
_CURVATURES = ("auto", "convex", "concave")

#: Peaks are ``a = PEAK_MARGIN + (1 - 2 PEAK_MARGIN) * sigmoid(theta)``.
PEAK_MARGIN = 0.01
#: ``x`` is mapped onto ``[INSET, 1 - INSET]``: the construction has kinks at
#: exactly 0 and 1 (every wave vanishes at both ends), and a data point on a
#: kink gets a ReLU derivative decided by rounding.
INSET = 2.0 ** -10
#: Default learning rates (stage 1, stage 2); one-stage methods use stage 2's.
#: For the compositional methods the stage-2 rate is relative: it is multiplied
#: by the RMS residual (normalised units) of the network stage 2 starts from.
DEFAULT_LEARNING_RATE = (1e-2, 0.1)
#: Adam's first-moment decay in stage 2 of the compositional methods. Free
#: weights built from the construction form a badly conditioned problem
#: (deep layers act through products of weights), where heavy momentum
#: converges several times further in the same number of steps than the
#: usual 0.9 (see ``benchmarks/stage2_sweep.py``).
STAGE2_B1 = 0.98
#: Default (absolute) learning rate of the randomly initialised methods.
DEFAULT_RANDOM_INIT_LEARNING_RATE = 1e-3
#: Linear warm-up steps of the stage-2 (and one-stage) learning rate.
WARMUP_STEPS = 50

Params = list  # list of {"kernel", "bias"} layers


# --------------------------------------------------------------------------
# Pieces of the model.

def _peaks(theta: jax.Array) -> jax.Array:
  return PEAK_MARGIN + (1 - 2 * PEAK_MARGIN) * jax.nn.sigmoid(theta)


def _peaks_inverse(peaks: jax.Array) -> jax.Array:
  u = (peaks - PEAK_MARGIN) / (1 - 2 * PEAK_MARGIN)
  return jnp.log(u) - jnp.log1p(-u)


def _waves(t: jax.Array, peaks: jax.Array) -> list[jax.Array]:
  out, w = [], t
  for k in range(peaks.shape[0]):
    w = jnp.minimum(w / peaks[k], (1 - w) / (1 - peaks[k]))
    out.append(w)
  return out


def _stage1_model(p: dict, method: str, sign: jax.Array) -> dict:
  """Unconstrained stage-1 parameters -> peaks, scales, slope, bias."""
  peaks = _peaks(p["theta"])
  if method == "enforced":
    scales = enforced_scales(peaks, sign * jnp.exp(p["log_amp"]))
  else:
    scales = p["scales"]
  return {"peaks": peaks, "scales": scales, "slope": p["slope"], "bias": p["bias"]}


def _closed_form(t: jax.Array, m: dict) -> jax.Array:
  d = m["scales"].shape[0]
  f = m["bias"] + m["slope"] * t
  for k, w in enumerate(_waves(t, m["peaks"][:d])):
    f = f - m["scales"][k] * w
  return f


def _build_mlp(m: dict) -> Params:
  layers = compositional_mlp(m["peaks"], m["scales"], slope=m["slope"])
  layers[-1] = {"kernel": layers[-1]["kernel"], "bias": layers[-1]["bias"] + m["bias"]}
  return layers


def _apply(params: Params, t: jax.Array) -> jax.Array:
  """The MLP on a 1-D batch of inputs ``t`` (same as ``mlp_apply``)."""
  h = t[:, None] * params[0]["kernel"][0] + params[0]["bias"]
  for layer in params[1:]:
    h = jax.nn.relu(h) @ layer["kernel"] + layer["bias"]
  return h[:, 0]


def _fold(params: Params, norm: dict) -> Params:
  """MLP on (t, z) -> MLP on raw (x, y): t = tscale x + tshift, y = ylo + yscale z."""
  first = params[0]
  out = [{"kernel": first["kernel"] * norm["tscale"],
          "bias": first["bias"] + norm["tshift"] * first["kernel"][0]}]
  out += [dict(layer) for layer in params[1:]]
  out[-1] = {"kernel": out[-1]["kernel"] * norm["yscale"],
             "bias": out[-1]["bias"] * norm["yscale"] + norm["ylo"]}
  return out


def _lstsq(basis: jax.Array, z: jax.Array) -> jax.Array:
  """Least squares by the normal equations (a few well-scaled columns)."""
  gram = basis.T @ basis
  ridge = 1e-12 * jnp.trace(gram) * jnp.eye(gram.shape[0], dtype=gram.dtype)
  return jnp.linalg.solve(gram + ridge, basis.T @ z)


def _curvature_scores(t: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(convex?, concave?, least-squares wave sign) from the data, traceable.

  Sorts by ``t``, takes the slopes between consecutive distinct points, and
  calls the data convex if those slopes never decrease by more than a
  tolerance (``1e-3`` of their range plus rounding), concave likewise.
  """
  order = jnp.argsort(t)
  ts, zs = t[order], z[order]
  dt = jnp.diff(ts)
  valid = dt > 0
  slopes = jnp.where(valid, jnp.diff(zs) / jnp.where(valid, dt, 1), 0.0)
  big = jnp.finfo(t.dtype).max
  run_max = jax.lax.cummax(jnp.where(valid, slopes, -big))
  run_min = jax.lax.cummin(jnp.where(valid, slopes, big))
  prev_max = jnp.concatenate([jnp.full((1,), -big, t.dtype), run_max[:-1]])
  prev_min = jnp.concatenate([jnp.full((1,), big, t.dtype), run_min[:-1]])
  drop = jnp.max(jnp.where(valid & (prev_max > -big), prev_max - slopes, 0.0))
  rise = jnp.max(jnp.where(valid & (prev_min < big), slopes - prev_min, 0.0))
  srange = jnp.max(jnp.where(valid, slopes, -big)) - jnp.min(jnp.where(valid, slopes, big))
  min_dt = jnp.min(jnp.where(valid, dt, big))
  eps = jnp.finfo(t.dtype).eps
  tol = 1e-3 * srange + 64 * eps * (1 + jnp.max(jnp.abs(z))) / min_dt
  convex = drop <= tol
  concave = rise <= tol
  # Sign of the quadratic coefficient of a least-squares parabola.
  coef = _lstsq(jnp.stack([jnp.ones_like(t), t - 0.5, (t - 0.5) ** 2], axis=1), z)
  ls_sign = jnp.where(coef[2] >= 0, 1.0, -1.0).astype(t.dtype)
  return convex, concave, ls_sign


def _sign(t, z, mode):
  """+1 (convex) or -1 (concave); ``mode`` is 1, -1 or 0 (detect), traced."""
  convex, concave, ls_sign = _curvature_scores(t, z)
  detected = jnp.where(convex, 1.0, jnp.where(concave, -1.0, ls_sign))
  return jnp.where(mode == 0, detected, jnp.sign(mode)).astype(t.dtype)


def _initial_stage1(t, z, peaks, sign, method):
  """Stage-1 start: the given peaks, amplitude/slope/bias by least squares."""
  d = peaks.shape[0] - 1
  unit = enforced_scales(peaks, jnp.ones((), t.dtype))   # scales for amplitude 1
  series = sum(unit[k] * w for k, w in enumerate(_waves(t, peaks[:d])))
  basis = jnp.stack([jnp.ones_like(t), t, -series], axis=1)
  coef = _lstsq(basis, z)
  amp = jnp.maximum(sign * coef[2], 1e-3)                # |s_1|, sign fixed
  bias, slope = _lstsq(basis[:, :2], z + sign * amp * series)
  p = {"theta": _peaks_inverse(peaks), "slope": slope, "bias": bias}
  if method == "enforced":
    p["log_amp"] = jnp.log(amp)
  else:
    p["scales"] = sign * amp * unit
  return p


def _given_optimizers(optimizer: Any) -> tuple[Any, Any]:
  """``(stage 1, stage 2)`` from the checked ``optimizer``; ``None`` for a
  stage that keeps its default."""
  if optimizer is None:
    return None, None
  if isinstance(optimizer, optax.GradientTransformation):
    return optimizer, optimizer
  return tuple(optimizer)


def stage_optimizers(optimizer: Any, lr: jax.Array, n1: int, n2: int, *,
                     b1: float) -> tuple[optax.GradientTransformation,
                                         optax.GradientTransformation]:
  """The optimisers of the two stages: the given ones, and the default
  (:func:`_default_optimizer`; stage 2 with first-moment decay ``b1``) for a
  stage given as ``None``."""
  opt1, opt2 = _given_optimizers(optimizer)
  if opt1 is None:
    opt1 = _default_optimizer(lr[0], n1, warmup=False)
  if opt2 is None:
    opt2 = _default_optimizer(lr[1], n2, warmup=True, b1=b1)
  return opt1, opt2


def _default_optimizer(lr, steps, warmup, b1=0.9):
  if warmup:
    warmup = min(WARMUP_STEPS, steps // 10)
  if warmup > 0:
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps, 1e-3)
  else:
    unit = optax.cosine_decay_schedule(1.0, max(steps, 1), alpha=1e-3)
  return optax.adam(lambda n: lr * unit(n), b1=b1, b2=0.99)


# --------------------------------------------------------------------------
# The compiled training loop.

def target_range(y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(ylo, yhi, yscale)``: ``z = (y - ylo) / yscale`` maps ``y`` onto ``[0, 1]``
  (``yscale = 1`` for a constant ``y``)."""
  ylo, yhi = jnp.min(y), jnp.max(y)
  return ylo, yhi, jnp.where(yhi > ylo, yhi - ylo, jnp.ones((), y.dtype))


def normalisation(x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
  """The maps of 1-D fits: ``t = tscale x + tshift`` onto ``[INSET, 1 - INSET]``
  and ``y`` onto ``[0, 1]`` by :func:`target_range`."""
  lo, hi = jnp.min(x), jnp.max(x)
  ylo, yhi, yscale = target_range(y)
  tscale = (1 - 2 * INSET) / (hi - lo)
  return {"lo": lo, "hi": hi, "tscale": tscale, "tshift": INSET - lo * tscale,
          "ylo": ylo, "yhi": yhi, "yscale": yscale}


def _prepare(x, y, key, mode, *, method, depth):
  """Normalisation and the starting point (small program, compiled per method)."""
  dtype = x.dtype
  norm = normalisation(x, y)
  t = x * norm["tscale"] + norm["tshift"]
  z = (y - norm["ylo"]) / norm["yscale"]
  if method in _COMPOSITIONAL:
    sign = _sign(t, z, mode)
    peaks0 = _init.initial_peaks(key, depth, dtype=dtype)
    p1 = _initial_stage1(t, z, peaks0, sign, "enforced" if method == "no_pretrain" else method)
    mlp0 = _mlp.balanced(_build_mlp(_stage1_model(
        p1, "enforced" if method == "no_pretrain" else method, sign)))
  else:
    sign = jnp.ones((), dtype)
    p1 = None
    init = _init.kaiming_mlp if method == "kaiming" else _init.raai_mlp
    mlp0 = init(key, depth, dtype=dtype)
  if method not in _TWO_STAGE:
    p1 = None
  return t, z, norm, sign, p1, mlp0


def _loop(t, z, norm, sign, p1, mlp0, lr, *, method, n1, n2, track, optimizer, relative):
  """Both stages in one ``lax.scan`` (shared by the one-stage methods)."""
  dtype = t.dtype
  two_stage = p1 is not None
  if not two_stage:
    n2 = n1 + n2
    n1 = 0

  opt1, opt2 = stage_optimizers(optimizer, lr, n1, n2, b1=STAGE2_B1 if relative else 0.9)

  def residual1(p):
    return _closed_form(t, _stage1_model(p, method, sign)) - z

  def residual2(params):
    return _apply(params, t) - z

  def loss1(p):
    return jnp.mean(residual1(p) ** 2)

  def loss2(params):
    return jnp.mean(residual2(params) ** 2)

  def stage1(carry, i):
    p, o1, mlp, o2, rel = carry
    loss, g = jax.value_and_grad(loss1)(p)
    upd, o1 = _levenberg.update(opt1, g, o1, p, loss, loss1, residual1)
    p = optax.apply_updates(p, upd)
    # Stage 2 starts from the stage-1 network with balanced neurons. Only the
    # last stage-1 step needs the MLP, unless every step is kept (``track``).
    build = lambda q: _mlp.balanced(_build_mlp(_stage1_model(q, method, sign)))
    if track:
      mlp = build(p)
    else:
      mlp = jax.lax.cond(i == n1 - 1, build, lambda q: mlp, p)
    return (p, o1, mlp, o2, rel), loss

  def stage2(carry, i):
    p, o1, mlp, o2, rel = carry
    loss, g = jax.value_and_grad(loss2)(mlp)
    if relative:
      # The step scale: the RMS residual of the network stage 2 starts from.
      rel = jnp.where(i == n1, jnp.sqrt(loss), rel)
      g = jax.tree.map(lambda a: a / rel, g)
    upd, o2 = _levenberg.update(opt2, g, o2, mlp, loss / (rel * rel) if relative else loss,
                                (lambda q: loss2(q) / (rel * rel)) if relative else loss2,
                                residual2)
    if relative:
      upd = jax.tree.map(lambda a: a * rel, upd)
    mlp = optax.apply_updates(mlp, upd)
    return (p, o1, mlp, o2, rel), loss

  def body(carry, i):
    if two_stage and n1 > 0 and n2 > 0:
      # The step counter is not batched, so under vmap this stays a branch.
      carry, loss = jax.lax.cond(i < n1, stage1, stage2, carry, i)
    elif two_stage and n1 > 0:
      carry, loss = stage1(carry, i)
    else:
      carry, loss = stage2(carry, i)
    return carry, (loss, carry[2] if track else None)

  o1 = opt1.init(p1) if two_stage else None
  carry0 = (p1, o1, mlp0, opt2.init(mlp0), jnp.ones((), dtype))
  carry, (history, traj) = jax.lax.scan(body, carry0, jnp.arange(n1 + n2))
  p_final, _, mlp, _, _ = carry

  yscale = norm["yscale"]
  history = history * yscale ** 2
  mse = loss2(mlp) * yscale ** 2
  diverged = ~(jnp.isfinite(mse) & jnp.all(jnp.isfinite(history)))
  params = _fold(mlp, norm)

  raw = lambda m: _fold(m, norm)
  snapshots = snapshots_every(track or None, 0, n1 + n2, raw(mlp0), None, raw, traj, raw)

  # The stage-1 result: the carry's stage-1 parameters (untouched in stage 2).
  pretrained = _stage1_model(p_final, method, sign) if two_stage else None
  return dict(params=params, mse=mse, history=history, diverged=diverged,
              pretrained=pretrained, snapshots=snapshots,
              interval=jnp.stack([norm["lo"], norm["hi"]]),
              y_range=jnp.stack([norm["ylo"], norm["yhi"]]),
              sign=sign, learning_rate=jnp.asarray(lr, dtype))


def snapshots_every(every: Optional[int], n1: int, n2: int, start: Any,
                    traj1: Any, to_mlp1: Any, traj2: Any, to_mlp2: Any) -> Any:
  """The raw-scale MLPs after ``0, every, 2 every, ...`` steps of both stages.

  ``traj1``/``traj2`` hold the parameters after every step of stage 1 and
  stage 2 (stacked along a leading axis); ``to_mlp1``/``to_mlp2`` turn one
  of them into the plain MLP on the raw scale; ``start`` is the starting MLP.
  The snapshots are stacked along a leading axis. A one-stage method passes
  ``n1 = 0`` and ``traj1 = None``.
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


_prepare_jit = jax.jit(_prepare, static_argnames=("method", "depth"))
_loop_jit = jax.jit(_loop, static_argnames=("method", "n1", "n2", "track", "optimizer",
                                            "relative"))


def _train(x, y, key, lr, mode, *, method, depth, n1, n2, track, optimizer):
  t, z, norm, sign, p1, mlp0 = _prepare_jit(x, y, key, mode, method=method, depth=depth)
  # One-stage methods share one compiled loop: it does not depend on the method.
  loop_method = method if method in _TWO_STAGE else "one_stage"
  return _loop_jit(t, z, norm, sign, p1, mlp0, lr, method=loop_method, n1=n1, n2=n2,
                   track=track, optimizer=optimizer,
                   relative=_given_optimizers(optimizer)[1] is None
                   and method in _COMPOSITIONAL)


# --------------------------------------------------------------------------
# The public function.

def check_lr_optimizer(learning_rate: Any, optimizer: Any) -> tuple[jax.Array, Any]:
  """Validates ``learning_rate`` (number or pair) and ``optimizer`` (None, one or two).

  Returns the learning rates as a ``(2,)`` array and the optimiser as
  ``None``, one ``GradientTransformation`` or a pair of them.
  """
  lr = jnp.asarray(learning_rate)
  if lr.ndim == 0:
    lr = jnp.stack([lr, lr])
  if lr.shape != (2,):
    raise ValueError(
        f"learning_rate must be a number or a pair (stage 1, stage 2); got shape {lr.shape}.")
  v.require(lambda a: jnp.isfinite(a) & (a > 0), lr,
            f"learning_rate must be positive and finite; got {learning_rate!r}.")
  if optimizer is not None:
    pair = (optimizer,) if isinstance(optimizer, optax.GradientTransformation) else optimizer
    if not (isinstance(pair, (tuple, list)) and len(pair) in (1, 2) and all(
        o is None or isinstance(o, optax.GradientTransformation) for o in pair)):
      raise ValueError("optimizer must be None, an optax GradientTransformation or "
                       "a pair (stage 1, stage 2) of them, where None keeps that stage's "
                       f"default; got {optimizer!r}.")
    if len(pair) == 1:
      optimizer = pair[0]
    else:
      optimizer = None if all(o is None for o in pair) else tuple(pair)
  return lr, optimizer


def _check_int(value, name, minimum):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
  return int(value)


def _warn_curvature(x, y, method):
  hx, hy = v.concrete(x), v.concrete(y)
  if hx is None or hy is None:
    return
  with jax.ensure_compile_time_eval():
    t = (hx - hx.min()) / (hx.max() - hx.min())
    yr = hy.max() - hy.min()
    z = (hy - hy.min()) / (yr if yr > 0 else 1.0)
    convex, concave, _ = _curvature_scores(jnp.asarray(t), jnp.asarray(z))
    convex, concave = bool(convex), bool(concave)
  if not (convex or concave):
    warnings.warn(
        f"y is neither convex nor concave in x; method={method!r} fits a convex "
        "or concave function (the sign of the waves is taken from a fitted "
        "parabola). Non-convex targets need method 'dc' (a difference of two "
        "compositional networks); or pass curvature='convex' or 'concave' to "
        "silence this warning.",
        UserWarning, stacklevel=3)


def fit(x: ArrayLike, y: ArrayLike, *, key: jax.Array, method: str = "enforced",
        depth: int = 5, pretrain_steps: int = 1000, finetune_steps: int = 1000,
        learning_rate: Union[None, float, Sequence[float]] = None,
        optimizer: Any = None, curvature: str = "auto",
        track_pieces_every: Optional[int] = None,
        width: Optional[int] = None) -> FitResult:
  """Fits a scalar function of one input with a 4-wide ReLU MLP.

  ``x`` is mapped affinely onto ``t`` in ``[0, 1]`` (precisely onto
  ``[INSET, 1 - INSET]`` with ``INSET = 2**-10``: every wave has a kink at
  exactly 0 and 1, and a data point on a kink would get a ReLU derivative
  decided by rounding) and ``y`` onto ``z`` in ``[0, 1]`` by its range; both
  maps are folded into the first and last layers of the returned MLP, which
  therefore acts on raw ``x`` and predicts raw ``y``.

  Methods (the five setups of Milkert, Hyde and Laine):

  * ``"enforced"``: stage 1 trains the peaks ``a_1 .. a_{d+1}``, the
    amplitude ``s_1`` and an output affine (slope ``s_0`` and bias) of
    ``bias + s_0 t - sum_i s_i W_i(t)``, every other scale following the law
    ``s_{i+1} = s_i (1 - a_{i+1}) a_{i+2}``; stage 2 trains the weights of
    :func:`relucomp.compositional_mlp` built from it.
  * ``"free_scales"``: as ``"enforced"`` but every scale ``s_1 .. s_d`` is a
    free parameter in stage 1 (differentiability not enforced).
  * ``"no_pretrain"``: the MLP starts at the compositional network at the
    starting point of ``"enforced"`` and trains its weights directly.
  * ``"kaiming"``: PyTorch's default ``nn.Linear`` initialisation of a
    width-4 MLP of the same depth, trained directly.
  * ``"raai"``: the RAAI initialisation (see ``relucomp._init.raai_layer``:
    anti-correlated normal weights of variance ``0.6007**2 / fan_in``, one
    entry per neuron replaced by a ``Beta(2, 1)`` draw), trained directly.

  Beyond one convex variable (see :mod:`relucomp._beyond` for details):

  * ``"dc"``: ``x`` of shape ``(n,)``, any smooth target: a difference of
    two compositional networks, trained in the same two stages; ``params``
    is one 8-wide plain MLP (the two networks side by side).
  * ``"compositional"``: ``x`` of shape ``(n, k)``, ``k >= 2``: two
    :class:`relucomp.CompositionalDense` layers with ``width`` units
    (default 4), reparameterised then free; ``params`` is the plain MLP.
  * ``"kaiming"`` with ``x`` of shape ``(n, k)``: a dense ReLU MLP of
    ``depth`` hidden layers whose default width gives at least as many
    trainable parameters as ``"compositional"``; with 1-D ``x`` and a
    ``width``, a Kaiming MLP of that width.

  ``n_params`` is the number of trainable weights and biases (for
  ``"compositional"`` the free stage's, which keeps the block structure).

  One-stage methods train for ``pretrain_steps + finetune_steps`` steps.
  ``"enforced"``, ``"free_scales"`` and ``"no_pretrain"`` start from
  identical networks for the same key: peaks drawn uniformly from
  ``(0.3, 0.7)``, then amplitude, slope and bias by least squares on the
  data (with the amplitude's sign fixed by the curvature).

  Parameterisation of stage 1: a peak is ``a = 0.01 + 0.98 sigmoid(theta)``
  with ``theta`` trained, so it never leaves ``[0.01, 0.99]``; the last peak
  ``a_{d+1}`` (it only sets the ratio ``s_d / s_{d-1}``) is trained like the
  others. The amplitude is ``sign * exp(log_amp)``: it keeps the sign the
  curvature gives and never reaches zero, so the network has exactly
  ``2^d`` pieces all through stage 1 with ``"enforced"``.

  Stage 2 (and ``"no_pretrain"``) starts from the construction with every
  hidden neuron rescaled by :func:`relucomp.balance_neurons` (the same
  function, its incoming and outgoing weights balanced), from which Adam
  gets further in the same steps than from the construction as built.

  Optimisation: by default Adam (``b1 = 0.9``, ``b2 = 0.99``; in stage 2
  of the compositional methods ``b1 = STAGE2_B1 = 0.98``, heavy momentum
  for the badly conditioned free weights) with a cosine decay of the
  learning rate to ``1e-3`` of its start over each stage, restarted for
  stage 2 with a linear warm-up of ``min(50, steps // 10)`` steps.
  ``learning_rate`` is ``(stage 1, stage 2)`` or one number for both;
  one-stage methods use the stage-2 rate. For the compositional methods
  (``"enforced"``, ``"free_scales"``, ``"no_pretrain"``) the stage-2 rate is
  relative: Adam moves every weight by about the learning rate per step, so
  the steps are scaled by the RMS residual (in normalised units) of the
  network that stage 2 starts from (the gradients are divided by it, the
  updates multiplied). Defaults: ``(1e-2, 0.1)`` for the compositional
  methods, ``1e-3`` (absolute, the usual reading of the paper) for
  ``"kaiming"`` and ``"raai"``. ``optimizer`` replaces this by
  any optax ``GradientTransformation`` (or a pair, one per stage); each
  stage gets a fresh optimiser state, and optimisers that take the loss
  value and a value function (``GradientTransformationExtraArgs`` such as
  ``optax.lbfgs()``) receive them; :func:`relucomp.levenberg_marquardt`
  receives the residuals (``prediction - target`` in normalised units) as a
  function of the parameters. The stage-2 rate is relative only for the
  default stage-2 optimiser. All steps of both stages run in one
  ``lax.scan``; ``fit`` is a pure function of its array arguments, so
  ``jax.vmap`` over ``key`` or over a batch of ``y`` trains many models at
  once (the input checks and the curvature warning then only run on
  concrete values).

  Args:
    x: inputs, shape ``(n,)``, finite, at least two distinct values.
    y: targets, shape ``(n,)``, finite.
    key: PRNG key (starting peaks or random weights).
    method: one of ``"enforced"``, ``"free_scales"``, ``"no_pretrain"``,
      ``"kaiming"``, ``"raai"``.
    depth: number of hidden layers, ``>= 1`` (``2^depth`` pieces).
    pretrain_steps: steps of stage 1, ``>= 0``.
    finetune_steps: steps of stage 2, ``>= 0``.
    learning_rate: ``None`` (the defaults above), a positive number or a
      pair ``(stage 1, stage 2)``.
    optimizer: ``None`` for the default, an optax ``GradientTransformation``
      or a pair ``(stage 1, stage 2)`` of them in which ``None`` keeps that
      stage's default (``(None, relucomp.levenberg_marquardt())``: stage 2
      by Levenberg-Marquardt steps).
    curvature: ``"auto"`` (detected from the data), ``"convex"`` or
      ``"concave"``. ``"auto"`` warns if the data are neither.
    track_pieces_every: ``None`` or ``k >= 1``: keep the MLP every ``k``
      steps in ``result.snapshots`` (every method; ``x`` with at most two
      features), for :func:`relucomp.pieces_history`.
    width: units per layer for ``"compositional"``; hidden width for
      ``"kaiming"`` (default 4 for one input, matched parameters for several).

  Returns:
    A :class:`FitResult`.

  Raises:
    ValueError: on ``x``/``y`` of other shapes or lengths, fewer than 3
      points, non-finite values, all ``x`` equal, ``depth < 1``, negative
      steps, an unknown ``method`` or ``curvature``, a non-positive
      learning rate, an ``optimizer`` that is not ``None``, an optax
      transformation or a pair of them (``None`` entries allowed), or a bad
      ``track_pieces_every``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(-1.0, 2.0, 50)
    >>> res = relucomp.fit(x, x ** 2, key=jax.random.key(0), depth=3,
    ...                    pretrain_steps=100, finetune_steps=100)
    >>> pred = relucomp.mlp_apply(res.params, x[:, None])[:, 0]
    >>> bool(jnp.allclose(jnp.mean((pred - x ** 2) ** 2), res.mse, rtol=1e-3))
    True
    >>> bool(res.mse < 0.1 * res.history[0]), bool(res.diverged), res.n_params
    (True, False, 53)
  """
  if method not in ALL_METHODS:
    raise ValueError(f"method must be one of {ALL_METHODS}; got {method!r}.")
  if curvature not in _CURVATURES:
    raise ValueError(f"curvature must be one of {_CURVATURES}; got {curvature!r}.")
  depth = _check_int(depth, "depth", 1)
  n1 = _check_int(pretrain_steps, "pretrain_steps", 0)
  n2 = _check_int(finetune_steps, "finetune_steps", 0)
  if n1 + n2 < 1:
    raise ValueError("pretrain_steps + finetune_steps must be at least 1; got 0.")
  if track_pieces_every is not None:
    track_pieces_every = _check_int(track_pieces_every, "track_pieces_every", 1)
  if method in ("dc", "compositional") or (
      method == "kaiming" and (jnp.ndim(x) == 2 or width is not None)):
    from relucomp import _beyond  # pylint: disable=import-outside-toplevel
    return _beyond.fit_beyond(x, y, key=key, method=method, depth=depth, n1=n1, n2=n2,
                              learning_rate=learning_rate, optimizer=optimizer,
                              width=width, curvature=curvature,
                              track_pieces_every=track_pieces_every)
  if width is not None:
    raise ValueError(f"width applies to methods 'compositional' and 'kaiming'; got "
                     f"method={method!r}.")
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
    raise ValueError(
        f"x and y must be 1-D arrays of the same length; got shapes {x.shape} and {y.shape}.")
  if x.shape[0] < 3:
    raise ValueError(f"x and y need at least 3 points; got {x.shape[0]}.")
  v.check_finite(x, "x")
  v.check_finite(y, "y")
  v.require(lambda a: jnp.max(a) > jnp.min(a), x,
            "x must contain at least two distinct values (all x are equal).")
  if learning_rate is None:
    learning_rate = (DEFAULT_LEARNING_RATE if method in _COMPOSITIONAL
                     else DEFAULT_RANDOM_INIT_LEARNING_RATE)
  lr, optimizer = check_lr_optimizer(learning_rate, optimizer)
  dtype = v.float_dtype(x, y)
  x = x.astype(dtype)
  y = y.astype(dtype)
  if curvature == "auto" and method in _COMPOSITIONAL:
    _warn_curvature(x, y, method)

  mode = jnp.asarray({"auto": 0, "convex": 1, "concave": -1}[curvature], jnp.int32)
  out = _train(x, y, key, lr.astype(dtype), mode, method=method, depth=depth, n1=n1,
                   n2=n2, track=track_pieces_every, optimizer=optimizer)
  n_params = sum(a * b + b for a, b in _init.mlp_shapes(depth))
  return make_result(out, method=method, depth=depth, n1=n1, n2=n2,
                     track_pieces_every=track_pieces_every, curvature=curvature,
                     optimizer=optimizer, n_params=n_params)


