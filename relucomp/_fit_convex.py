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

from relucomp import _engine as engine
from relucomp import _init
from relucomp import _mlp
from relucomp import _validation as v
from relucomp._network import compositional_mlp
from relucomp._reparam import logits_from_peaks, peaks_from_logits
from relucomp._series import enforced_scales

__all__ = ["METHODS", "CURVATURES", "ConvexTrainer", "setup", "DEFAULT_LEARNING_RATE",
           "STAGE2_B1"]

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


def lstsq(basis: jax.Array, z: jax.Array) -> jax.Array:
  """Least squares by the normal equations (a few well-scaled columns)."""
  gram = basis.T @ basis
  ridge = 1e-12 * jnp.trace(gram) * jnp.eye(gram.shape[0], dtype=gram.dtype)
  return jnp.linalg.solve(gram + ridge, basis.T @ z)


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
# Curvature: the sign of the waves.

def curvature_scores(t: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
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
  # Sign of the quadratic coefficient of a least-squares parabola.
  coef = lstsq(jnp.stack([jnp.ones_like(t), t - 0.5, (t - 0.5) ** 2], axis=1), z)
  ls_sign = jnp.where(coef[2] >= 0, 1.0, -1.0).astype(t.dtype)
  return drop <= tol, rise <= tol, ls_sign


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
  with jax.ensure_compile_time_eval():
    t = (hx - hx.min()) / (hx.max() - hx.min())
    yr = hy.max() - hy.min()
    z = (hy - hy.min()) / (yr if yr > 0 else 1.0)
    convex, concave, _ = curvature_scores(jnp.asarray(t), jnp.asarray(z))
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
  """``"enforced"``, ``"free_scales"`` or ``"no_pretrain"`` at ``depth``."""
  method: str = "enforced"
  depth: int = 5

  @property
  def two_stage(self) -> bool:
    return self.method != "no_pretrain"

  def _start_method(self) -> str:
    return "free_scales" if self.method == "free_scales" else "enforced"

  def init(self, key, problem, options):
    sign = wave_sign(problem.xn, problem.z, options)
    peaks = _init.initial_peaks(key, self.depth, dtype=problem.xn.dtype)
    p1 = initial_stage1(problem.xn, problem.z, peaks, sign, self._start_method())
    aux = {"sign": sign}
    return (p1 if self.two_stage else self.stage2_start(p1, aux)), aux

  def predict1(self, p, aux, xn):
    return closed_form(xn, stage1_model(p, self.method, aux["sign"]))

  def stage2_start(self, p, aux):
    return _mlp.balanced(build_mlp(stage1_model(p, self._start_method(), aux["sign"])))

  def pretrained(self, p, aux):
    return stage1_model(p, self.method, aux["sign"])

  def default_optimizers(self, lr, n1, n2):
    return (engine.adam_cosine(lr[0], n1, warmup=False),
            engine.relative_steps(engine.adam_cosine(lr[1], n2, warmup=True, b1=STAGE2_B1)))


def setup(x: jax.Array, y: jax.Array, *, method: str, depth: int, width: Any,
          curvature: str) -> tuple[engine.Trainer, jax.Array, int, Any]:
  """``(trainer, options, n_params, default learning rate)`` for checked ``x, y``."""
  del width
  if curvature == "auto":
    warn_curvature(x, y, method)
  mode = jnp.asarray({"auto": 0, "convex": 1, "concave": -1}[curvature], jnp.int32)
  n_params = sum(a * b + b for a, b in _init.mlp_shapes(depth))
  return ConvexTrainer(method=method, depth=depth), mode, n_params, DEFAULT_LEARNING_RATE
