"""relucomp's compiled, vmapped training loop against the PyTorch loop a user writes.

The same work on both sides: N models of width 4 and depth 5 fitted to x^3 on
500 points of [0, 1] with Adam (learning rate 1e-3) for 2000 full-batch
steps. relucomp runs ``fit(method="kaiming", pretrain_steps=0,
finetune_steps=2000)`` vmapped over N keys as one compiled program; PyTorch
runs, per model, ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU`` with
``torch.optim.Adam`` and ``zero_grad/backward/step``.

Reported per N: compile time, steady run time (median of ``--repeats``),
models x steps per second, the PyTorch time and the ratios (with and
without compilation). Also the two-stage ``"enforced"`` method, time
against depth at N = 30, and the peak resident memory of a relucomp run at
the largest N (measured in a fresh subprocess).

Then the roofline of :func:`relucomp.fit_batch` (``"enforced"``, depth 5, 500
points, the default scheme and the Levenberg-Marquardt stage 2): per-model
wall and CPU time at each batch size B, model-steps per second and the
achieved GFLOP/s (forward and backward of the MLP) beside the machine's
peak (cores x clock x SIMD lanes x 2 FMA units x 2).

    python benchmarks/speed.py [--quick]  # N in 1, 10, 30; depths 2, 5, 10;
                                          # B in 1, 64, 256, 100 + 100 steps
    python benchmarks/speed.py --full     # N in 1, 10, 30, 100, 1000; depths 2..30;
                                          # B in 1, 64, 1024, 10^4, 500 + 500 steps

Writes ``speed.json`` and ``speed.md`` (the tables, with the command) to ``--out``.

PyTorch is optional (``pip install torch==2.13.0``, the CPU wheel); without
it the PyTorch columns say "absent".
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

import relucomp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

N_POINTS = 500
LEARNING_RATE = 1e-3


def _data(dtype=np.float32):
  x = np.linspace(0.0, 1.0, N_POINTS, dtype=dtype)
  return x, x**3


def relucomp_program(n_models: int, *, method: str, depth: int, steps: int):
  """The compiled program and its argument: N fits vmapped over keys."""
  x, y = _data()
  pretrain = 0 if method == "kaiming" else steps // 2
  finetune = steps - pretrain

  def one(key):
    return relucomp.fit(x, y, key=key, method=method, depth=depth, pretrain_steps=pretrain,
                        finetune_steps=finetune, learning_rate=LEARNING_RATE,
                        curvature="convex").mse

  keys = jax.random.split(jax.random.key(0), n_models)
  return jax.jit(jax.vmap(one)), keys


def time_relucomp(n_models: int, *, method="kaiming", depth=5, steps=2000, repeats=3) -> dict:
  program, keys = relucomp_program(n_models, method=method, depth=depth, steps=steps)
  start = time.perf_counter()
  compiled = program.lower(keys).compile()
  compile_s = time.perf_counter() - start
  runs = []
  for _ in range(repeats):
    start = time.perf_counter()
    mse = np.asarray(compiled(keys))  # np.asarray waits for the result on any device
    runs.append(time.perf_counter() - start)
  run_s = statistics.median(runs)
  return {"n_models": n_models, "method": method, "depth": depth, "steps": steps,
          "compile_s": compile_s, "run_s": run_s, "runs_s": runs,
          "model_steps_per_s": n_models * steps / run_s,
          "median_mse": float(np.median(mse))}


def time_torch(n_models: int, *, depth=5, steps=2000, threads=None) -> dict | None:
  try:
    import torch
  except ImportError:
    return None
  if threads:
    torch.set_num_threads(threads)
  x_np, y_np = _data()
  x = torch.from_numpy(x_np)[:, None]
  y = torch.from_numpy(y_np)[:, None]
  start = time.perf_counter()
  final = []
  for seed in range(n_models):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(1, 4), torch.nn.ReLU()]
    for _ in range(depth - 1):
      layers += [torch.nn.Linear(4, 4), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(4, 1))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.MSELoss()
    for _ in range(steps):
      opt.zero_grad()
      loss = loss_fn(model(x), y)
      loss.backward()
      opt.step()
    final.append(loss.item())
  total = time.perf_counter() - start
  return {"n_models": n_models, "run_s": total, "model_steps_per_s": n_models * steps / total,
          "threads": torch.get_num_threads(), "median_mse": float(np.median(final))}


def peak_memory_subprocess(n_models: int, steps: int) -> float:
  """Peak resident memory (MiB) of a fresh process running the relucomp fit."""
  code = (
      "import resource, sys; sys.path.insert(0, %r);"
      "import speed, numpy as np;"
      "p, k = speed.relucomp_program(%d, method='kaiming', depth=5, steps=%d);"
      "np.asarray(p(k));"
      "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
  ) % (str(pathlib.Path(__file__).parent), n_models, steps)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # ru_maxrss is KiB on Linux


def time_fit_batch(n_models: int, *, scheme: str, depth: int = 5, steps: int = 1000,
                   repeats: int = 3, chunk_size: int | None = None) -> dict:
  """``fit_batch`` of ``n_models`` fits of x^3: first call, then steady wall and CPU time.

  CPU time (``time.process_time``, every thread of this process) is the
  work done, which other programs on a shared machine do not inflate.
  """
  x, y = _data()
  kw = dict(depth=depth, pretrain_steps=steps // 2, finetune_steps=steps - steps // 2,
            curvature="convex",
            optimizer=None if scheme == "default" else (None, relucomp.levenberg_marquardt()))
  if chunk_size is not None:
    kw["chunk_size"] = chunk_size
  keys = jax.random.split(jax.random.key(0), n_models)
  run = lambda: np.asarray(relucomp.fit_batch(x, y, keys=keys, **kw).mse)
  start = time.perf_counter()
  mse = run()
  first_s = time.perf_counter() - start
  walls, cpus = [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    mse = run()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
  run_s, cpu_s = statistics.median(walls), statistics.median(cpus)
  model_steps = n_models * steps
  return {"n_models": n_models, "scheme": scheme, "depth": depth, "steps": steps,
          "first_call_s": first_s, "run_s": run_s, "cpu_s": cpu_s, "runs_s": walls,
          "per_model_ms": 1e3 * run_s / n_models, "per_model_cpu_ms": 1e3 * cpu_s / n_models,
          "model_steps_per_s": model_steps / run_s,
          "gflops": model_steps * flops_per_step(depth) / run_s / 1e9,
          "gflops_cpu": model_steps * flops_per_step(depth) / cpu_s / 1e9,
          "median_mse": float(np.median(mse))}


def peak_gflops() -> dict:
  """The float32 peak: cores x clock x SIMD lanes x 2 (FMA) x 2 (FMA units per core).

  Lanes from the CPU flags (16 with AVX-512, 8 with AVX2, else 4), the clock
  from ``/proc/cpuinfo``; two FMA units per core is an assumption (true of
  current server x86 cores).
  """
  text = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
  flags = next((l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags")), [])
  mhz = next((float(l.split(":", 1)[1]) for l in text.splitlines() if l.startswith("cpu MHz")),
             None)
  lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
  cores = os.cpu_count() or 1
  ghz = (mhz or 2000.0) / 1e3
  return {"cores": cores, "ghz": ghz, "lanes": lanes, "clock_known": mhz is not None,
          "gflops": cores * ghz * lanes * 2 * 2}


def flops_per_step(depth: int, n_points: int = N_POINTS, width: int = 4) -> float:
  """Multiply-adds of one full-batch step (forward ~1x, backward ~2x), as flops."""
  macs = n_points * (width + (depth - 1) * width * width + width)
  return 2.0 * 3.0 * macs


def batch_section(args, report: dict) -> tuple[list[int], int]:
  """The fit_batch roofline (both schemes) into ``report["batch"]``; prints it."""
  batch_sizes = args.batch_models or ([1, 64, 1024, 10_000] if args.full else [1, 64, 256])
  batch_steps = args.batch_steps or (1000 if args.full else 200)
  report["peak"] = peak_gflops()
  report["batch"] = {}
  for scheme in ("default", "lm"):
    print(f"\nfit_batch roofline, scheme {scheme!r}: 'enforced', depth 5, "
          f"{batch_steps // 2} + {batch_steps - batch_steps // 2} steps")
    print(f"{'B':>6} {'first s':>8} {'run s':>8} {'ms/model':>9} {'CPU ms/model':>13} "
          f"{'model-steps/s':>14} {'GFLOP/s':>8}")
    rows = []
    for n in batch_sizes:
      r = time_fit_batch(n, scheme=scheme, steps=batch_steps,
                         repeats=args.repeats if n < 1000 else 1)
      rows.append(r)
      print(f"{n:>6} {r['first_call_s']:8.2f} {r['run_s']:8.3f} {r['per_model_ms']:9.2f} "
            f"{r['per_model_cpu_ms']:13.2f} {r['model_steps_per_s']:14.0f} "
            f"{r['gflops']:8.2f}", flush=True)
    report["batch"][scheme] = rows
    print(roofline_line(rows, report["peak"], scheme))
  return batch_sizes, batch_steps


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="small sizes (the default)")
  size.add_argument("--full", action="store_true", help="all sizes of the issue")
  parser.add_argument("--models", type=int, nargs="*", help="N values (overrides the default)")
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--torch-budget", type=float, default=180.0,
                      help="skip PyTorch for N whose estimated time exceeds this (s)")
  parser.add_argument("--batch-models", type=int, nargs="*",
                      help="B values of the fit_batch roofline (overrides the default)")
  parser.add_argument("--batch-steps", type=int,
                      help="steps (both stages) of the fit_batch roofline")
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/speed"))
  parser.add_argument("--only-batch", action="store_true",
                      help="only the fit_batch roofline, written as speed_batch.json/.md")
  args = parser.parse_args(argv)
  if args.only_batch:
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"devices": [str(d) for d in jax.devices()], "repeats": args.repeats}
    batch_sizes, batch_steps = batch_section(args, report)
    size = (f"{'full' if args.full else 'quick'}, fit_batch only: B in "
            f"{', '.join(map(str, batch_sizes))}, {batch_steps} steps")
    _results.write(args.out, "speed_batch", report, batch_markdown, script=__file__,
                   argv=argv, size=size)
    print(f"wrote {args.out / 'speed_batch.json'}, {args.out / 'speed_batch.md'}")
    return report
  sizes = args.models or ([1, 10, 30, 100, 1000] if args.full else [1, 10, 30])
  depths = [2, 5, 10, 20, 30] if args.full else [2, 5, 10]
  args.out.mkdir(parents=True, exist_ok=True)
  report = {"devices": [str(d) for d in jax.devices()], "steps": args.steps,
            "repeats": args.repeats, "torch_budget_s": args.torch_budget,
            "rows": [], "enforced": [], "depth": []}

  print(f"{'N':>5} {'compile s':>10} {'run s':>8} {'model-steps/s':>14} {'torch s':>9} "
        f"{'torch m-s/s':>12} {'ratio':>7} {'ratio incl. compile':>20}")
  torch_rate = None
  for n in sizes:
    ours = time_relucomp(n, steps=args.steps, repeats=args.repeats if n < 300 else 1)
    estimate = None if torch_rate is None else n * args.steps / torch_rate
    theirs = None
    if estimate is None or estimate <= args.torch_budget:
      theirs = time_torch(n, steps=args.steps)
      if theirs is not None:
        torch_rate = theirs["model_steps_per_s"]
    row = {"relucomp": ours, "torch": theirs}
    if theirs is not None:
      row["ratio"] = theirs["run_s"] / ours["run_s"]
      row["ratio_incl_compile"] = theirs["run_s"] / (ours["run_s"] + ours["compile_s"])
    report["rows"].append(row)
    t_s = f"{theirs['run_s']:9.2f}" if theirs else f"{'absent' if torch_rate is None else 'skipped':>9}"
    t_r = f"{theirs['model_steps_per_s']:12.0f}" if theirs else f"{'-':>12}"
    ratio = f"{row['ratio']:7.1f}" if theirs else f"{'-':>7}"
    ratio_c = f"{row['ratio_incl_compile']:20.1f}" if theirs else f"{'-':>20}"
    print(f"{n:>5} {ours['compile_s']:10.2f} {ours['run_s']:8.3f} "
          f"{ours['model_steps_per_s']:14.0f} {t_s} {t_r} {ratio} {ratio_c}", flush=True)

  print("\ntwo-stage 'enforced' (1000 + 1000 steps)")
  print(f"{'N':>5} {'compile s':>10} {'run s':>8} {'model-steps/s':>14}")
  for n in sizes[: min(len(sizes), 3)]:
    r = time_relucomp(n, method="enforced", steps=args.steps, repeats=args.repeats)
    report["enforced"].append(r)
    print(f"{n:>5} {r['compile_s']:10.2f} {r['run_s']:8.3f} {r['model_steps_per_s']:14.0f}", flush=True)

  print("\ntime against depth, N = 30 ('kaiming')")
  print(f"{'depth':>5} {'compile s':>10} {'run s':>8} {'GFLOP/s achieved':>17}")
  for depth in depths:
    r = time_relucomp(30, depth=depth, steps=args.steps, repeats=args.repeats)
    r["gflops"] = 30 * args.steps * flops_per_step(depth) / r["run_s"] / 1e9
    report["depth"].append(r)
    print(f"{depth:>5} {r['compile_s']:10.2f} {r['run_s']:8.3f} {r['gflops']:17.2f}", flush=True)

  n_mem = max(sizes)
  report["peak_rss_mib"] = {"n_models": n_mem, "mib": peak_memory_subprocess(n_mem, args.steps)}
  report["kflop_per_model_step"] = flops_per_step(5) / 1e3
  batch_sizes, batch_steps = batch_section(args, report)
  print(f"\npeak resident memory of a fresh process fitting N = {n_mem}: "
        f"{report['peak_rss_mib']['mib']:.0f} MiB")
  work = flops_per_step(5)
  print(f"work per step and model at depth 5: {work / 1e3:.0f} kflop "
        f"(N = 30 x {args.steps} steps = {30 * args.steps * work / 1e9:.2f} GFLOP)")
  size = (f"{'full' if args.full else 'quick'}: N in {', '.join(map(str, sizes))}, "
          f"depths {', '.join(map(str, depths))}, {args.steps} steps; fit_batch B in "
          f"{', '.join(map(str, batch_sizes))}, {batch_steps} steps")
  _results.write(args.out, "speed", report, markdown, script=__file__, argv=argv, size=size)
  print(f"wrote {args.out / 'speed.json'}, {args.out / 'speed.md'}")
  return report


def roofline_line(rows: list[dict], peak: dict, scheme: str) -> str:
  """One line: the best achieved GFLOP/s beside the peak, model-steps/s, the
  per-model times and how flat they stay from B = 64 up."""
  best = max(rows, key=lambda r: r["gflops"])
  flat = [r["per_model_cpu_ms"] for r in rows if r["n_models"] >= 64]
  spread = max(flat) / min(flat) if flat else float("nan")
  times = ", ".join(f"{r['n_models']}: {r['per_model_ms']:.2f}" for r in rows)
  return (f"roofline ({scheme}): {best['gflops']:.1f} GFLOP/s at B = {best['n_models']} of a "
          f"{peak['gflops']:.0f} GFLOP/s float32 peak ({100 * best['gflops'] / peak['gflops']:.1f}%), "
          f"{best['model_steps_per_s']:,.0f} model-steps/s; ms per model at B = {times}; "
          f"CPU time per model from B = 64 up within {spread:.2f}x")


def markdown(report: dict) -> str:
  """The tables of ``speed.json`` (without the command header) as Markdown."""
  steps = report["steps"]
  torch_rows = [r["torch"] for r in report["rows"] if r["torch"]]
  if torch_rows:
    torch_note = (f"PyTorch on CPU with {torch_rows[0]['threads']} threads, one model after "
                  "another")
    if len(torch_rows) < len(report["rows"]):
      torch_note += (f" (– where its estimated time exceeded {report['torch_budget_s']:.0f} s, "
                     "`--torch-budget`)")
  else:
    torch_note = "PyTorch not installed: its columns are empty"
  lines = [f"**N models fitted to $x^3$**, width 4, depth 5, {steps} Adam steps each; "
           f"relucomp: median of {report['repeats']} runs (one run for N >= 300) of one "
           f"compiled, vmapped program; {torch_note}.", "",
           "| N | compile s | run s | model-steps/s | PyTorch s | ratio | ratio incl. compile |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for row in report["rows"]:
    ours, theirs = row["relucomp"], row["torch"]
    cells = [str(ours["n_models"]), f"{ours['compile_s']:.2f}", f"{ours['run_s']:.3f}",
             f"{ours['model_steps_per_s']:,.0f}"]
    if theirs:
      cells += [f"{theirs['run_s']:.2f}", f"{row['ratio']:.1f}",
                f"{row['ratio_incl_compile']:.1f}"]
    else:
      cells += ["–", "–", "–"]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", f"**Two-stage `\"enforced\"` method**, {steps // 2} + {steps - steps // 2} steps:",
            "", "| N | compile s | run s | model-steps/s |", "| --- | --- | --- | --- |"]
  for r in report["enforced"]:
    lines.append(f"| {r['n_models']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | "
                 f"{r['model_steps_per_s']:,.0f} |")
  lines += ["", "**Time against depth**, N = 30, one-stage `\"kaiming\"`:", "",
            "| depth | compile s | run s | GFLOP/s achieved |", "| --- | --- | --- | --- |"]
  for r in report["depth"]:
    lines.append(f"| {r['depth']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | "
                 f"{r['gflops']:.2f} |")
  mem = report["peak_rss_mib"]
  lines += ["", f"Peak resident memory of a fresh process fitting N = {mem['n_models']}: "
            f"{mem['mib']:.0f} MiB. Work per model and step at depth 5: "
            f"{report['kflop_per_model_step']:.0f} kflop (forward and backward)."]
  if "batch" in report:
    lines += ["", batch_markdown(report)]
  return "\n".join(lines)


def batch_markdown(report: dict) -> str:
  """The fit_batch roofline table of a report as Markdown."""
  peak = report["peak"]
  lines = [f"**`fit_batch` roofline**: B fits of $x^3$, `\"enforced\"`, depth 5, "
            "500 points, the default scheme and a Levenberg-Marquardt stage 2 "
            "(`optimizer=(None, relucomp.levenberg_marquardt())`); first call (compile "
            "and run), then the median of the steady runs, wall and CPU time (all "
            f"threads). Float32 peak {peak['gflops']:.0f} GFLOP/s = {peak['cores']} cores x "
            f"{peak['ghz']:.2f} GHz x {peak['lanes']} lanes x 2 (FMA) x 2 FMA units.", "",
            "| scheme | steps | B | first call s | run s | ms per model | CPU ms per model | "
            "model-steps/s | GFLOP/s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for scheme, rows in report["batch"].items():
    for r in rows:
      lines.append(f"| {scheme} | {r['steps']} | {r['n_models']} | {r['first_call_s']:.1f} | "
                   f"{r['run_s']:.3f} | {r['per_model_ms']:.2f} | "
                   f"{r['per_model_cpu_ms']:.2f} | {r['model_steps_per_s']:,.0f} | "
                   f"{r['gflops']:.2f} |")
  lines += [""] + [f"- {roofline_line(rows, peak, scheme)}."
                   for scheme, rows in report["batch"].items()]
  return "\n".join(lines).strip("\n")


if __name__ == "__main__":
  main()
