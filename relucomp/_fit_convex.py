"""One convex or concave input: the compositional methods of Milkert, Hyde and Laine.

``"enforced"`` and ``"free_scales"`` train in two stages: stage 1 the
reparameterised network ``bias + s_0 t - sign * sum_i s_i W_i(t)`` through
its closed form (peaks through :mod:`relucomp._reparam`; with
``"enforced"`` every scale after the amplitude ``s_1`` follows the law
``s_{i+1} = s_i (1 - a_{i+1}) a_{i+2}``, with ``"free_scales"`` every scale is
free), stage 2 the weights of :func:`relucomp.compositional_mlp` built from
it, its neurons balanced (:func:`relucomp.balance_neurons`).
``"no_pretrain"`` trains those weights directly from the starting point of
``"enforced"``. All three start from the same peaks for the same key.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from relucomp import _engine as engine
from relucomp import _init
from relucomp import _levenberg
from relucomp import _mlp
from relucomp import _validation as v
from relucomp._linalg import lstsq, spd_solve
from relucomp._network import compositional_mlp
from relucomp._reparam import logits_from_peaks, peaks_from_logits
from relucomp._series import enforced_scales

__all__ = ["METHODS", "CURVATURES", "ConvexTrainer", "setup", "DEFAULT_LEARNING_RATE",
           "STAGE2_B1", "SECOND_ORDER_MAX_PARAMS", "STARTS", "SCREEN_STEPS",
           "CANDIDATE_SPREAD", "default_steps", "configure", "layout_knots", "n_params_of"]

#: The compositional methods for one convex or concave input.
METHODS = ("enforced", "free_scales", "no_pretrain")
#: Values of ``fit``'s ``curvature`` argument.
CURVATURES = ("auto", "convex", "concave")
#: Default learning rates (stage 1, stage 2); ``"no_pretrain"`` uses stage 2's.
#: The stage-2 rate is relative: it is multiplied by the RMS residual
#: (normalised units) of the network stage 2 starts from.
DEFAULT_LEARNING_RATE = (1e-2, 0.1)
#: Adam's first-moment decay in stage 2. Free weights built from the
#: construction form a badly conditioned problem (deep layers act through
#: products of weights), where heavy momentum converges several times
#: further in the same number of steps than the usual 0.9 (see
#: ``benchmarks/stage2_sweep.py``).
STAGE2_B1 = 0.98
#: Networks with at most this many weights train by second-order steps by
#: default (one ``P x P`` solve per step); larger ones by Adam.
SECOND_ORDER_MAX_PARAMS = 500
#: Candidate stage-2 starts of the second-order default, each screened by
#: ``SCREEN_STEPS`` Levenberg-Marquardt steps; the best one goes on.
STARTS = 4
SCREEN_STEPS = 30
#: Jitter of the candidates' peaks around the stage-1 peaks (logit units).
CANDIDATE_SPREAD = 0.15
#: Default ``(pretrain_steps, finetune_steps)``: second-order, Adam.
SECOND_ORDER_STEPS = (20, 70)
ADAM_STEPS = (1000, 1000)


# --------------------------------------------------------------------------
# The model: closed form, its plain MLP, and the least-squares start.

def waves(t: jax.Array, peaks: jax.Array) -> list[jax.Array]:
  """``W_1(t) .. W_d(t)``: the compositions of the triangles with ``peaks``."""
  out, w = [], t
  for k in range(peaks.shape[0]):
    w = jnp.minimum(w / peaks[k], (1 - w) / (1 - peaks[k]))
    out.append(w)
  return out


def stage1_model(p: dict, method: str, sign: jax.Array) -> dict:
  """Unconstrained stage-1 parameters -> peaks, scales, slope, bias."""
  peaks = peaks_from_logits(p["theta"])
  if method == "free_scales":
    scales = p["scales"]
  else:
    scales = enforced_scales(peaks, sign * jnp.exp(p["log_amp"]))
  return {"peaks": peaks, "scales": scales, "slope": p["slope"], "bias": p["bias"]}


def closed_form(t: jax.Array, m: dict) -> jax.Array:
  """``bias + slope t - sum_i s_i W_i(t)`` of a stage-1 model ``m``."""
  d = m["scales"].shape[0]
  f = m["bias"] + m["slope"] * t
  for k, w in enumerate(waves(t, m["peaks"][:d])):
    f = f - m["scales"][k] * w
  return f


def build_mlp(m: dict) -> list[dict[str, jax.Array]]:
  """The plain MLP of a stage-1 model (:func:`compositional_mlp` plus the bias)."""
  layers = compositional_mlp(m["peaks"], m["scales"], slope=m["slope"])
  layers[-1] = {"kernel": layers[-1]["kernel"], "bias": layers[-1]["bias"] + m["bias"]}
  return layers


def initial_stage1(t: jax.Array, z: jax.Array, peaks: jax.Array, sign: jax.Array,
                   method: str) -> dict:
  """Stage-1 start: the given peaks, amplitude/slope/bias by least squares."""
  d = peaks.shape[0] - 1
  unit = enforced_scales(peaks, jnp.ones((), t.dtype))   # scales for amplitude 1
  series = sum(unit[k] * w for k, w in enumerate(waves(t, peaks[:d])))
  basis = jnp.stack([jnp.ones_like(t), t, -series], axis=1)
  coef = lstsq(basis, z)
  amp = jnp.maximum(sign * coef[2], 1e-3)                # |s_1|, sign fixed
  bias, slope = lstsq(basis[:, :2], z + sign * amp * series)
  p = {"theta": logits_from_peaks(peaks), "slope": slope, "bias": bias}
  if method == "free_scales":
    p["scales"] = sign * amp * unit
  else:
    p["log_amp"] = jnp.log(amp)
  return p


# --------------------------------------------------------------------------
# The second-order default: stage 1 places the breakpoints, stage 2 starts
# from the best of a few screened candidates.

def layout_knots(peaks: jax.Array, depth: int) -> jax.Array:
  """The ``2^depth - 1`` breakpoints of ``W_depth`` in ``(0, 1)``, sorted.

  Level ``k`` splits every piece ``[l, r]`` of ``W_{k-1}`` at
  ``l + a_k (r - l)`` where it rises and ``r - a_k (r - l)`` where it falls.
  """
  lo, hi = jnp.zeros((1,), peaks.dtype), jnp.ones((1,), peaks.dtype)
  rising = jnp.ones((1,), bool)
  knots = []
  for k in range(depth):
    knot = jnp.where(rising, lo + peaks[k] * (hi - lo), hi - peaks[k] * (hi - lo))
    knots.append(knot)
    lo = jnp.stack([lo, knot], axis=1).reshape(-1)
    hi = jnp.stack([knot, hi], axis=1).reshape(-1)
    rising = jnp.stack([jnp.ones_like(rising), jnp.zeros_like(rising)], axis=1).reshape(-1)
  return jnp.sort(jnp.concatenate(knots))


def _hat_basis(t: jax.Array, nodes: jax.Array) -> jax.Array:
  """Continuous piecewise-linear basis on sorted ``nodes`` (``(n, len(nodes))``)."""
  idx = jnp.clip(jnp.sum(t[:, None] >= nodes[None, :], axis=1) - 1, 0, nodes.shape[0] - 2)
  left, right = nodes[idx], nodes[idx + 1]
  w = (t - left) / jnp.maximum(right - left, jnp.finfo(t.dtype).tiny)
  n = nodes.shape[0]
  return (jax.nn.one_hot(idx, n, dtype=t.dtype) * (1 - w)[:, None]
          + jax.nn.one_hot(idx + 1, n, dtype=t.dtype) * w[:, None])


def layout_fit(theta: jax.Array, depth: int, t_fit: jax.Array, z_fit: jax.Array,
               t: jax.Array) -> jax.Array:
  """At ``t``: the least-squares fit to ``(t_fit, z_fit)`` by the continuous
  piecewise-linear functions with the breakpoints of the peaks
  ``peaks_from_logits(theta)`` (their values free; a variable projection)."""
  dtype = t.dtype
  nodes = jnp.concatenate([jnp.zeros((1,), dtype),
                           layout_knots(peaks_from_logits(theta), depth),
                           jnp.ones((1,), dtype)])
  basis = _hat_basis(t_fit, nodes)
  gram = basis.T @ basis
  ridge = 1e-10 * jnp.trace(gram) / nodes.shape[0] * jnp.eye(nodes.shape[0], dtype=dtype)
  coef = spd_solve(gram + ridge, basis.T @ z_fit)
  return _hat_basis(t, nodes) @ coef


def _law_start(t, z, peaks, sign, method):
  """The balanced MLP of the least-squares start at ``peaks``: amplitude (law)
  or every scale (``"free_scales"``) and the line by least squares."""
  d = peaks.shape[0] - 1
  if method == "free_scales":
    basis = jnp.stack([jnp.ones_like(t), t] + [-w for w in waves(t, peaks[:d])], axis=1)
    coef = lstsq(basis, z)
    m = {"peaks": peaks, "scales": coef[2:], "slope": coef[1], "bias": coef[0]}
  else:
    m = stage1_model(initial_stage1(t, z, peaks, sign, "enforced"), "enforced", sign)
  return _mlp.balanced(build_mlp(m))


def _screened_start(peaks, aux, method):
  """The best of ``STARTS`` candidates (peaks jittered around ``peaks``) after
  ``SCREEN_STEPS`` Levenberg-Marquardt steps each."""
  t, z = aux["xn"], aux["z"]
  keys = jax.random.split(aux["key"], STARTS)
  candidates = jax.vmap(lambda k: _law_start(
      t, z, _init.jitter_peaks(k, peaks, CANDIDATE_SPREAD), aux["sign"], method))(keys)
  residual = lambda q: engine.mlp_predict(q, t) - z
  batched = (lambda q, b: engine.mlp_predict(q, b[0]) - b[1], (t, z))
  screened = jax.vmap(lambda q: engine.run_steps(
      residual, q, _levenberg.levenberg_marquardt(), SCREEN_STEPS, batched=batched)[0])(
          candidates)
  loss = jax.vmap(lambda q: jnp.mean(residual(q) ** 2))(screened)
  best = jnp.argmin(jnp.where(jnp.isfinite(loss), loss, jnp.inf))
  return jax.tree.map(lambda a: a[best], screened)


# --------------------------------------------------------------------------
# Curvature: the sign of the waves.

def _slope_test(t, z, xp, cummax, cummin):
  """``(convex?, concave?)`` of data ``z(t)`` with the array module ``xp``
  (``jax.numpy`` traced, NumPy on the host) and its running max/min.

  Sorts by ``t`` (stably), takes the slopes between consecutive distinct
  points, and calls the data convex if those slopes never decrease by more
  than a tolerance (``1e-3`` of their range plus rounding), concave likewise.
  Every operation keeps the dtype of ``t`` in both modules.
  """
  order = xp.argsort(t, stable=True)
  ts, zs = t[order], z[order]
  dt = xp.diff(ts)
  valid = dt > 0
  slopes = xp.where(valid, xp.diff(zs) / xp.where(valid, dt, 1), 0.0)
  big = xp.finfo(t.dtype).max
  run_max = cummax(xp.where(valid, slopes, -big))
  run_min = cummin(xp.where(valid, slopes, big))
  prev_max = xp.concatenate([xp.full((1,), -big, t.dtype), run_max[:-1]])
  prev_min = xp.concatenate([xp.full((1,), big, t.dtype), run_min[:-1]])
  drop = xp.max(xp.where(valid & (prev_max > -big), prev_max - slopes, 0.0))
  rise = xp.max(xp.where(valid & (prev_min < big), slopes - prev_min, 0.0))
  srange = xp.max(xp.where(valid, slopes, -big)) - xp.min(xp.where(valid, slopes, big))
  min_dt = xp.min(xp.where(valid, dt, big))
  eps = xp.finfo(t.dtype).eps
  tol = 1e-3 * srange + 64 * eps * (1 + xp.max(xp.abs(z))) / min_dt
  return drop <= tol, rise <= tol


def curvature_scores(t: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(convex?, concave?, least-squares wave sign) from the data, traceable
  (the slope test of :func:`_slope_test`)."""
  convex, concave = _slope_test(t, z, jnp, jax.lax.cummax, jax.lax.cummin)
  # Sign of the quadratic coefficient of a least-squares parabola.
  coef = lstsq(jnp.stack([jnp.ones_like(t), t - 0.5, (t - 0.5) ** 2], axis=1), z)
  ls_sign = jnp.where(coef[2] >= 0, 1.0, -1.0).astype(t.dtype)
  return convex, concave, ls_sign


def wave_sign(t: jax.Array, z: jax.Array, mode: jax.Array) -> jax.Array:
  """+1 (convex) or -1 (concave); ``mode`` is 1, -1 or 0 (detect), traced."""
  convex, concave, ls_sign = curvature_scores(t, z)
  detected = jnp.where(convex, 1.0, jnp.where(concave, -1.0, ls_sign))
  return jnp.where(mode == 0, detected, jnp.sign(mode)).astype(t.dtype)


def warn_curvature(x: jax.Array, y: jax.Array, method: str) -> None:
  """Warns (on concrete data) when ``y`` is neither convex nor concave in ``x``."""
  hx, hy = v.concrete(x), v.concrete(y)
  if hx is None or hy is None:
    return
  t = (hx - hx.min()) / (hx.max() - hx.min())
  yr = hy.max() - hy.min()
  z = (hy - hy.min()) / (yr if yr > 0 else 1.0)
  with np.errstate(all="ignore"):      # slopes over zero gaps are masked out
    convex, concave = _slope_test(t, z, np, np.maximum.accumulate, np.minimum.accumulate)
  convex, concave = bool(convex), bool(concave)
  if not (convex or concave):
    warnings.warn(
        f"y is neither convex nor concave in x; method={method!r} fits a convex "
        "or concave function (the sign of the waves is taken from a fitted "
        "parabola). Non-convex targets need method 'dc' (a difference of two "
        "compositional networks); or pass curvature='convex' or 'concave' to "
        "silence this warning.",
        UserWarning, stacklevel=4)


# --------------------------------------------------------------------------
# The trainer.

@dataclasses.dataclass(frozen=True)
class ConvexTrainer(engine.Trainer):
  """``"enforced"``, ``"free_scales"`` or ``"no_pretrain"`` at ``depth``.

  ``second_order`` selects the default scheme of small networks (data-placed
  peaks, stage 1 on the breakpoints, screened candidate starts,
  Levenberg-Marquardt steps); otherwise the paper's (random peaks, Adam).
  """
  method: str = "enforced"
  depth: int = 5
  second_order: bool = False

  @property
  def two_stage(self) -> bool:
    return self.method != "no_pretrain"

  def _start_method(self) -> str:
    return "free_scales" if self.method == "free_scales" else "enforced"

  def init(self, key, problem, options):
    t, z = problem.xn, problem.z
    sign = wave_sign(t, z, options)
    if self.second_order:
      k_peaks, k_starts = jax.random.split(key)
      peaks = _init.data_peaks(k_peaks, t, z, self.depth)
      aux = {"sign": sign, "xn": t, "z": z, "key": k_starts}
      p1 = {"theta": logits_from_peaks(peaks)}
    else:
      peaks = _init.initial_peaks(key, self.depth, dtype=t.dtype)
      p1 = initial_stage1(t, z, peaks, sign, self._start_method())
      aux = {"sign": sign}
    return (p1 if self.two_stage else self.stage2_start(p1, aux)), aux

  def predict1(self, p, aux, xn):
    if self.second_order:
      return layout_fit(p["theta"][:self.depth], self.depth, aux["xn"], aux["z"], xn)
    return closed_form(xn, stage1_model(p, self.method, aux["sign"]))

  def stage2_start(self, p, aux):
    if self.second_order:
      return _screened_start(peaks_from_logits(p["theta"]), aux, self.method)
    return _mlp.balanced(build_mlp(stage1_model(p, self._start_method(), aux["sign"])))

  def pretrained(self, p, aux):
    if self.second_order:   # the least-squares start at the stage-1 peaks
      return stage1_model(initial_stage1(aux["xn"], aux["z"], peaks_from_logits(p["theta"]),
                                         aux["sign"], self._start_method()),
                          self.method, aux["sign"])
    return stage1_model(p, self.method, aux["sign"])

  def default_optimizers(self, lr, n1, n2):
    if self.second_order:
      # Stage 1's residuals couple the examples (a variable projection).
      return (_levenberg.levenberg_marquardt(per_example=False),
              _levenberg.levenberg_marquardt())
    return (engine.adam_cosine(lr[0], n1, warmup=False),
            engine.relative_steps(engine.adam_cosine(lr[1], n2, warmup=True, b1=STAGE2_B1)))


def n_params_of(depth: int) -> int:
  """Weights and biases of the 4-wide network of ``depth`` hidden layers."""
  return sum(a * b + b for a, b in _init.mlp_shapes(depth))


def configure(trainer: ConvexTrainer, optimizer: Any) -> ConvexTrainer:
  """The trainer for ``fit``'s ``optimizer``: the second-order scheme when
  no optimiser is given and the network has at most
  ``SECOND_ORDER_MAX_PARAMS`` weights, else the paper's."""
  return dataclasses.replace(trainer, second_order=optimizer is None and (
      n_params_of(trainer.depth) <= SECOND_ORDER_MAX_PARAMS))


def default_steps(trainer: ConvexTrainer) -> tuple[int, int]:
  """``(pretrain_steps, finetune_steps)`` when ``fit`` is given none."""
  return SECOND_ORDER_STEPS if trainer.second_order else ADAM_STEPS


def setup(x: jax.Array, y: jax.Array, *, method: str, depth: int, width: Any,
          curvature: str) -> tuple[engine.Trainer, jax.Array, int, Any]:
  """``(trainer, options, n_params, default learning rate)`` for checked ``x, y``."""
  del width
  if curvature == "auto":
    warn_curvature(x, y, method)
  mode = np.asarray({"auto": 0, "convex": 1, "concave": -1}[curvature], np.int32)
  return ConvexTrainer(method=method, depth=depth), mode, n_params_of(depth), (
      DEFAULT_LEARNING_RATE)
