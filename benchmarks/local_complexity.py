"""Local complexity over training: exact regions near the training points.

Run from the repository root:

    .venv/bin/python benchmarks/local_complexity.py            # quick (default)
    .venv/bin/python benchmarks/local_complexity.py --full

Parts:

1. The digits classifier of ``benchmarks/classify.py`` (its data, models
   and training step), once with an ``nnx.Linear`` hidden layer and once
   with ``CompositionalDense`` (reparameterised stage, then free weights from
   half the epochs). After every epoch (and before the first) the model is
   read with ``from_flax`` and ``local_complexity`` counts, for a fixed
   subset of training points, the regions met within ``--radius`` on
   ``--planes`` random planes through each point (the same planes at every
   epoch: one key).
2. ``relucomp.fit`` on a two-input target (``sin(2 x_0) x_1`` on a 12 x 12
   grid of ``[-1, 1]^2``) with ``track_pieces_every``, for the
   ``"compositional"`` and ``"kaiming"`` (dense) methods: ``local_complexity``
   of every snapshot (``result.snapshots``, stacked) at a subset of the
   training inputs, beside ``pieces_history`` (all regions of the inputs'
   rectangle).

Reported: the mean (and the 10-90 % band over points and planes) of the
counts per epoch / step, in a table and in ``local_complexity.png``; the
time the counting took. Writes ``local_complexity.json`` and
``local_complexity.md`` into ``--out`` (default ``out/local_complexity``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import relucomp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402
import classify  # noqa: E402


def summary(counts: np.ndarray) -> dict:
  flat = counts.reshape(-1)
  return {"mean": float(flat.mean()), "p10": float(np.percentile(flat, 10)),
          "p90": float(np.percentile(flat, 90)), "max": int(flat.max())}


def part_digits(epochs, n_points, planes, radius, seed):
  x_train, x_test, y_train, y_test = classify.load_digits_split()
  x_train, x_test = classify.standardise(x_train, x_test)
  n_in, n_classes = x_train.shape[1], 10
  p1, p2 = classify.compositional_counts(n_in, n_classes, hidden=32, units=32, depth=3)
  width = classify.matched_dense_width(n_in, n_classes, p2)
  subset = np.random.default_rng(seed).choice(len(x_train), n_points, replace=False)
  points = x_train[subset].astype(np.float64)
  key = jax.random.key(seed)
  results = {}
  for name in ("nnx.Linear", "CompositionalDense"):
    if name == "nnx.Linear":
      model = classify.dense_model(n_in, n_classes, hidden=width, seed=seed)
    else:
      model = classify.compositional_model(n_in, n_classes, hidden=32, units=32, depth=3,
                                           seed=seed)
    switch = epochs // 2 if name == "CompositionalDense" else None
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    rng = np.random.default_rng(seed)
    curve, accuracy, count_s = [], [], 0.0
    for epoch in range(epochs + 1):
      if epoch:
        if switch is not None and epoch - 1 == switch:
          model.layers[0].set_stage("free")
          optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
        order = rng.permutation(len(x_train))
        for i in range(0, len(order) - 127, 128):
          classify._train_step(model, optimizer, x_train[order[i:i + 128]],
                               y_train[order[i:i + 128]])
      start = time.perf_counter()
      counts = relucomp.local_complexity(relucomp.from_flax(model), points, radius=radius,
                                         key=key, planes=planes)
      count_s += time.perf_counter() - start
      curve.append(summary(counts))
      accuracy.append(float(classify._accuracy(model, x_test, y_test)))
    results[name] = {"epochs": list(range(epochs + 1)), "local": curve, "accuracy": accuracy,
                     "switch_epoch": switch, "count_seconds": count_s}
    print(f"  digits, {name}: mean regions within {radius} of {n_points} training points, "
          f"per epoch: {[round(c['mean'], 1) for c in curve]} (counting {count_s:.1f} s)",
          flush=True)
  return results


def part_fit(steps, every, n_points, planes, radius, seed):
  g = jnp.linspace(-1.0, 1.0, 12)
  xy = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
  target = jnp.sin(2 * xy[:, 0]) * xy[:, 1]
  subset = np.random.default_rng(seed).choice(xy.shape[0], n_points, replace=False)
  points = np.asarray(xy)[subset]
  results = {}
  for method in ("compositional", "kaiming"):
    result = relucomp.fit(xy, target, key=jax.random.key(seed), method=method, depth=3,
                          pretrain_steps=steps // 2, finetune_steps=steps // 2,
                          track_pieces_every=every)
    start = time.perf_counter()
    counts = relucomp.local_complexity(result.snapshots, points, radius=radius,
                                       key=jax.random.key(seed + 1), planes=planes)
    seconds = time.perf_counter() - start
    history = relucomp.pieces_history(result)
    results[method] = {"steps": history.steps.tolist(), "regions": history.counts.tolist(),
                       "stage2_start": int(history.stage2_start),
                       "local": [summary(c) for c in counts], "mse": float(result.mse),
                       "count_seconds": seconds}
    print(f"  fit {method}: mean regions within {radius} per snapshot "
          f"{[round(s['mean'], 1) for s in results[method]['local']]}; all regions "
          f"{history.counts.tolist()} (counting {seconds:.1f} s)", flush=True)
  return results


def figure(out, digits, fits, config):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  ax = axes[0]
  for name, res in digits.items():
    mean = [c["mean"] for c in res["local"]]
    line, = ax.plot(res["epochs"], mean, marker="o", ms=3, label=name)
    ax.fill_between(res["epochs"], [c["p10"] for c in res["local"]],
                    [c["p90"] for c in res["local"]], alpha=0.2, color=line.get_color())
    if res["switch_epoch"] is not None:
      ax.axvline(res["switch_epoch"], color=line.get_color(), ls="--", lw=0.8)
  ax.set_xlabel("epoch")
  ax.set_ylabel(f"regions within {config['radius']} (exact)")
  ax.set_title(f"digits classifier: {config['points']} training points, "
               f"{config['planes']} planes each")
  ax.legend()
  ax = axes[1]
  for method, res in fits.items():
    mean = [c["mean"] for c in res["local"]]
    line, = ax.plot(res["steps"], mean, marker="o", ms=3, label=f"fit, {method}")
    ax.fill_between(res["steps"], [c["p10"] for c in res["local"]],
                    [c["p90"] for c in res["local"]], alpha=0.2, color=line.get_color())
    if res["stage2_start"]:
      ax.axvline(res["stage2_start"], color=line.get_color(), ls="--", lw=0.8)
  ax.set_xlabel("step")
  ax.set_ylabel(f"regions within {config['fit_radius']} (exact)")
  ax.set_title("fit on [-1, 1]^2, snapshots")
  ax.legend()
  for a in axes:
    a.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(out / "local_complexity.png", dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="more epochs, points and planes")
  size.add_argument("--quick", action="store_true", help="small run (the default)")
  parser.add_argument("--radius", type=float, default=2.0,
                      help="radius around digits training points (standardised units)")
  parser.add_argument("--fit-radius", type=float, default=0.2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default="out/local_complexity")
  parser.add_argument("--no-figure", action="store_true")
  args = parser.parse_args(argv)
  full = args.full and not args.quick
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  config = {"epochs": 30 if full else 8, "points": 64 if full else 16,
            "planes": 4 if full else 2, "radius": args.radius, "fit_radius": args.fit_radius,
            "fit_steps": 1000 if full else 200, "fit_every": 50 if full else 25,
            "fit_points": 36 if full else 12}
  print(f"local complexity benchmark ({'full' if full else 'quick'}); {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.1f}")
  start = time.perf_counter()
  digits = part_digits(config["epochs"], config["points"], config["planes"], args.radius,
                       args.seed)
  fits = part_fit(config["fit_steps"], config["fit_every"], config["fit_points"],
                  config["planes"], args.fit_radius, args.seed)
  total = time.perf_counter() - start
  if not args.no_figure:
    figure(out, digits, fits, config)
  record = {"mode": "full" if full else "quick", "config": config, "digits": digits,
            "fit": fits, "total_seconds": total}
  size = (f"{'full' if full else 'quick'}: {config['epochs']} epochs, {config['points']} "
          f"points x {config['planes']} planes; fit {config['fit_steps']} steps")
  md = _results.write(out, "local_complexity", record, markdown, script=__file__, argv=argv,
                      size=size)
  print(md.read_text())
  print(f"total {total:.1f} s")


def markdown(record):
  c = record["config"]
  lines = [f"**Digits classifier**: mean exact regions within {c['radius']} (standardised "
           f"units) of {c['points']} training points, {c['planes']} random planes each "
           "(10-90 % range in brackets), and test accuracy, per epoch:", "",
           "| epoch | " + " | ".join(f"{n} regions | {n} accuracy" for n in record["digits"])
           + " |", "| --- |" + " --- | --- |" * len(record["digits"])]
  names = list(record["digits"])
  for e in record["digits"][names[0]]["epochs"]:
    cells = []
    for n in names:
      s = record["digits"][n]["local"][e]
      cells += [f"{s['mean']:.1f} [{s['p10']:.0f}, {s['p90']:.0f}]",
                f"{record['digits'][n]['accuracy'][e]:.3f}"]
    lines.append(f"| {e} | " + " | ".join(cells) + " |")
  switch = record["digits"].get("CompositionalDense", {}).get("switch_epoch")
  if switch is not None:
    lines += ["", f"CompositionalDense switches to free weights after epoch {switch}."]
  lines += ["", f"**`fit` snapshots** (two inputs, {c['fit_steps']} steps): mean exact regions "
            f"within {c['fit_radius']} of {c['fit_points']} training inputs ({c['planes']} "
            "planes each), and all regions of the inputs' rectangle (`pieces_history`):", "",
            "| step | " + " | ".join(f"{m} near | {m} all" for m in record["fit"]) + " |",
            "| --- |" + " --- | --- |" * len(record["fit"])]
  methods = list(record["fit"])
  for i, step in enumerate(record["fit"][methods[0]]["steps"]):
    cells = []
    for m in methods:
      s = record["fit"][m]["local"][i]
      cells += [f"{s['mean']:.1f}", f"{record['fit'][m]['regions'][i]}"]
    lines.append(f"| {step} | " + " | ".join(cells) + " |")
  lines += ["", f"Total {record['total_seconds']:.0f} s, of which counting: digits "
            + ", ".join(f"{n} {r['count_seconds']:.1f} s" for n, r in record["digits"].items())
            + "; fit " + ", ".join(f"{m} {r['count_seconds']:.1f} s"
                                    for m, r in record["fit"].items()) + "."]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
