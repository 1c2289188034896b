"""CompositionalDense as a drop-in dense layer: an image classifier benchmark.

A small MLP classifier ``Linear/CompositionalDense -> relu -> Linear`` is
trained on scikit-learn's bundled 8x8 digits (no download), once with its
hidden dense layer an ``nnx.Linear`` and once a ``relucomp.CompositionalDense``,
over several seeds. The dense model's hidden width is the smallest that
gives it at least as many trainable parameters as the compositional model
has in its larger (free) stage. Both use the same optimiser, batches and
number of epochs; the compositional layer spends the first ``--switch``
fraction of the epochs in its reparameterised stage, then switches to free
weights (a new optimiser state).

Reported: test accuracy after every epoch (figure: mean and min/max band
over seeds), the final and early accuracies (table), and wall time
(including compilation) per model and per epoch.

Given ``--cifar DIR`` (CIFAR-10 in its python-pickle form: ``data_batch_1``
.. ``data_batch_5`` and ``test_batch``), the same models run on flattened
32x32x3 images instead; ``--max-train``/``--max-test`` take the first
examples only (all by default).

Choices of our own (the paper's classifier set-up is not known here):
train/test split of digits 75/25 stratified with a fixed split seed;
features standardised with the training mean and standard deviation; Adam;
cross-entropy; batch 128; the compositional layer with ``--units`` units of
depth ``--depth``.

``--stage2`` chooses the compositional model's optimiser after the switch:
``adam`` (the same Adam as before it), ``block-gauss-newton``
(:func:`relucomp.block_gauss_newton`, the stage-2 default of
``fit(method="compositional")``, on the whole classifier: one block per unit
of the layer and per output neuron), or ``both`` (default: two rows). Block
Gauss-Newton needs residuals; the classifier's are ``sqrt(cross-entropy)``
per example, whose sum of squares is exactly the batch's cross-entropy, so
every kept step lowers the training loss on its batch.

Usage:
  python benchmarks/classify.py                # quick: digits, 3 seeds, 20 epochs
  python benchmarks/classify.py --full         # 10 seeds, 60 epochs
  python benchmarks/classify.py --cifar DIR    # CIFAR-10 python pickles
"""

from __future__ import annotations

import argparse
import os
import pathlib
import pickle
import statistics
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import relucomp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
#: ``--stage2`` choice -> the table row of the compositional model (Adam: the
#: row's name before the choice existed).
COMPOSITIONAL_ROWS = {"adam": "CompositionalDense",
                      "block-gauss-newton": "CompositionalDense, block GN stage 2"}


# -- data --------------------------------------------------------------------

def load_digits_split(split_seed: int = 0) -> tuple[np.ndarray, ...]:
  """Digits (1797 x 64, 10 classes), stratified 75/25 split."""
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split
  data = load_digits()
  return tuple(train_test_split(data.data.astype(np.float32), data.target.astype(np.int32),
                                test_size=0.25, random_state=split_seed,
                                stratify=data.target))


def _read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
  with open(path, "rb") as f:
    batch = pickle.load(f, encoding="bytes")
  if not isinstance(batch, dict):
    raise ValueError(f"{path} is not a CIFAR-10 batch (a pickled dict).")
  data = batch.get(b"data", batch.get("data"))
  labels = batch.get(b"labels", batch.get("labels"))
  if data is None or labels is None:
    raise ValueError(f"{path} has no 'data'/'labels' entries; not a CIFAR-10 batch.")
  data = np.asarray(data)
  labels = np.asarray(labels, np.int32)
  if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
    raise ValueError(
        f"{path}: data must have shape (n, 3072) with n labels; got {data.shape} "
        f"and {labels.shape} labels.")
  return data.astype(np.float32) / 255.0, labels


def load_cifar10(directory: str, max_train: int | None = None,
                 max_test: int | None = None) -> tuple[np.ndarray, ...]:
  """CIFAR-10 from its python-pickle batches in ``directory``."""
  missing = [n for n in CIFAR_TRAIN + (CIFAR_TEST,)
             if not os.path.isfile(os.path.join(directory, n))]
  if missing:
    raise ValueError(f"--cifar {directory}: missing file(s) {', '.join(missing)}.")
  parts = [_read_cifar_batch(os.path.join(directory, n)) for n in CIFAR_TRAIN]
  x_train = np.concatenate([p[0] for p in parts])
  y_train = np.concatenate([p[1] for p in parts])
  x_test, y_test = _read_cifar_batch(os.path.join(directory, CIFAR_TEST))
  if max_train:
    x_train, y_train = x_train[:max_train], y_train[:max_train]
  if max_test:
    x_test, y_test = x_test[:max_test], y_test[:max_test]
  return x_train, x_test, y_train, y_test


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  mean = x_train.mean(axis=0)
  std = x_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


# -- models ------------------------------------------------------------------

def n_params(model: nnx.Module) -> int:
  return int(sum(a.size for a in jax.tree.leaves(nnx.state(model, nnx.Param))))


def compositional_model(n_in: int, n_classes: int, *, hidden: int, units: int,
                        depth: int, seed: int) -> nnx.Sequential:
  rngs = nnx.Rngs(seed)
  return nnx.Sequential(
      relucomp.CompositionalDense(n_in, hidden, depth=depth, units=units, rngs=rngs),
      nnx.relu,
      nnx.Linear(hidden, n_classes, rngs=rngs),
  )


def dense_model(n_in: int, n_classes: int, *, hidden: int, seed: int) -> nnx.Sequential:
  rngs = nnx.Rngs(seed)
  return nnx.Sequential(
      nnx.Linear(n_in, hidden, rngs=rngs),
      nnx.relu,
      nnx.Linear(hidden, n_classes, rngs=rngs),
  )


def matched_dense_width(n_in: int, n_classes: int, target: int) -> int:
  """Smallest hidden width whose dense model has >= ``target`` parameters."""
  per_unit = n_in + 1 + n_classes
  return max(1, -(-(target - n_classes) // per_unit))


def compositional_counts(n_in: int, n_classes: int, *, hidden: int, units: int,
                         depth: int) -> tuple[int, int]:
  """Parameter counts of the compositional model in stages 1 and 2."""
  model = compositional_model(n_in, n_classes, hidden=hidden, units=units,
                              depth=depth, seed=0)
  first = n_params(model)
  model.layers[0].set_stage("free")
  return first, n_params(model)


# -- training ----------------------------------------------------------------

def _loss(model, x, y):
  logits = model(x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def _train_step(model, optimizer, x, y):
  loss, grads = nnx.value_and_grad(_loss)(model, x, y)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def _gauss_newton_step(model, optimizer, x, y):
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)

  def residual_fn(p, b):
    logits = nnx.merge(graphdef, p, rest)(b[0])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, b[1])
    return jnp.sqrt(jnp.maximum(ce, jnp.finfo(ce.dtype).tiny))

  loss = _loss(model, x, y)
  optimizer.update(model, None, residual_fn=residual_fn, batch=(x, y))
  return loss


@nnx.jit
def _accuracy(model, x, y):
  return jnp.mean(jnp.argmax(model(x), axis=-1) == y)


def train(model: nnx.Module, data: tuple[np.ndarray, ...], *, epochs: int,
          batch: int, learning_rate: float, seed: int,
          switch_epoch: int | None = None, stage2: str = "adam",
          gn_min_damping: float = 1e-7) -> dict[str, Any]:
  """Trains with Adam (after ``switch_epoch`` with ``stage2``: ``"adam"`` or
  ``"block-gauss-newton"``); returns test accuracy per epoch (index 0: untrained)."""
  x_train, x_test, y_train, y_test = data
  rng = np.random.default_rng(seed)
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
  step_fn = _train_step
  accuracy = [float(_accuracy(model, x_test, y_test))]
  losses, epoch_times = [], []
  start = time.perf_counter()
  for epoch in range(epochs):
    if switch_epoch is not None and epoch == switch_epoch:
      model.layers[0].set_stage("free")
      if stage2 == "block-gauss-newton":
        tx = relucomp.block_gauss_newton(damping=max(1e-3, gn_min_damping),
                                         min_damping=gn_min_damping)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        step_fn = _gauss_newton_step
      else:
        optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    t0 = time.perf_counter()
    order = rng.permutation(len(x_train))
    epoch_loss = []
    for i in range(0, len(order) - batch + 1 if len(order) >= batch else 1, batch):
      idx = order[i:i + batch]
      epoch_loss.append(step_fn(model, optimizer, x_train[idx], y_train[idx]))
    losses.append(float(np.mean(jax.device_get(epoch_loss))))
    accuracy.append(float(_accuracy(model, x_test, y_test)))
    epoch_times.append(time.perf_counter() - t0)
  return {"accuracy": accuracy, "train_loss": losses,
          "wall_time": time.perf_counter() - start, "epoch_times": epoch_times}


# -- report ------------------------------------------------------------------

def summarise(runs: list[dict[str, Any]], early: Sequence[int]) -> dict[str, Any]:
  acc = np.array([r["accuracy"] for r in runs])
  steady = [t for r in runs for t in r["epoch_times"][2:]] or [
      t for r in runs for t in r["epoch_times"]]
  return {
      "final_mean": float(acc[:, -1].mean()),
      "final_std": float(acc[:, -1].std()),
      "final_best": float(acc[:, -1].max()),
      "early_mean": {str(e): float(acc[:, e].mean()) for e in early if e < acc.shape[1]},
      "wall_time_median": float(statistics.median(r["wall_time"] for r in runs)),
      "epoch_time_median": float(statistics.median(steady)),
  }


def plot(results: dict[str, Any], path: str, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for name, res in results["models"].items():
    acc = np.array([r["accuracy"] for r in res["runs"]])
    epochs = np.arange(acc.shape[1])
    line, = ax.plot(epochs, acc.mean(axis=0), label=f"{name} ({res['params']} params)")
    ax.fill_between(epochs, acc.min(axis=0), acc.max(axis=0), alpha=0.2,
                    color=line.get_color())
  switch = results["config"].get("switch_epoch")
  if switch:
    ax.axvline(switch, color="grey", lw=0.8, ls="--", label="stage switch")
  ax.set_xlabel("epoch")
  ax.set_ylabel("test accuracy")
  ax.set_title(title)
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def format_table(results: dict[str, Any]) -> str:
  early = results["config"]["early_epochs"]
  head = (["model", "params"] + [f"acc@{e}" for e in early]
          + ["final mean ± std", "final best", "time/model (s)", "time/epoch (s)"])
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, res in results["models"].items():
    s = res["summary"]
    row = [name, res["params_text"]]
    row += [f"{s['early_mean'].get(str(e), float('nan')):.4f}" for e in early]
    row += [f"{s['final_mean']:.4f} ± {s['final_std']:.4f}", f"{s['final_best']:.4f}",
            f"{s['wall_time_median']:.2f}", f"{s['epoch_time_median']:.3f}"]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", action="store_true", help="small run (default)")
  mode.add_argument("--full", action="store_true", help="10 seeds, 60 epochs")
  parser.add_argument("--cifar", metavar="DIR", help="CIFAR-10 python-pickle folder")
  parser.add_argument("--max-train", type=int, default=None)
  parser.add_argument("--max-test", type=int, default=None)
  parser.add_argument("--seeds", type=int, default=None)
  parser.add_argument("--epochs", type=int, default=None)
  parser.add_argument("--hidden", type=int, default=32, help="output width of the layer")
  parser.add_argument("--units", type=int, default=None, help="units (default: --hidden)")
  parser.add_argument("--depth", type=int, default=3)
  parser.add_argument("--switch", type=float, default=0.5,
                      help="fraction of epochs in the reparameterised stage")
  parser.add_argument("--stage2", choices=("adam", "block-gauss-newton", "both"),
                      default="both", help="optimiser of the compositional model's stage 2")
  parser.add_argument("--gn-min-damping", type=float, default=1e-7,
                      help="min_damping of block_gauss_newton (its default: 1e-7; the "
                           "starting damping is the larger of 1e-3 and this)")
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--out", default="out/classify")
  parser.add_argument("--no-figure", action="store_true", help="tables only")
  args = parser.parse_args(argv)
  seeds = args.seeds or (10 if args.full else 3)
  epochs = args.epochs or (60 if args.full else 20)
  units = args.units or args.hidden
  if not 0 <= args.switch <= 1:
    parser.error("--switch must lie in [0, 1].")

  if args.cifar:
    x_train, x_test, y_train, y_test = load_cifar10(args.cifar, args.max_train, args.max_test)
    dataset = "CIFAR-10"
  else:
    x_train, x_test, y_train, y_test = load_digits_split()
    dataset = "digits 8x8"
  x_train, x_test = standardise(x_train, x_test)
  data = (x_train, x_test, y_train, y_test)
  n_in = x_train.shape[1]
  n_classes = int(max(y_train.max(), y_test.max())) + 1
  switch_epoch = int(round(args.switch * epochs))

  p1, p2 = compositional_counts(n_in, n_classes, hidden=args.hidden, units=units,
                                depth=args.depth)
  width = matched_dense_width(n_in, n_classes, p2)
  p_dense = n_params(dense_model(n_in, n_classes, hidden=width, seed=0))
  early = [e for e in (1, 2, 5, 10) if e <= epochs]
  results: dict[str, Any] = {
      "config": {"dataset": dataset, "n_train": int(len(x_train)),
                 "n_test": int(len(x_test)), "n_in": n_in, "n_classes": n_classes,
                 "seeds": seeds, "epochs": epochs, "hidden": args.hidden,
                 "units": units, "depth": args.depth, "dense_width": width,
                 "switch_epoch": switch_epoch, "learning_rate": args.lr,
                 "batch": args.batch, "early_epochs": early,
                 "gn_min_damping": args.gn_min_damping,
                 "jax_backend": jax.default_backend()},
      "models": {},
  }
  stage2 = ["adam", "block-gauss-newton"] if args.stage2 == "both" else [args.stage2]
  results["config"]["stage2"] = stage2
  for opt in stage2:
    results["models"][COMPOSITIONAL_ROWS[opt]] = {
        "params": p2, "params_stage1": p1, "params_text": f"{p1} / {p2}", "runs": []}
  results["models"]["nnx.Linear"] = {"params": p_dense, "params_text": str(p_dense),
                                     "runs": []}
  print(f"{dataset}: {len(x_train)} train, {len(x_test)} test, {n_in} inputs, "
        f"{n_classes} classes; {seeds} seeds x {epochs} epochs")
  print(f"CompositionalDense({n_in}, {args.hidden}, depth={args.depth}, units={units}): "
        f"{p1} params in stage 1, {p2} in stage 2 (switch after epoch {switch_epoch}); "
        f"nnx.Linear({n_in}, {width}): {p_dense} params (whole classifier)")
  total = time.perf_counter()
  for seed in range(seeds):
    for opt in stage2:
      comp = compositional_model(n_in, n_classes, hidden=args.hidden, units=units,
                                 depth=args.depth, seed=seed)
      run = train(comp, data, epochs=epochs, batch=args.batch, learning_rate=args.lr,
                  seed=seed, switch_epoch=switch_epoch if switch_epoch < epochs else None,
                  stage2=opt, gn_min_damping=args.gn_min_damping)
      results["models"][COMPOSITIONAL_ROWS[opt]]["runs"].append(run)
      print(f"  seed {seed}: {COMPOSITIONAL_ROWS[opt]} {run['accuracy'][-1]:.4f} "
            f"({run['wall_time']:.1f} s)", flush=True)
    dense = dense_model(n_in, n_classes, hidden=width, seed=seed)
    run_d = train(dense, data, epochs=epochs, batch=args.batch, learning_rate=args.lr,
                  seed=seed)
    results["models"]["nnx.Linear"]["runs"].append(run_d)
    print(f"  seed {seed}: dense {run_d['accuracy'][-1]:.4f} "
          f"({run_d['wall_time']:.1f} s)", flush=True)
  for res in results["models"].values():
    res["summary"] = summarise(res["runs"], early)
  results["total_time"] = time.perf_counter() - total

  print()
  print(format_table(results))
  print(f"\ntotal {results['total_time']:.1f} s (time/model includes compilation; "
        "time/epoch is the median over epochs after the first two)")
  tag = "cifar10" if args.cifar else "digits"
  full = seeds >= 10 and epochs >= 60
  size = (f"{'full' if full else 'quick'}: {seeds} seeds, {epochs} epochs "
          "(full: 10 seeds, 60 epochs)")
  _results.write(args.out, f"classify_{tag}", results, markdown, script=__file__, argv=argv,
                 size=size)
  if not args.no_figure:
    plot(results, os.path.join(args.out, f"classify_{tag}.png"),
         f"{dataset}: test accuracy over training ({seeds} seeds)")
  print(f"wrote {args.out}/classify_{tag}.{{json,md}}" + ("" if args.no_figure else
                                                         f" and classify_{tag}.png"))
  return results


def markdown(results: dict[str, Any]) -> str:
  """The table of ``classify_<dataset>.json`` (without the command header) as Markdown."""
  c = results["config"]
  return "\n".join([
      f"**Test accuracy on {c['dataset']}** ({c['n_train']} training and {c['n_test']} test "
      f"examples), classifier `layer -> relu -> nnx.Linear`, {c['seeds']} seeds, "
      f"{c['epochs']} epochs of Adam (learning rate {c['learning_rate']:g}, batch "
      f"{c['batch']}); `CompositionalDense` with {c['units']} units of depth {c['depth']}, "
      f"stage 2 from epoch {c['switch_epoch']} (Adam, or block Gauss-Newton steps on the "
      "residuals sqrt(cross-entropy) of each batch, the whole classifier); the dense "
      f"layer {c['dense_width']} wide. "
      f"`acc@e` is the mean accuracy after epoch e; parameters of the compositional model "
      f"are given for stage 1 / stage 2. Total time {results['total_time']:.0f} s.", "",
      format_table(results)])


if __name__ == "__main__":
  main(sys.argv[1:])
