"""Depth-independent stability (Heinecke and Hwang, Theorem 6): nets with and without norm_constraint.

For every depth (number of hidden layers ``d``; the network has ``L = d + 1``
layers) two networks fit ``y = x^3`` on 256 points of ``[0, 1]``:

* ``dense``: width ``--width`` (16), He-normal kernels, zero biases;
* ``compositional``: the 4-wide network of :func:`relucomp.compositional_mlp`
  from random peaks in ``[0.25, 0.75]`` under the law (amplitude 0.2), every
  weight then trained freely (the library's stage 2);

each with plain Adam, and with Adam chained with
``relucomp.norm_constraint(max_norm=1)`` (spectral norm of every hidden
kernel at most 1; the run starts from the projection of the same initial
network). Adam's rate follows a cosine decay from ``--lr``; full batch;
float64.

Reported per run: final MSE; the global Lipschitz bounds of
:func:`relucomp.lipschitz_bound` (the product of spectral norms, Theorem
6(ii), and the largest-weight bound of Theorem 6(i)); the product
``||W_1||_2 ||W_L||_2`` of the end layers, which with the constraint bounds
the first one at every depth; the exact local Lipschitz constant
(:func:`relucomp.local_lipschitz`, largest over the training points); and the
Frobenius norm of each layer's kernel gradient at step 0 and at the end
(the table: the first layer's over the last layer's; the JSON: every layer's).

    python benchmarks/stability.py          # quick: depths 2, 5, 10, 20, 30; 600 steps; 2 seeds
    python benchmarks/stability.py --full   # depths 2..30; 3000 steps; 3 seeds
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pathlib
import statistics
import sys
import time

# The SVDs of the constraint are small: OpenBLAS's own threads only contend
# with XLA's (on a busy 2-core machine they made a 64-wide SVD 30 times slower).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import relucomp  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

QUICK_DEPTHS = (2, 5, 10, 20, 30)
FULL_DEPTHS = tuple(range(2, 31))
NETS = ("dense", "compositional")


def dense_init(key: jax.Array, depth: int, width: int) -> list[dict]:
  widths = [1] + [width] * depth + [1]
  keys = jax.random.split(key, len(widths) - 1)
  return [{"kernel": jax.random.normal(k, (a, b)) * math.sqrt(2.0 / a),
           "bias": jnp.zeros(b)} for k, a, b in zip(keys, widths[:-1], widths[1:])]


def compositional_init(key: jax.Array, depth: int) -> list[dict]:
  peaks = jax.random.uniform(key, (depth + 1,), minval=0.25, maxval=0.75)
  return relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.2))


def _loss(params, x, y):
  return jnp.mean((relucomp.mlp_apply(params, x) - y) ** 2)


@functools.partial(jax.jit, static_argnames=("tx", "steps"))
def train(params, x, y, *, tx, steps):
  """``steps`` full-batch steps of ``tx`` in one scan; returns params, losses."""
  def step(carry, _):
    p, state = carry
    loss, grads = jax.value_and_grad(_loss)(p, x, y)
    updates, state = tx.update(grads, state, p)
    return (optax.apply_updates(p, updates), state), loss
  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params, losses


def project(params: list[dict], max_norm: float) -> list[dict]:
  """The nearest network whose hidden kernels satisfy the constraint."""
  tx = relucomp.norm_constraint(max_norm=max_norm)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  return optax.apply_updates(params, updates)


@jax.jit
def _loss_and_grad_norms(params, x, y):
  loss, grads = jax.value_and_grad(_loss)(params, x, y)
  return loss, [jnp.linalg.norm(g["kernel"]) for g in grads]


def measure(params, x, y) -> dict:
  """The figures of one network (all in float64)."""
  norms = [float(np.linalg.norm(np.asarray(p["kernel"]), 2)) for p in params]
  loss, grad_norms = _loss_and_grad_norms(params, x, y)
  return {
      "mse": float(loss),
      "bound_spectral": float(relucomp.lipschitz_bound(params)),
      "bound_max_weight": float(relucomp.lipschitz_bound(params, method="max_weight")),
      "ends": norms[0] * norms[-1],
      "hidden_norm_max": max(norms[1:-1], default=0.0),
      "local_max": float(jnp.max(relucomp.local_lipschitz(params, x))),
      "grad_norms": [float(g) for g in grad_norms],
  }


def run_one(net: str, depth: int, seed: int, constrained: bool, args, x, y) -> dict:
  key = jax.random.key(seed)
  params = (dense_init(key, depth, args.width) if net == "dense"
            else compositional_init(key, depth))
  if constrained:
    params = project(params, args.max_norm)
    tx = optax.chain(optax.adam(optax.cosine_decay_schedule(args.lr, args.steps)),
                     relucomp.norm_constraint(max_norm=args.max_norm))
  else:
    tx = optax.adam(optax.cosine_decay_schedule(args.lr, args.steps))
  start = measure(params, x, y)
  t0 = time.perf_counter()
  trained, losses = train(params, x, y, tx=tx, steps=args.steps)
  losses = np.asarray(losses)
  seconds = time.perf_counter() - t0
  end = measure(trained, x, y)
  return {"net": net, "depth": depth, "seed": seed, "constrained": constrained,
          "start": start, "end": end, "best_loss": float(losses.min()),
          "diverged": bool(not np.all(np.isfinite(losses))), "seconds": seconds}


def _median(rows, field, stage="end"):
  return statistics.median(r[stage][field] for r in rows)


def summarise(runs: list[dict]) -> list[dict]:
  """Medians over seeds per (net, constraint, depth)."""
  groups: dict[tuple, list[dict]] = {}
  for r in runs:
    groups.setdefault((r["net"], r["constrained"], r["depth"]), []).append(r)
  rows = []
  for (net, constrained, depth), rs in groups.items():
    g0 = [statistics.median(r["start"]["grad_norms"][i] for r in rs)
          for i in range(len(rs[0]["start"]["grad_norms"]))]
    g1 = [statistics.median(r["end"]["grad_norms"][i] for r in rs)
          for i in range(len(rs[0]["end"]["grad_norms"]))]
    rows.append({
        "net": net, "constrained": constrained, "depth": depth, "seeds": len(rs),
        # constant on the data: no active path at any training point (exact 0)
        "collapsed": sum(r["end"]["local_max"] == 0.0 for r in rs),
        **{f: _median(rs, f) for f in ("mse", "bound_spectral", "bound_max_weight", "ends",
                                       "hidden_norm_max", "local_max")},
        "bound_spectral_start": _median(rs, "bound_spectral", "start"),
        "grad_first_start": g0[0], "grad_last_start": g0[-1],
        "grad_first_end": g1[0], "grad_last_end": g1[-1],
        "grad_norms_start": g0, "grad_norms_end": g1,
    })
  return rows


def growth(rows: list[dict], field: str) -> dict[str, float]:
  """Least-squares slope of log10(field) against depth, per (net, constraint)."""
  out = {}
  for net in NETS:
    for constrained in (False, True):
      sel = [r for r in rows if r["net"] == net and r["constrained"] == constrained
             and r[field] > 0]
      if len(sel) >= 2:
        d = np.array([r["depth"] for r in sel], float)
        v = np.log10([r[field] for r in sel])
        out[f"{net}{', constrained' if constrained else ''}"] = float(np.polyfit(d, v, 1)[0])
  return out


def _label(row):
  return f"{row['net']}{' + constraint' if row['constrained'] else ''}"


def print_table(rows: list[dict]) -> None:
  head = (f"{'net':<28}{'depth':>6}{'MSE':>11}{'bound(ii)':>11}{'bound(i)':>11}{'ends':>9}"
          f"{'hidden':>8}{'local':>8}{'dead':>6}{'g1/gL 0':>10}{'g1/gL end':>11}")
  print(head)
  print("-" * len(head))
  for r in rows:
    print(f"{_label(r):<28}{r['depth']:>6}{r['mse']:>11.2e}{r['bound_spectral']:>11.2e}"
          f"{r['bound_max_weight']:>11.2e}{r['ends']:>9.2f}{r['hidden_norm_max']:>8.3f}"
          f"{r['local_max']:>8.2f}{r['collapsed']:>4}/{r['seeds']}"
          f"{_ratio(r['grad_first_start'], r['grad_last_start']):>10}"
          f"{_ratio(r['grad_first_end'], r['grad_last_end']):>11}")


def _ratio(a: float, b: float) -> str:
  return f"{a / b:.1e}" if b > 0 else "-"


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="the default size")
  size.add_argument("--full", action="store_true", help="depths 2..30, 3000 steps, 3 seeds")
  parser.add_argument("--depths", type=str, default=None,
                      help="comma-separated depths (overrides the size's)")
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--seeds", type=int, default=None)
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--lr", type=float, default=3e-3)
  parser.add_argument("--max-norm", type=float, default=1.0)
  parser.add_argument("--points", type=int, default=256)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/stability"))
  args = parser.parse_args(argv)
  depths = (tuple(int(d) for d in args.depths.split(",")) if args.depths
            else FULL_DEPTHS if args.full else QUICK_DEPTHS)
  if args.steps is None:
    args.steps = 3000 if args.full else 600
  if args.seeds is None:
    args.seeds = 3 if args.full else 2
  if min(depths) < 2 or args.steps < 1 or args.seeds < 1:
    parser.error("depths must be >= 2 and --steps, --seeds >= 1")

  x = jnp.linspace(0.0, 1.0, args.points)[:, None]
  y = x ** 3
  start = time.perf_counter()
  runs = [run_one(net, d, seed, constrained, args, x, y)
          for net in NETS for constrained in (False, True) for d in depths
          for seed in range(args.seeds)]
  rows = summarise(runs)
  print_table(rows)
  result = {"rows": rows, "runs": runs,
            "growth_bound_spectral": growth(rows, "bound_spectral"),
            "growth_local": growth(rows, "local_max"),
            "settings": {"depths": list(depths), "steps": args.steps, "seeds": args.seeds,
                         "width": args.width, "lr": args.lr, "max_norm": args.max_norm,
                         "points": args.points, "target": "x^3 on [0, 1]"},
            "seconds": time.perf_counter() - start}
  print("\nslope of log10(bound (ii)) per layer:",
        {k: round(v, 3) for k, v in result["growth_bound_spectral"].items()})
  md = _results.write(
      args.out, "stability", result, markdown, script=__file__, argv=argv,
      size=(f"depths {', '.join(map(str, depths))}; {args.steps} Adam steps; "
            f"{args.seeds} seed(s); dense width {args.width}; float64"))
  print(f"\ntable: {args.out / 'stability.json'}, {md}")
  return result


def markdown(result: dict) -> str:
  """The table of ``stability.json`` (without the command header) as Markdown."""
  s = result["settings"]
  lines = [
      f"**Training with and without `norm_constraint(max_norm={s['max_norm']:g})`**, "
      f"target {s['target']}, {s['steps']} Adam steps (cosine decay from {s['lr']:g}), "
      f"medians over {s['seeds']} seed(s). Depth $d$ = hidden layers ($L = d + 1$ "
      "layers). Bound (ii): product of spectral norms; bound (i): Theorem 6(i) "
      "(largest hidden weight, paths); ends: $\\|W_1\\|_2 \\|W_L\\|_2$; largest hidden "
      "norm: the largest spectral norm of a hidden kernel; local: exact "
      "$\\|A\\|_2$, largest over the training points; $g_1 / g_L$: Frobenius norm of "
      "the first layer's kernel gradient over the last layer's, at step 0 and at the end; "
      "collapsed: seeds whose trained network is constant on the data (exact local "
      "constant 0 at every training point).",
      "",
      "| net | $d$ | final MSE | collapsed | bound (ii) at start | bound (ii) | bound (i) | "
      "ends | largest hidden norm | local | $g_1 / g_L$ step 0 | $g_1 / g_L$ end |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in result["rows"]:
    lines.append(
        f"| {_label(r)} | {r['depth']} | {r['mse']:.2e} | {r['collapsed']}/{r['seeds']} | "
        f"{r['bound_spectral_start']:.2e} | "
        f"{r['bound_spectral']:.2e} | {r['bound_max_weight']:.2e} | {r['ends']:.2f} | "
        f"{r['hidden_norm_max']:.3f} | {r['local_max']:.2f} | {_ratio(r['grad_first_start'], r['grad_last_start'])} | "
        f"{_ratio(r['grad_first_end'], r['grad_last_end'])} |")
  growth_line = ", ".join(f"{k}: {v:+.3f}" for k, v in result["growth_bound_spectral"].items())
  local_line = ", ".join(f"{k}: {v:+.3f}" for k, v in result["growth_local"].items())
  lines += ["", f"Slope of $\\log_{{10}}$ bound (ii) per added layer: {growth_line}.",
            f"Slope of $\\log_{{10}}$ local: {local_line}.",
            "", f"Time: {result['seconds']:.0f} s."]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
