"""Several inputs: ``fit(method="compositional")`` against a dense baseline.

Smooth targets of two and three inputs on a regular grid of ``[-1, 1]^k``
(40 x 40 = 1600 points in 2-D, 12^3 = 1728 in 3-D). Each model is fitted at
``fit``'s default budget (depth 5, 1000 + 1000 steps) with the keys
``--models``:

* ``compositional``: ``fit``'s default for the method: two
  ``CompositionalDense`` layers of 4 units, stage 1 Adam on four starts at
  once (the best goes on), stage 2 ``relucomp.block_gauss_newton`` steps;
* ``compositional, Adam stage 2``: the same network with Adam in stage 2
  (the method's previous default: learning rate 3e-4, first-moment decay
  0.98, warm-up and cosine decay), to show what the optimiser changes;
* ``kaiming``: a dense ReLU MLP of the same depth with at least as many
  parameters (``fit(method="kaiming")`` picks the width), 2000 Adam steps,
  with every learning rate in ``--kaiming-lrs``; the best is compared.

Prints the table of minimum and mean training MSE over the keys, parameter
counts, wall time per batch of models, and two ratios per row: the best
dense minimum over the row's minimum, and the best dense mean (the
learning rate of lowest mean) over the row's mean; writes
``several_inputs.json`` and ``several_inputs.md``.

Usage:
  python benchmarks/several_inputs.py            # quick: r^3 only, 2 keys, 300 + 300 steps
  python benchmarks/several_inputs.py --full     # every target, 5 keys, 1000 + 1000 steps
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import relucomp
from relucomp import _engine

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

#: name -> (number of inputs, target on points of shape (n, k)).
TARGETS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "r^3": (2, lambda p: np.sum(p ** 2, axis=1) ** 1.5),
    "sin(2x) cos(2y)": (2, lambda p: np.sin(2 * p[:, 0]) * np.cos(2 * p[:, 1])),
    "exp(-2 |p|^2)": (2, lambda p: np.exp(-2 * np.sum(p ** 2, axis=1))),
    "r^3 (3-D)": (3, lambda p: np.sum(p ** 2, axis=1) ** 1.5),
    "1/(1 + |p|^2) (3-D)": (3, lambda p: 1.0 / (1.0 + np.sum(p ** 2, axis=1))),
}
GRID = {2: 40, 3: 12}


def grid(k: int, n: int) -> np.ndarray:
  """The ``n^k`` points of a regular grid of ``[-1, 1]^k``, shape ``(n^k, k)``."""
  g = np.linspace(-1.0, 1.0, n)
  return np.stack([a.ravel() for a in np.meshgrid(*[g] * k)], axis=1)


def _fits(x, y, keys, **kw):
  fn = jax.jit(jax.vmap(lambda k: relucomp.fit(x, y, key=k, **kw)))
  t0 = time.perf_counter()
  res = fn(keys)
  jax.block_until_ready(res.mse)
  seconds = time.perf_counter() - t0
  mse = np.asarray(res.mse, np.float64)
  ok = ~np.asarray(res.diverged)
  return {"min": float(np.min(np.where(ok, mse, np.inf))),
          "mean": float(np.mean(np.where(ok, mse, np.nan))),
          "diverged": int((~ok).sum()), "n_params": int(res.n_params),
          "seconds": seconds, "all": mse.tolist()}


def compare(x, y, keys, *, depth, steps, kaiming_lrs) -> dict[str, Any]:
  n = steps["pretrain_steps"]
  m = steps["finetune_steps"]
  adam2 = _engine.adam_cosine(jnp.asarray(3e-4, x.dtype), m, warmup=True, b1=0.98)
  out = {"compositional": _fits(x, y, keys, method="compositional", depth=depth, **steps),
         "compositional_adam": _fits(x, y, keys, method="compositional", depth=depth,
                                     optimizer=(None, adam2), **steps),
         "dense": {}}
  for lr in kaiming_lrs:
    out["dense"][str(lr)] = _fits(x, y, keys, method="kaiming", depth=depth,
                                  learning_rate=lr, pretrain_steps=n, finetune_steps=m)
  best = min(out["dense"], key=lambda k: out["dense"][k]["min"])
  out["dense_best_lr"] = float(best)
  out.update(ratios(out))
  return out


def ratios(r: dict[str, Any]) -> dict[str, float]:
  """Best dense minimum / row minimum (``ratio``, ``ratio_adam``) and best
  dense mean / row mean (``ratio_mean``, ``ratio_mean_adam``)."""
  dmin = min(d["min"] for d in r["dense"].values())
  dmean = min(d["mean"] for d in r["dense"].values())
  return {"ratio": dmin / r["compositional"]["min"],
          "ratio_adam": dmin / r["compositional_adam"]["min"],
          "ratio_mean": dmean / r["compositional"]["mean"],
          "ratio_mean_adam": dmean / r["compositional_adam"]["mean"]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", action="store_true", help="small run (default)")
  mode.add_argument("--full", action="store_true", help="the issue's measurement")
  parser.add_argument("--models", type=int, default=None, help="keys per target")
  parser.add_argument("--steps", type=int, default=None, help="steps per stage")
  parser.add_argument("--depth", type=int, default=5)
  parser.add_argument("--targets", default=None,
                      help="comma-separated target names (default: all with --full, "
                           "r^3 otherwise)")
  parser.add_argument("--kaiming-lrs", default="3e-4,1e-3,3e-3,1e-2")
  parser.add_argument("--grid-2d", type=int, default=GRID[2])
  parser.add_argument("--grid-3d", type=int, default=GRID[3])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default="out/several_inputs")
  parser.add_argument("--combine", nargs="+", metavar="DIR",
                      help="no fits: merge the several_inputs.json of runs in DIR ... "
                           "(one target each, say) into one table in --out")
  args = parser.parse_args(argv)
  if args.combine:
    return _combine(args, argv)
  models = args.models or (5 if args.full else 2)
  n = args.steps or (1000 if args.full else 300)
  names = (args.targets.split(",") if args.targets
           else list(TARGETS) if args.full else ["r^3"])
  unknown = [t for t in names if t not in TARGETS]
  if unknown:
    parser.error(f"unknown targets {unknown}; choose from {list(TARGETS)}")
  lrs = [float(s) for s in args.kaiming_lrs.split(",")]
  steps = {"pretrain_steps": n, "finetune_steps": n}
  keys = jax.random.split(jax.random.key(args.seed), models)
  grids = {2: args.grid_2d, 3: args.grid_3d}
  results: dict[str, Any] = {"config": {
      "models": models, "steps_per_stage": n, "depth": args.depth, "kaiming_lrs": lrs,
      "grid": {str(k): g for k, g in grids.items()}, "seed": args.seed,
      "dtype": str(jnp.zeros(()).dtype), "load_start": _load()}, "targets": {}}
  start = time.perf_counter()
  for name in names:
    k, f = TARGETS[name]
    x = grid(k, grids[k]).astype(np.float32)
    y = f(x).astype(np.float32)
    results["targets"][name] = dict(compare(x, y, keys, depth=args.depth, steps=steps,
                                            kaiming_lrs=lrs), inputs=k, points=len(x))
    r = results["targets"][name]
    print(f"{name}: dense / compositional: best {r['ratio']:.3g}, mean "
          f"{r['ratio_mean']:.3g} ({time.perf_counter() - start:.0f} s)", flush=True)
  results["total_seconds"] = time.perf_counter() - start
  results["config"]["load_end"] = _load()
  full = models >= 5 and n >= 1000 and len(names) == len(TARGETS)
  size = (f"{'full' if full else 'quick'}: {models} keys per target, {n} + {n} steps, "
          f"{len(names)} target(s) (full: 5 keys, 1000 + 1000 steps, every target)")
  md = _results.write(args.out, "several_inputs", results, markdown, script=__file__,
                      argv=argv, size=size)
  print()
  print(md.read_text())
  print(f"wrote {args.out}/several_inputs.{{json,md}}")
  return results


def _combine(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
  """Merges the targets of earlier runs (same settings) into one result."""
  import json
  parts = [json.loads((pathlib.Path(d) / "several_inputs.json").read_text())
           for d in args.combine]
  results = {"config": dict(parts[0]["config"]), "targets": {},
             "total_seconds": sum(p["total_seconds"] for p in parts),
             "commands": [p["run"]["command"] for p in parts]}
  results["config"]["load_start"] = max(p["config"]["load_start"] for p in parts)
  results["config"]["load_end"] = max(p["config"]["load_end"] for p in parts)
  for p in parts:
    results["targets"].update(p["targets"])
  c = results["config"]
  full = c["models"] >= 5 and c["steps_per_stage"] >= 1000 and (
      len(results["targets"]) == len(TARGETS))
  keys = sorted({p["config"]["models"] for p in parts})
  full = full and keys == [c["models"]]
  size = (f"{'full' if full else 'quick'}: {'/'.join(map(str, keys))} keys per target "
          "(the keys column), "
          f"{c['steps_per_stage']} + {c['steps_per_stage']} steps, "
          f"{len(results['targets'])} target(s), merged from {len(parts)} runs made "
          f"side by side: {'; '.join(results['commands'])}")
  md = _results.write(args.out, "several_inputs", results, markdown, script=__file__,
                      argv=argv, size=size)
  print(md.read_text())
  return results


def _load() -> float:
  try:
    import os
    return float(os.getloadavg()[0])
  except OSError:
    return float("nan")


def markdown(results: dict[str, Any]) -> str:
  """The table of ``several_inputs.json`` (without the command header) as Markdown."""
  c = results["config"]
  n = c["steps_per_stage"]
  lines = [
      f"**Training MSE** over the keys of each row, depth {c['depth']}, {n} + {n} "
      f"steps ({2 * n} Adam steps for the dense networks), {c['dtype']}; grids "
      f"{c['grid']['2']}^2 and {c['grid']['3']}^3 of [-1, 1]^k. The last two columns are "
      "the best dense minimum over the row's minimum and the best dense mean (the "
      "learning rate of lowest mean) over the row's mean; time is the wall time of all keys of "
      f"one row together (compilation included; load average {c['load_start']:.1f} at "
      f"the start, {c.get('load_end', float('nan')):.1f} at the end on a shared "
      f"machine). Total {results['total_seconds']:.0f} s.", "",
      "| target | method | keys | params | min MSE | mean MSE | time (s) | dense best / row min "
      "| dense mean / row mean |",
      "|---|---|---|---|---|---|---|---|---|"]
  for name, r in results["targets"].items():
    q = ratios(r)
    rows = [("compositional (block Gauss-Newton stage 2)", r["compositional"], q["ratio"],
             q["ratio_mean"]),
            ("compositional, Adam stage 2", r["compositional_adam"], q["ratio_adam"],
             q["ratio_mean_adam"])]
    for label, s, ratio, ratio_mean in rows:
      lines.append(f"| {name} | {label} | {len(s['all'])} | {s['n_params']} | {s['min']:.3g} | "
                   f"{s['mean']:.3g} | {s['seconds']:.0f} | {ratio:.3g} | {ratio_mean:.3g} |")
    for lr, d in r["dense"].items():
      best = " (best)" if float(lr) == r["dense_best_lr"] else ""
      lines.append(f"| {name} | kaiming lr {lr}{best} | {len(d['all'])} | {d['n_params']} | "
                   f"{d['min']:.3g} | "
                   f"{d['mean']:.3g} | {d['seconds']:.0f} | | |")
  return "\n".join(lines)


if __name__ == "__main__":
  main(sys.argv[1:])
