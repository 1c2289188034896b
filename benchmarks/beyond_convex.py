"""Beyond one convex variable: ``fit(method="dc")`` and ``"compositional"`` vs dense.

1-D, non-convex targets (500 evenly spaced points): a difference of two
compositional networks (``method="dc"``, one 8-wide MLP) against Kaiming
MLPs of the same depth and width 8, i.e. exactly as many parameters, with
the same number of steps (``pretrain_steps + finetune_steps``).

2-D targets on a 40 x 40 grid of ``[-1, 1]^2`` (1600 points): two
``CompositionalDense`` layers (``method="compositional"``) against a dense
Kaiming MLP of the same depth with at least as many trainable parameters.
The 2-D depth is 6 by default: each unit's function has ``2^depth`` pieces
per part, and at depth 4 (16 pieces) a unit approximates even a quadratic
of its projection only to about the error the dense network reaches.

The Kaiming baselines are trained with every learning rate in
``--kaiming-lrs`` (``fit``'s default for them is 1e-3) and the best is
reported, so the comparison does not rest on one learning rate. The
compositional methods use ``fit``'s defaults
(``relucomp._fit_dc.DEFAULT_LEARNING_RATE``).

Prints a table of minimum and mean training MSE over the models, parameter
counts and the ratio ``best dense / best compositional``; writes
``beyond_convex.json`` and ``beyond_convex.md`` (the table, with the command).

``--lm-steps N`` runs the 1-D comparison with Levenberg-Marquardt steps
(``relucomp.levenberg_marquardt``) instead: ``"dc"`` keeps its Adam stage 1
(``--steps`` steps) and runs ``N`` Levenberg-Marquardt steps in stage 2; the
Kaiming MLPs run Levenberg-Marquardt for all ``--steps + N`` steps (at least
the compositional budget, and each of those steps costs far more than an
Adam step). It writes ``beyond_convex_lm.json`` and ``beyond_convex_lm.md``.
(The 2-D networks, about 1900 parameters, are beyond what a dense
Jacobian per step is meant for and are not run this way.)

Usage:
  python benchmarks/beyond_convex.py            # quick: 3 models, 300 + 300 steps
  python benchmarks/beyond_convex.py --full     # 10 (1-D) / 5 (2-D) models, 1000 + 1000,
                                                # 2-D also 5000 + 5000
  python benchmarks/beyond_convex.py --full --lm-steps 100   # 1-D, Levenberg-Marquardt
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import relucomp
from relucomp import _engine

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

TARGETS_1D: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[float, float]]] = {
    "x^3 - x": (lambda x: x ** 3 - x, (-1.0, 1.0)),
    "sin(2 pi x)": (lambda x: np.sin(2 * np.pi * x), (0.0, 1.0)),
    "exp(-8 x^2)": (lambda x: np.exp(-8 * x ** 2), (-1.0, 1.0)),
    "1/(1 + 25 x^2)": (lambda x: 1.0 / (1.0 + 25.0 * x ** 2), (-1.0, 1.0)),
    "sin(3x) + 0.3 x^2": (lambda x: np.sin(3 * x) + 0.3 * x ** 2, (-2.0, 2.0)),
}
TARGETS_2D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "r^3": lambda p: np.sum(p ** 2, axis=1) ** 1.5,
    "sin(2x) cos(2y)": lambda p: np.sin(2 * p[:, 0]) * np.cos(2 * p[:, 1]),
}


@functools.lru_cache(maxsize=None)
def _program(settings: tuple) -> Callable:
  """The jitted vmap of fits for these settings; x and y are arguments, not
  constants of the program, so targets of one shape share one compile."""
  kw = dict(settings)
  return jax.jit(jax.vmap(lambda k, xx, yy: relucomp.fit(xx, yy, key=k, **kw),
                          in_axes=(0, None, None)))


def _fits(x, y, keys, **kw):
  fn = _program(tuple(sorted(kw.items())))
  t0 = time.perf_counter()
  res = fn(keys, jnp.asarray(x), jnp.asarray(y))
  jax.block_until_ready(res.mse)
  return res, time.perf_counter() - t0


def _stats(res, seconds) -> dict[str, Any]:
  mse = np.asarray(res.mse, np.float64)
  ok = ~np.asarray(res.diverged)
  return {"min": float(np.min(np.where(ok, mse, np.inf))),
          "mean": float(np.mean(np.where(ok, mse, np.nan))),
          "diverged": int((~ok).sum()), "n_params": int(res.n_params),
          "seconds": seconds, "all": mse.tolist()}


def _compare(x, y, keys, comp_kw, dense_kw, kaiming_lrs, steps):
  comp, secs = _fits(x, y, keys, **comp_kw, **steps)
  out = {"compositional": _stats(comp, secs), "dense": {}}
  for lr in kaiming_lrs:
    dense, secs = _fits(x, y, keys, **dense_kw, learning_rate=lr, **steps)
    out["dense"][str(lr)] = _stats(dense, secs)
  best_lr = min(out["dense"], key=lambda k: out["dense"][k]["min"])
  out["dense_best_lr"] = float(best_lr)
  out["ratio"] = out["dense"][best_lr]["min"] / out["compositional"]["min"]
  return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", action="store_true", help="small run (default)")
  mode.add_argument("--full", action="store_true", help="the issue's measurement")
  parser.add_argument("--models-1d", type=int, default=None)
  parser.add_argument("--models-2d", type=int, default=None)
  parser.add_argument("--steps", type=int, default=None, help="steps per stage")
  parser.add_argument("--long-2d", type=int, default=None,
                      help="steps per stage of a second, longer 2-D comparison (both "
                           "networks the same budget; 0 skips it; full: 5000)")
  parser.add_argument("--parts", default="1d,2d", help="which comparisons to run")
  parser.add_argument("--lm-steps", type=int, default=None,
                      help="1-D only, Levenberg-Marquardt: dc stage 2 and all Kaiming steps")
  parser.add_argument("--depth-1d", type=int, default=5)
  parser.add_argument("--depth-2d", type=int, default=6)
  parser.add_argument("--width-2d", type=int, default=4, help="units per layer")
  parser.add_argument("--kaiming-lrs", default="3e-4,1e-3,3e-3,1e-2")
  parser.add_argument("--points-1d", type=int, default=500)
  parser.add_argument("--grid", type=int, default=40)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default="out/beyond_convex")
  args = parser.parse_args(argv)
  m1 = args.models_1d or (10 if args.full else 3)
  m2 = args.models_2d or (5 if args.full else 3)
  n = args.steps or (1000 if args.full else 300)
  n_long = args.long_2d if args.long_2d is not None else (5000 if args.full else 0)
  steps = {"pretrain_steps": n, "finetune_steps": n}
  lrs = [float(s) for s in args.kaiming_lrs.split(",")]
  lm = args.lm_steps is not None
  # "adam": the Adam comparison keeps dc's Adam stage 2 (its default is now
  # Levenberg-Marquardt; --lm-steps compares that).
  comp_1d = {"method": "dc", "depth": args.depth_1d, "optimizer": "adam"}
  dense_1d = {"method": "kaiming", "depth": args.depth_1d, "width": 8}
  if lm:
    if args.lm_steps < 1:
      parser.error(f"--lm-steps must be >= 1; got {args.lm_steps}")
    steps = {"pretrain_steps": n, "finetune_steps": args.lm_steps}
    pair = (None, relucomp.levenberg_marquardt())
    comp_1d["optimizer"] = dense_1d["optimizer"] = pair
    lrs = [_engine.DEFAULT_RANDOM_INIT_LEARNING_RATE]   # unused by the steps
    n_long = 0
  key = jax.random.key(args.seed)
  results: dict[str, Any] = {"config": {
      "models_1d": m1, "models_2d": m2, "steps_per_stage": n, "depth_1d": args.depth_1d,
      "depth_2d": args.depth_2d, "width_2d": args.width_2d, "kaiming_lrs": lrs,
      "points_1d": args.points_1d, "grid": args.grid, "seed": args.seed,
      "steps_per_stage_2d_long": n_long, "lm_steps": args.lm_steps,
      "dtype": str(jnp.zeros(()).dtype)}, "1d": {}, "2d": {}, "2d_long": {}}
  start = time.perf_counter()

  keys1 = jax.random.split(jax.random.fold_in(key, 1), m1)
  parts = {"1d"} if lm else set(args.parts.split(","))
  for name, (f, (lo, hi)) in (TARGETS_1D.items() if "1d" in parts else ()):
    x = np.linspace(lo, hi, args.points_1d, dtype=np.float32)
    y = f(x).astype(np.float32)
    results["1d"][name] = _compare(x, y, keys1, comp_1d, dense_1d, lrs, steps)
    print(f"1-D {name}: done ({time.perf_counter() - start:.0f} s)", flush=True)

  g = np.linspace(-1.0, 1.0, args.grid, dtype=np.float32)
  gx, gy = np.meshgrid(g, g)
  p = np.stack([gx.ravel(), gy.ravel()], axis=1)
  keys2 = jax.random.split(jax.random.fold_in(key, 2), m2)
  budgets = [("2d", steps)] if "2d" in parts else []
  if n_long and "2d" in parts:
    budgets.append(("2d_long", {"pretrain_steps": n_long, "finetune_steps": n_long}))
  for part, budget in budgets:
    for name, f in TARGETS_2D.items():
      z = f(p).astype(np.float32)
      results[part][name] = _compare(
          p, z, keys2, {"method": "compositional", "depth": args.depth_2d,
                        "width": args.width_2d},
          {"method": "kaiming", "depth": args.depth_2d}, lrs, budget)
      print(f"2-D {name}, {budget['pretrain_steps']} + {budget['finetune_steps']} steps: "
            f"done ({time.perf_counter() - start:.0f} s)", flush=True)
  results["total_seconds"] = time.perf_counter() - start

  full = m1 >= 10 and m2 >= 5 and n >= 1000
  size = (f"{'full' if full else 'quick'}: {m1} models (1-D), {m2} models (2-D), "
          f"{n} + {n} steps{f', 2-D also {n_long} + {n_long}' if n_long else ''} "
          f"(full: 10 and 5 models, 1000 + 1000 steps, 2-D also 5000 + 5000)")
  if lm:
    size += f"; Levenberg-Marquardt: dc {n} + {args.lm_steps}, Kaiming {n + args.lm_steps}"
  name = "beyond_convex_lm" if lm else "beyond_convex"
  md = _results.write(args.out, name, results, markdown, script=__file__,
                      argv=argv, size=size)
  print()
  print(md.read_text())
  print(f"wrote {args.out}/{name}.{{json,md}}")
  return results


TABLE_HEAD = ("| target | method | params | min MSE | mean MSE | dense best / comp. best |",
              "|---|---|---|---|---|---|")


def markdown(results: dict[str, Any]) -> str:
  """The table of ``beyond_convex.json`` (without the command header) as Markdown."""
  c = results["config"]
  n = c["steps_per_stage"]
  lm = c.get("lm_steps")
  if lm:
    return "\n".join([
        f"**Training MSE with Levenberg-Marquardt steps**, {c['models_1d']} models per target "
        f"(depth {c['depth_1d']}, {c['points_1d']} points, {c['dtype']}): dc trains stage 1 "
        f"with Adam for {n} steps and stage 2 with {lm} Levenberg-Marquardt steps; each "
        f"Kaiming MLP (width 8) takes {n + lm} Levenberg-Marquardt steps from its random "
        "start. The last column is the dense minimum over the dc one. Total time "
        f"{results['total_seconds']:.0f} s.", "",
        *TABLE_HEAD] + _rows([], results["1d"], "dc, LM stage 2",
                                               dense_label=lambda lr: "kaiming, LM"))
  lines = [f"**Training MSE**, {c['models_1d']} models per 1-D target (depth {c['depth_1d']}, "
           f"{c['points_1d']} points) and {c['models_2d']} per 2-D target (depth "
           f"{c['depth_2d']}, {c['width_2d']} units, {c['grid']} x {c['grid']} grid), "
           f"{n} + {n} steps, {c['dtype']}; the last column is the best dense minimum over "
           f"the best compositional one. Total time {results['total_seconds']:.0f} s.", "",
           *TABLE_HEAD]
  _rows(lines, results["1d"], "dc")
  _rows(lines, results["2d"], "compositional")
  long = results.get("2d_long")
  if long:
    m = c["steps_per_stage_2d_long"]
    lines += ["", f"**2-D, longer**: the same 2-D comparison with {m} + {m} steps for the "
              f"compositional network and {2 * m} steps for each dense one (the same "
              "learning rates):", "",
              *TABLE_HEAD]
    _rows(lines, long, "compositional")
  return "\n".join(lines)


def _rows(lines: list[str], part: dict[str, Any], label: str,
          dense_label: Callable[[str], str] = lambda lr: f"kaiming lr {lr}") -> list[str]:
  for name, r in part.items():
    comp = r["compositional"]
    lines.append(f"| {name} | {label} | {comp['n_params']} | {comp['min']:.3g} | "
                 f"{comp['mean']:.3g} | {r['ratio']:.3g} |")
    for lr, d in r["dense"].items():
      best = " (best)" if float(lr) == r["dense_best_lr"] and len(r["dense"]) > 1 else ""
      lines.append(f"| {name} | {dense_label(lr)}{best} | {d['n_params']} | "
                   f"{d['min']:.3g} | {d['mean']:.3g} | |")
  return lines


if __name__ == "__main__":
  main(sys.argv[1:])
