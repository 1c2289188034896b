"""Tables 1-2 of Milkert, Hyde and Laine, reproduced with relucomp.fit.

Four curves (x^3, x^11, sin(x), tanh(3x); 500 evenly spaced points on
[0, 1]) x five setups (kaiming, raai, no_pretrain, free_scales, enforced) x
``--models`` networks of depth 5 and width 4, each trained for
``--steps`` steps per stage (one-stage setups get both stages' steps).
The setup ``default`` (row "relucomp default") is not the paper's either:
exactly ``relucomp.fit(x, y, key=k)`` with every default (for these
93-weight networks the second-order scheme: data-placed peaks, stage 1 on
the breakpoints, the best of four screened starts, Levenberg-Marquardt
steps); the paper's setups pass ``optimizer="adam"``, the paper's optimiser.
Another setup, ``enforced_lm``, is not the paper's: "enforced" with stage 2
run by ``relucomp.levenberg_marquardt`` for ``--lm-steps`` (default 100)
steps instead of Adam; each of its steps forms the Jacobian of the residuals
and solves a 97 x 97 system (in the full run 100 of them took about four
times as long as 1000 Adam steps; the timing line has its own figures). It
runs with ``--with-lm`` (or when named in ``--setups``); the default is the
paper's five.
All models of one setup, for all four curves, train in one compiled program
(``jax.vmap`` over keys and over targets); the sparse-data runs in another.

Reported per curve and setup: min and mean training MSE (the paper's numbers
beside ours where known), the ratio of the minimum to the 32-piece limit
(the best continuous piecewise-linear least-squares fit with 31 free knots,
computed here with scipy), the fraction of collapsed networks (constant
output) and the exact number of linear pieces of the trained networks on
[0, 1] (``relucomp.linear_pieces_1d``). Then the sparse-data experiment: 10
training points ``i/9``, 10 test points ``(i + 0.5)/10``, the minimum test
MSE over the models.

Choices not fixed by the paper (kept configurable): learning rates (the
defaults of ``relucomp.fit``: Adam, stage 1 1e-2, stage 2 0.1 relative to
the RMS residual stage 2 starts from with first-moment decay 0.98 (see
``benchmarks/stage2_sweep.py``), cosine decay per stage;
``--baseline-lr`` 1e-3 for the randomly initialised setups, the usual reading
of the paper), the starting peaks (uniform in (0.3, 0.7)), and the
sparse-data points above.

Every setup is two compiled programs (the four dense curves, the four sparse
ones). They compile one after the other, dense programs first, and each
trains on a pool of ``--workers`` threads (default: one per core) as soon as
it is compiled; the 32-piece limits are computed on the same pool. The time
line gives the wall-clock time of compilation and training and when the
dense curves (the paper's 4 x 5 x models x 2 x steps runs) were done.
Compilation is the longest path, so run as a script this sets the XLA:CPU
options ``--xla_cpu_use_fusion_emitters=false`` (a third faster) and
``--xla_backend_optimization_level=1`` (another third) (appended to
``XLA_FLAGS``), which compile these programs at the same training speed and
equal results up to float32 rounding; ``--default-xla`` keeps XLA's
defaults.

Full run (the paper's 30 models):  python benchmarks/paper_tables.py [--full]
With the Levenberg-Marquardt row:  python benchmarks/paper_tables.py --full --with-lm
Demo:                              python benchmarks/paper_tables.py --quick   (5 models)
Writes ``paper_tables.json``, ``paper_tables.md`` (the tables, with the
command) and ``fits.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import jax
import jax.numpy as jnp
import numpy as np

import relucomp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

#: The paper's five setups, then "enforced_lm": "enforced" with stage 2 by
#: ``relucomp.levenberg_marquardt`` (``--lm-steps`` steps) instead of Adam.
PAPER_SETUPS = ("kaiming", "raai", "no_pretrain", "free_scales", "enforced")
#: ``relucomp.fit(x, y, key=k)`` with every default (not a setup of the paper).
DEFAULT_SETUP = "default"
SETUPS = PAPER_SETUPS + (DEFAULT_SETUP, "enforced_lm")
LABELS = {"kaiming": "default (Kaiming)", "raai": "RAAI", "no_pretrain": "no pretraining",
          "free_scales": "not enforced", "enforced": "enforced",
          "enforced_lm": "enforced, LM stage 2", "default": "relucomp default"}
CURVES = {
    "x^3": lambda x: x ** 3,
    "x^11": lambda x: x ** 11,
    "sin(x)": np.sin,
    "tanh(3x)": lambda x: np.tanh(3 * x),
}
# Paper (ICML version): (min, mean) MSE; None where unknown.
PAPER = {
    "kaiming": {"x^3": (2.11e-5, 7.20e-2), "x^11": (2.19e-5, 2.82e-2)},
    "raai": {"x^3": (2.14e-5, 3.97e-2), "x^11": (4.40e-5, 4.12e-2)},
    "no_pretrain": {"x^3": (7.63e-7, 3.89e-5), "x^11": (1.86e-5, 3.56e-4)},
    "free_scales": {"x^3": (1.64e-7, 1.02e-5), "x^11": (3.20e-6, 3.73e-5)},
    "enforced": {"x^3": (7.86e-8, 5.27e-7), "x^11": (8.86e-7, 7.87e-6)},
}
PAPER_SPARSE = {
    "kaiming": {"x^3": 2.41e-4, "x^11": 2.14e-3, "sin(x)": 2.27e-5, "tanh(3x)": 1.60e-4},
    "enforced": {"x^3": 5.65e-6, "x^11": 6.53e-4, "sin(x)": 7.92e-7, "tanh(3x)": 5.09e-6},
}
#: The paper's setup each of ours is compared with (the optimiser of stage 2
#: aside).
PAPER_SETUP = {"enforced_lm": "enforced", "default": "enforced"}
LIMIT_REFERENCE = {"x^3": 9.0e-9, "x^11": 8.3e-9, "sin(x)": 2.2e-10, "tanh(3x)": 7.2e-9}


# ---------------------------------------------------------------------------
# The 32-piece limit: continuous piecewise-linear least squares, free knots.

def _hat_basis(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
  """Continuous piecewise-linear basis (hat functions) on sorted nodes."""
  idx = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, len(nodes) - 2)
  left, right = nodes[idx], nodes[idx + 1]
  w = (x - left) / np.maximum(right - left, 1e-300)
  basis = np.zeros((len(x), len(nodes)))
  rows = np.arange(len(x))
  basis[rows, idx] = 1 - w
  basis[rows, idx + 1] += w
  return basis


def _fixed_knot_residual(x, y, knots):
  nodes = np.concatenate([[x.min()], np.sort(knots), [x.max()]])
  basis = _hat_basis(x, nodes)
  coef = np.linalg.lstsq(basis, y, rcond=None)[0]
  return basis @ coef - y


def piecewise_linear_limit(x: np.ndarray, y: np.ndarray, pieces: int = 32,
                           restarts: int = 0, seed: int = 0) -> float:
  """MSE of the best continuous piecewise-linear fit with ``pieces`` pieces.

  The knots are free: for fixed knots the fit is linear least squares (hat
  basis); the knots are optimised by ``scipy.optimize.least_squares`` on
  that variable-projection residual (knot gaps through a softmax, so they
  stay ordered), from knots equidistributed in ``|y''|^(2/5)`` (the
  asymptotically optimal density for L2) and from random perturbations of
  it; the best local optimum is returned.
  """
  from scipy.optimize import least_squares

  rng = np.random.default_rng(seed)
  lo, hi = x.min(), x.max()

  def knots_of(u):
    gaps = np.exp(u - u.max())
    return lo + (hi - lo) * np.cumsum(gaps / gaps.sum())[:-1]

  def residual(u):
    return _fixed_knot_residual(x, y, knots_of(u))

  curv = np.abs(np.gradient(np.gradient(y, x), x)) ** 0.4 + 1e-6
  cdf = np.concatenate([[0], np.cumsum((curv[1:] + curv[:-1]) / 2 * np.diff(x))])
  cdf /= cdf[-1]
  starts = [np.interp(np.linspace(0, 1, pieces + 1), cdf, x), np.linspace(lo, hi, pieces + 1)]
  best = np.mean(residual(np.zeros(pieces)) ** 2)
  for r in range(restarts + len(starts)):
    if r < len(starts):
      nodes = starts[r]
    else:
      nodes = starts[0]
      nodes = np.concatenate([[lo], np.sort(nodes[1:-1] + rng.normal(0, 0.3, pieces - 1)
                                            * np.diff(nodes)[:-1]), [hi]])
    gaps = np.maximum(np.diff(nodes), 1e-6 * (hi - lo))
    u0 = np.log(gaps)
    sol = least_squares(residual, u0, method="lm", xtol=1e-12, ftol=1e-14, max_nfev=4000)
    best = min(best, float(np.mean(sol.fun ** 2)))
  return best


# ---------------------------------------------------------------------------
# Training.

def _limits(x, ys, names):
  """The 32-piece limit of every curve, and the seconds it took."""
  t0 = time.perf_counter()
  out = {c: piecewise_linear_limit(x, y) for c, y in zip(names, ys)}
  return out, time.perf_counter() - t0


def _fit_settings(setup, steps, lm_steps):
  """``relucomp.fit`` keywords of a setup (besides the learning rate)."""
  if setup == DEFAULT_SETUP:
    return {}
  if setup == "enforced_lm":
    return dict(method="enforced", pretrain_steps=steps, finetune_steps=lm_steps,
                optimizer=(None, relucomp.levenberg_marquardt()))
  # The paper's setups keep the paper's optimiser (Adam in both stages).
  return dict(method=setup, pretrain_steps=steps, finetune_steps=steps, optimizer="adam")


def _compile_setup(method, xs, ys, keys, steps, lr, lm_steps):
  """Compiles one setup for all (x, y) rows and keys; returns (program, seconds)."""
  settings = _fit_settings(method, steps, lm_steps)

  def run(xx, yy, kk):
    # One vmap over (curve, model) pairs: tracing and lowering a doubly
    # vmapped fit take about twice as long, and compilation is the longest path.
    n_curves, n_models = yy.shape[0], kk.shape[0]
    given = settings if lr is None else dict(settings, learning_rate=lr)
    flat = jax.vmap(lambda x1, y1, k: relucomp.fit(x1, y1, key=k, **given))(
            jnp.repeat(xx, n_models, axis=0), jnp.repeat(yy, n_models, axis=0),
            jnp.tile(kk, n_curves))
    return jax.tree.map(lambda a: a.reshape((n_curves, n_models) + a.shape[1:]), flat)

  t0 = time.perf_counter()
  compiled = jax.jit(run).lower(xs, ys, keys).compile()
  return compiled, time.perf_counter() - t0


def _run_program(compiled, xs, ys, keys):
  """Runs a compiled setup; returns (result, seconds)."""
  t0 = time.perf_counter()
  res = compiled(xs, ys, keys)
  jax.block_until_ready(res)
  return res, time.perf_counter() - t0


def _pieces(params, i, j):
  layer = [{"kernel": np.asarray(l["kernel"][i, j], np.float64),
            "bias": np.asarray(l["bias"][i, j], np.float64)} for l in params]
  try:
    return int(relucomp.linear_pieces_1d(layer, 0.0, 1.0).count)
  except ValueError:          # non-finite weights (a diverged model)
    return -1


def _fmt(v):
  return "–" if v is None else f"{v:.2e}"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", type=int, default=None,
                      help="models per setup (default 30, the paper's)")
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="5 models (same as --models 5)")
  size.add_argument("--full", action="store_true", help="30 models, the paper's (the default)")
  parser.add_argument("--steps", type=int, default=1000, help="steps per stage (paper: 1000)")
  parser.add_argument("--lm-steps", type=int, default=100,
                      help="stage-2 Levenberg-Marquardt steps of setup enforced_lm")
  parser.add_argument("--points", type=int, default=500, help="training points per curve")
  parser.add_argument("--baseline-lr", type=float, default=1e-3,
                      help="learning rate of the kaiming and raai setups")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--setups", default=",".join(PAPER_SETUPS + (DEFAULT_SETUP,)),
                      help=f"comma-separated, from {','.join(SETUPS)} (default: the paper's "
                      "five and relucomp's default)")
  parser.add_argument("--with-lm", action="store_true",
                      help="also run setup enforced_lm (stage 2 by Levenberg-Marquardt)")
  parser.add_argument("--out", default="out/paper_tables")
  parser.add_argument("--no-figure", action="store_true")
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                      help="threads training the compiled programs (default: cores)")
  args = parser.parse_args(argv)
  from tqdm import tqdm

  n_models = args.models or (5 if args.quick else 30)
  setups = [s for s in args.setups.split(",") if s]
  unknown = [s for s in setups if s not in SETUPS]
  if unknown:
    parser.error(f"--setups: unknown {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
  if args.with_lm and "enforced_lm" not in setups:
    setups.append("enforced_lm")
  os.makedirs(args.out, exist_ok=True)
  start = time.perf_counter()

  x = np.linspace(0.0, 1.0, args.points)
  names = list(CURVES)
  ys = np.stack([CURVES[c](x) for c in names])
  keys = jax.random.split(jax.random.key(args.seed), n_models)
  xs_train = np.linspace(0.0, 1.0, 10)
  xs_test = (np.arange(10) + 0.5) / 10
  ys_train = np.stack([CURVES[c](xs_train) for c in names])
  ys_test = np.stack([CURVES[c](xs_test) for c in names])

  results = {"settings": {**vars(args), "models": n_models, "depth": 5, "width": 4},
             "limit": {}, "setups": {}, "sparse": {}}
  best_pred = {}
  timing = {}
  bar = tqdm(total=len(setups) + 2, desc="paper tables", unit="task")

  # Every setup is two compiled programs (the dense curves and the sparse
  # data). They compile one after the other (concurrent compilations slow
  # each other down badly); each trains on a pool of threads as soon as it is
  # compiled, so training overlaps the next compilation.
  jobs = {}
  for method in setups:
    lr = args.baseline_lr if method in ("kaiming", "raai") else None   # None: fit's default
    jobs[(method, "dense")] = (method, np.broadcast_to(x, ys.shape), ys, keys, args.steps, lr,
                               args.lm_steps)
    jobs[(method, "sparse")] = (method, np.broadcast_to(xs_train, ys_train.shape), ys_train,
                                keys, args.steps, lr, args.lm_steps)
  jobs = {name: (job[0], jnp.asarray(job[1]), jnp.asarray(job[2])) + job[3:]
          for name, job in jobs.items()}
  dense_first = sorted(jobs, key=lambda name: name[1] != "dense")
  programs, done, finished, futures = {}, {}, {}, {}
  t_start = time.perf_counter()
  with ThreadPoolExecutor(max_workers=args.workers) as pool:
    # The 32-piece limits (scipy) are computed on the pool beside everything.
    limits = pool.submit(_limits, x, ys, names)
    for name in dense_first:
      bar.set_postfix_str(f"compile {name[0]} ({name[1]})")
      programs[name] = _compile_setup(*jobs[name])
      futures[pool.submit(_run_program, programs[name][0], *jobs[name][1:4])] = name
    timing["compile_wall"] = time.perf_counter() - t_start
    bar.update()
    for fut in as_completed(futures):
      name = futures[fut]
      done[name] = fut.result()
      finished[name] = time.perf_counter() - t_start
      bar.set_postfix_str(f"{name[0]} ({name[1]}) trained")
  timing["train_wall"] = time.perf_counter() - t_start
  results["limit"], timing["limit"] = limits.result()
  timing["dense_wall"] = max(t for name, t in finished.items() if name[1] == "dense")
  timing["paper_dense_wall"] = max((t for name, t in finished.items()
                                    if name[1] == "dense" and name[0] in PAPER_SETUPS),
                                   default=None)
  bar.update()

  for method in setups:
    res, sres = done[(method, "dense")][0], done[(method, "sparse")][0]
    timing[method] = {"compile": programs[(method, "dense")][1],
                      "run": done[(method, "dense")][1],
                      "sparse_compile": programs[(method, "sparse")][1],
                      "sparse_run": done[(method, "sparse")][1]}
    bar.set_postfix_str(f"{method}: pieces, errors")
    bar.update()
    mse = np.asarray(res.mse, np.float64)
    pred = np.asarray(jax.vmap(jax.vmap(
        lambda p: relucomp.mlp_apply(p, jnp.asarray(x)[:, None])[:, 0]))(res.params))
    span = pred.max(axis=-1) - pred.min(axis=-1)
    collapsed = span <= 1e-6 * (ys.max(axis=1) - ys.min(axis=1))[:, None]
    entry = {}
    for i, c in enumerate(names):
      finite = np.where(np.asarray(res.diverged[i]), np.inf, mse[i])
      b = int(np.argmin(finite))
      best_pred[(method, c)] = pred[i, b]
      counts = [_pieces(res.params, i, j) for j in range(n_models)]
      entry[c] = {"min": float(np.min(finite)), "mean": float(np.mean(finite)),
                  "median": float(np.median(finite)),
                  "diverged": int(np.sum(np.asarray(res.diverged[i]))),
                  "collapsed_fraction": float(np.mean(collapsed[i])),
                  "pieces": counts, "pieces_best": counts[b],
                  "ratio_to_limit": float(np.min(finite) / results["limit"][c])}
    results["setups"][method] = entry

    spred = np.asarray(jax.vmap(jax.vmap(
        lambda p: relucomp.mlp_apply(p, jnp.asarray(xs_test)[:, None])[:, 0]))(sres.params))
    test_mse = np.mean((spred - ys_test[:, None, :]) ** 2, axis=-1)
    test_mse = np.where(np.asarray(sres.diverged), np.inf, test_mse)
    results["sparse"][method] = {c: float(np.min(test_mse[i])) for i, c in enumerate(names)}
  bar.close()

  total = time.perf_counter() - start
  per_setup = {m: timing[m] for m in setups}
  results["timing"] = {
      "total_s": total, "limit_s": timing["limit"], "workers": args.workers,
      "compile_wall_s": timing["compile_wall"], "train_wall_s": timing["train_wall"],
      "dense_wall_s": timing["dense_wall"], "paper_dense_wall_s": timing["paper_dense_wall"],
      "compile_sum_s": sum(t["compile"] + t["sparse_compile"] for t in per_setup.values()),
      "run_sum_s": sum(t["run"] + t["sparse_run"] for t in per_setup.values()),
      "per_setup": per_setup}
  paper_size = n_models == 30 and args.steps == 1000
  size = (f"{'full' if paper_size else 'reduced'}: {n_models} models per setup, "
          f"{args.steps} + {args.steps} steps (the paper: 30 models, 1000 + 1000 steps)")
  md = _results.write(args.out, "paper_tables", results, markdown, script=__file__,
                      argv=argv, size=size)
  if not args.no_figure:
    _figure(x, ys, names, setups, best_pred, os.path.join(args.out, "fits.png"))
  print(md.read_text())
  print(f"wrote {args.out}/paper_tables.json, paper_tables.md"
        + ("" if args.no_figure else ", fits.png"))
  return results


def markdown(results):
  """The tables of ``paper_tables.json`` (without the command header) as Markdown."""
  s = results["settings"]
  n_models, steps = s["models"], s["steps"]
  names = list(results["limit"])
  setups = list(results["setups"])
  lm = (f" ({LABELS['enforced_lm']}: {steps} + {s.get('lm_steps')} Levenberg-Marquardt "
        "steps)" if "enforced_lm" in setups else "")
  lines = [f"**Training MSE**, {n_models} models per setup, depth 5, width 4, "
           f"{steps} + {steps} steps{lm}, {s['points']} points on [0, 1]:", ""]
  lines.append("| curve | setup | min | paper min | mean | paper mean | min / limit | "
               "collapsed | pieces (best; median, max) |")
  lines.append("|---|---|---|---|---|---|---|---|---|")
  for c in names:
    for m in setups:
      e = results["setups"][m][c]
      paper = PAPER.get(PAPER_SETUP.get(m, m), {}).get(c, (None, None))
      pcs = [p for p in e["pieces"] if p >= 0]
      lines.append(
          f"| {c} | {LABELS[m]} | {_fmt(e['min'])} | {_fmt(paper[0])} | {_fmt(e['mean'])} | "
          f"{_fmt(paper[1])} | {e['ratio_to_limit']:.1f}x | {e['collapsed_fraction']:.0%} | "
          f"{e['pieces_best']}; {int(np.median(pcs)) if pcs else '–'}, "
          f"{max(pcs) if pcs else '–'} |")
  lines += ["", "32-piece limit (best continuous piecewise-linear fit, 31 free knots; "
            "reference values in brackets): " + ", ".join(
                f"{c} {results['limit'][c]:.2e} ({LIMIT_REFERENCE[c]:.1e})" for c in names), ""]
  lines.append("**Sparse data**: 10 training points, 10 test points, minimum test MSE "
               "over the models:")
  lines.append("")
  lines.append("| setup | " + " | ".join(names) + " |")
  lines.append("|---|" + "---|" * len(names))
  for m in setups:
    ours = results["sparse"][m]
    paper = PAPER_SPARSE.get(PAPER_SETUP.get(m, m), {})
    lines.append(f"| {LABELS[m]} | " + " | ".join(
        f"{_fmt(ours[c])} (paper {_fmt(paper.get(c))})" for c in names) + " |")
  t = results["timing"]
  lines += ["", f"Time: total {t['total_s']:.1f} s ({t['workers']} training threads): "
            f"compilation and training {t['train_wall_s']:.1f} s (all compiled after "
            f"{t['compile_wall_s']:.1f} s, the dense curves trained after "
            f"{t['dense_wall_s']:.1f} s{_paper_part(t)}, the sparse ones after all; the "
            "32-piece limits, "
            f"{t['limit_s']:.1f} s, beside them), then pieces, errors and output. "
            f"Summed over the programs: compile {t['compile_sum_s']:.1f} s, training "
            f"{t['run_sum_s']:.1f} s. Per setup (compile / run, s; dense then sparse): " +
            ", ".join(f"{m} {v['compile']:.1f}/{v['run']:.1f}, "
                      f"{v['sparse_compile']:.1f}/{v['sparse_run']:.1f}"
                      for m, v in t["per_setup"].items()), ""]
  return "\n".join(lines)


def _paper_part(timing):
  paper = timing.get("paper_dense_wall_s")
  if paper is None or paper == timing["dense_wall_s"]:
    return ""
  return f" (those of the paper's setups after {paper:.1f} s)"


def _figure(x, ys, names, setups, best_pred, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 6.5), sharex=True)
  for i, c in enumerate(names):
    top, bottom = axes[0, i], axes[1, i]
    top.plot(x, ys[i], color="black", lw=2.5, label="target")
    for m in setups:
      p = best_pred[(m, c)]
      top.plot(x, p, lw=1, label=LABELS[m])
      bottom.semilogy(x, np.abs(p - ys[i]) + 1e-16, lw=0.8, label=LABELS[m])
    top.set_title(c)
    bottom.set_xlabel("x")
  axes[0, 0].set_ylabel("best fit of each setup")
  axes[1, 0].set_ylabel("|error|")
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


#: XLA:CPU options of this script (not of the library): fusion emitters off
#: (the ten programs compile about a third faster) and the backend's
#: optimisation level 1 (the two-stage programs compile in 3.0 s instead of
#: 5.2 s, the one-stage ones about as fast as before), both at the same
#: training speed and the same numbers (measured on this experiment's
#: programs). Set before the first JAX computation; ``--default-xla`` keeps
#: XLA's defaults.
FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=1"


if __name__ == "__main__":
  if "--default-xla" in sys.argv:
    sys.argv.remove("--default-xla")
  else:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()
  main()
