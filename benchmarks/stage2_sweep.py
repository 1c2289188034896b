"""Stage 2 of ``fit(method="enforced")``: which optimiser settings get how far.

Stage 1 is trained once per curve (``finetune_steps=0``; it reaches the same
optimum of the enforced family from every start), then stage 2 is run from
that network with Adam for a grid of first-moment decays ``b1`` and relative
learning rates (the rate is multiplied by the RMS residual of the starting
network, as ``fit`` does), each with the same warm-up and cosine decay as
``fit``'s default, from two encodings of the same function: the network
``fit`` hands to stage 2 (``balanced``: every hidden neuron rescaled by
:func:`relucomp.balance_neurons`) and the construction as
:func:`relucomp.compositional_mlp` builds it (``as built``). For reference,
L-BFGS (optax, zoom line search) from the balanced start for the same number
of steps and for ``--long`` steps: how far local descent from the stage-1
network can go at all; and :func:`relucomp.levenberg_marquardt` from both
starts for ``--lm-steps`` and for ``--steps`` steps (its steps are scaled per
parameter by the diagonal of ``J^T J``, which makes them indifferent to the
rescaling of neurons in exact arithmetic; in float32 the two runs can still
part and end in different local minima).

Prints, per curve, the stage-1 MSE, the MSE after stage 2 for every setting,
and its ratio to the 32-piece limit; writes ``stage2_sweep.json`` and
``stage2_sweep.md`` to ``--out``.

Usage:
  python benchmarks/stage2_sweep.py              # x^3 and x^11, 1000 steps
  python benchmarks/stage2_sweep.py --curves all --long 16000
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import relucomp
from relucomp import _engine, _fit_convex

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402
from paper_tables import CURVES, piecewise_linear_limit  # noqa: E402


def _stage2(params, x, y, optimizer, steps):
  """Runs ``steps`` steps of ``optimizer`` on the MLP's MSE; returns the final MSE."""
  def residual(p):
    return relucomp.mlp_apply(p, x[:, None])[:, 0] - y

  p, _, _ = _engine.run_steps(residual, params, optimizer, steps)
  return jnp.mean(residual(p) ** 2)


def _as_built(result, x, y):
  """The stage-1 network as the construction builds it (before ``fit`` balances it)."""
  return _engine.fold(_fit_convex.build_mlp(result.pretrained), _engine.normalise_1d(x, y))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--curves", default="x^3,x^11", help="comma-separated, or 'all'")
  parser.add_argument("--steps", type=int, default=1000, help="stage-1 and stage-2 steps")
  parser.add_argument("--b1", default="0.9,0.95,0.98,0.99")
  parser.add_argument("--lr", default="0.05,0.1,0.2", help="relative stage-2 rates")
  parser.add_argument("--long", type=int, default=4000, help="steps of the long L-BFGS run")
  parser.add_argument("--lm-steps", type=int, default=100,
                      help="Levenberg-Marquardt steps (it also runs --steps steps)")
  parser.add_argument("--points", type=int, default=500)
  parser.add_argument("--out", default="out/stage2_sweep")
  args = parser.parse_args(argv)
  names = list(CURVES) if args.curves == "all" else args.curves.split(",")
  b1s = [float(b) for b in args.b1.split(",")]
  lrs = [float(r) for r in args.lr.split(",")]

  x = jnp.linspace(0.0, 1.0, args.points)
  run = jax.jit(_stage2, static_argnames=("optimizer", "steps"))
  results = {"settings": vars(args), "curves": {}}
  t0 = time.perf_counter()
  for name in names:
    y = jnp.asarray(CURVES[name](np.asarray(x)), x.dtype)
    limit = piecewise_linear_limit(np.asarray(x, np.float64), np.asarray(y, np.float64))
    start = relucomp.fit(x, y, key=jax.random.key(0), pretrain_steps=args.steps,
                         finetune_steps=0, optimizer="adam")   # the paper's stage 1
    starts = {"balanced": start.params, "as built": _as_built(start, x, y)}
    s1 = float(start.mse)
    rel = s1 ** 0.5
    entry = {"stage1": s1, "limit": limit, "runs": []}
    settings = [("adam", b1, lr, args.steps, which) for which in starts
                for b1 in b1s for lr in lrs]
    settings += [("lbfgs", None, None, args.steps, "balanced"),
                 ("lbfgs", None, None, args.long, "balanced")]
    settings += [("levenberg_marquardt", None, None, steps, which)
                 for steps in (args.lm_steps, args.steps) for which in starts]
    for kind, b1, lr, steps, which in settings:
      opt = {"adam": lambda: _engine.adam_cosine(lr * rel, steps, warmup=True, b1=b1),
             "lbfgs": optax.lbfgs,
             "levenberg_marquardt": relucomp.levenberg_marquardt}[kind]()
      mse = float(run(starts[which], x, y, opt, steps))
      entry["runs"].append({"optimizer": kind, "start": which, "b1": b1, "relative_lr": lr,
                            "steps": steps, "mse": mse})
      print(f"{name}: {kind} from {which} b1={b1} lr={lr} steps={steps}: {mse:.2e}",
            flush=True)
    results["curves"][name] = entry
  results["seconds"] = time.perf_counter() - t0
  size = (f"{', '.join(names)}; stage 1 {args.steps} steps, stage 2 {args.steps} steps "
          f"(L-BFGS also {args.long}, Levenberg-Marquardt also {args.lm_steps}), "
          f"{args.points} points, float32")
  md = _results.write(args.out, "stage2_sweep", results, markdown, script=__file__,
                      argv=argv, size=size)
  print(md.read_text())
  print(f"{results['seconds']:.1f} s; wrote {args.out}/stage2_sweep.json, stage2_sweep.md")
  return results


def markdown(results):
  """The table of ``stage2_sweep.json`` (without the command header) as Markdown."""
  lines = ["| curve | stage 1 | start | optimiser | b1 | relative lr | steps | MSE | / limit |",
           "|---|---|---|---|---|---|---|---|---|"]
  for name, entry in results["curves"].items():
    for r in entry["runs"]:
      b1 = "–" if r["b1"] is None else r["b1"]
      lr = "–" if r["relative_lr"] is None else r["relative_lr"]
      lines.append(f"| {name} | {entry['stage1']:.2e} | {r.get('start', 'as built')} | "
                   f"{r['optimizer']} | {b1} | {lr} | "
                   f"{r['steps']} | {r['mse']:.2e} | {r['mse'] / entry['limit']:.0f}x |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
