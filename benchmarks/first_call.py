"""The first call of ``fit`` in a fresh process, beside a plain optax Adam scan.

Each measurement runs in a fresh Python process (``--child``), so nothing is
compiled yet:

* ``fit``: the first default :func:`relucomp.fit` of 400 points of x^3
  (``"enforced"``, depth 5, 1000 + 1000 steps), then a second call;
* ``adam``: a plain optax Adam ``lax.scan`` of the same network (width 4,
  depth 5, 400 points) and the same 2000 steps, jitted by hand, with
  ``.lower()`` (tracing and lowering to StableHLO) and ``.compile()`` (XLA)
  timed apart, then the run, then a second call.

For both, JAX's own compile events (``jax.monitoring``: tracing to a jaxpr,
lowering to MLIR, XLA backend compile) are summed, with the programs that
cost most. Each is run without a cache, then twice against a fresh
persistent compilation cache (``jax_compilation_cache_dir``,
``jax_persistent_cache_min_compile_time_secs = 0``): once to fill it, once
to read it, as a repeated run would.

    python benchmarks/first_call.py [--quick]   # one process of each kind
    python benchmarks/first_call.py --full      # --repeats 3 (medians)

Writes ``first_call.json`` and ``first_call.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

N_POINTS = 400
DEPTH = 5
STEPS = 2000
_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
           "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
           "/jax/core/compile/backend_compile_duration": "xla_compile_s"}


def _listen(store: dict) -> None:
  """Sums JAX's compile-time events (and keeps each program's share)."""
  import jax  # pylint: disable=import-outside-toplevel

  def record(event, duration, **kwargs):
    if event in _EVENTS:
      name = _EVENTS[event]
      store[name] = store.get(name, 0.0) + duration
      key = f"{name}:{kwargs.get('fun_name', '?')}"
      store.setdefault("programs", {})
      store["programs"][key] = store["programs"].get(key, 0.0) + duration
      if name == "xla_compile_s":
        store["n_compiles"] = store.get("n_compiles", 0) + 1

  jax.monitoring.register_event_duration_secs_listener(record)


def child_fit() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import relucomp  # pylint: disable=import-outside-toplevel
  x = np.linspace(0.0, 1.0, N_POINTS, dtype=np.float32)
  y = x ** 3
  events: dict = {}
  _listen(events)
  start = time.perf_counter()
  mse = float(relucomp.fit(x, y, key=jax.random.key(0)).mse)
  first = time.perf_counter() - start
  start = time.perf_counter()
  float(relucomp.fit(x, y, key=jax.random.key(1)).mse)
  second = time.perf_counter() - start
  return {"first_s": first, "second_s": second, "mse": mse, **events}


def child_adam() -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  x = jnp.asarray(np.linspace(0.0, 1.0, N_POINTS, dtype=np.float32))[:, None]
  y = x[:, 0] ** 3
  events: dict = {}
  _listen(events)

  def init(key):
    sizes = [1] + [4] * DEPTH + [1]
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"kernel": jax.random.uniform(k, (a, b), minval=-a ** -0.5, maxval=a ** -0.5),
             "bias": jnp.zeros(b)} for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

  def loss(params):
    h = x
    for layer in params[:-1]:
      h = jax.nn.relu(h @ layer["kernel"] + layer["bias"])
    return jnp.mean(((h @ params[-1]["kernel"] + params[-1]["bias"])[:, 0] - y) ** 2)

  opt = optax.adam(1e-3)

  def train(key):
    params = init(key)

    def step(carry, _):
      p, s = carry
      value, grad = jax.value_and_grad(loss)(p)
      upd, s = opt.update(grad, s, p)
      return (optax.apply_updates(p, upd), s), value

    (params, _), history = jax.lax.scan(step, (params, opt.init(params)), length=STEPS)
    return loss(params), history

  program = jax.jit(train)
  key = jax.random.key(0)
  start = time.perf_counter()
  lowered = program.lower(key)
  lower_wall = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_wall = time.perf_counter() - start
  start = time.perf_counter()
  mse = float(compiled(key)[0])
  run = time.perf_counter() - start
  start = time.perf_counter()
  float(program(jax.random.key(1))[0])
  second = time.perf_counter() - start
  return {"first_s": lower_wall + compile_wall + run, "lower_wall_s": lower_wall,
          "compile_wall_s": compile_wall, "run_s": run, "second_s": second, "mse": mse,
          **events}


def _spawn(kind: str, cache: str | None) -> dict:
  """Runs one child in a fresh interpreter; its JSON line, with the import time."""
  argv = [sys.executable, __file__, "--child", kind] + (["--cache", cache] if cache else [])
  start = time.perf_counter()
  proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
  total = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f"child {kind} failed:\n{proc.stderr[-3000:]}")
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  out["process_s"] = total
  return out


def _summary(runs: list[dict]) -> dict:
  """Medians of the numeric fields of several runs; programs from the first run."""
  keys = [k for k, val in runs[0].items() if isinstance(val, (int, float))]
  out = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}
  progs = runs[0].get("programs", {})
  out["top_programs"] = sorted(progs.items(), key=lambda kv: -kv[1])[:6]
  out["n_runs"] = len(runs)
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="one process of each kind (default)")
  size.add_argument("--full", action="store_true", help="three processes of each kind")
  parser.add_argument("--repeats", type=int, help="processes per measurement (median)")
  parser.add_argument("--child", choices=("fit", "adam"), help=argparse.SUPPRESS)
  parser.add_argument("--cache", help=argparse.SUPPRESS)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/first_call"))
  args = parser.parse_args(argv)
  if args.child:
    start = time.perf_counter()
    import jax  # pylint: disable=import-outside-toplevel
    if args.cache:
      jax.config.update("jax_compilation_cache_dir", args.cache)
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
      jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import relucomp  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    imported = time.perf_counter() - start
    result = child_fit() if args.child == "fit" else child_adam()
    result["import_s"] = imported
    print(json.dumps(result))
    return result

  repeats = args.repeats or (3 if args.full else 1)
  report: dict = {"points": N_POINTS, "depth": DEPTH, "steps": STEPS, "repeats": repeats,
                  "rows": []}
  print(f"{'program':>6} {'cache':>10} {'import s':>9} {'first s':>8} {'second s':>9} "
        f"{'trace s':>8} {'lower s':>8} {'XLA s':>7} {'compiles':>9}")
  for kind in ("fit", "adam"):
    for cache in ("none", "cold", "warm"):
      runs = []
      for _ in range(repeats):
        if cache == "none":
          runs.append(_spawn(kind, None))
        else:
          with tempfile.TemporaryDirectory() as tmp:
            cold = _spawn(kind, tmp)
            runs.append(cold if cache == "cold" else _spawn(kind, tmp))
      row = {"program": kind, "cache": cache, **_summary(runs)}
      report["rows"].append(row)
      print(f"{kind:>6} {cache:>10} {row['import_s']:9.2f} {row['first_s']:8.2f} "
            f"{row['second_s']:9.3f} {row.get('trace_s', 0):8.2f} {row.get('lower_s', 0):8.2f} "
            f"{row.get('xla_compile_s', 0):7.2f} {row.get('n_compiles', 0):9.0f}", flush=True)
  fit0 = next(r for r in report["rows"] if r["program"] == "fit" and r["cache"] == "none")
  adam0 = next(r for r in report["rows"] if r["program"] == "adam" and r["cache"] == "none")
  report["ratio_first_call"] = fit0["first_s"] / adam0["first_s"]
  print(f"\nfirst fit / first Adam scan: {report['ratio_first_call']:.1f}x")
  for name, secs in fit0["top_programs"]:
    print(f"  fit, costliest: {name} {secs:.2f} s")
  _results.write(args.out, "first_call", report, markdown, script=__file__, argv=argv,
                 size=f"{'full' if args.full else 'quick'}: {repeats} process(es) per row")
  print(f"wrote {args.out / 'first_call.json'}, {args.out / 'first_call.md'}")
  return report


def markdown(report: dict) -> str:
  """The table of ``first_call.json`` as Markdown."""
  lines = [f"**First call in a fresh process**: the default `fit` of {report['points']} "
           f"points (`\"enforced\"`, depth {report['depth']}, "
           f"{report['steps'] // 2} + {report['steps'] // 2} steps) and a plain optax Adam "
           f"`lax.scan` of the same network and {report['steps']} steps; median of "
           f"{report['repeats']} process(es). Trace, lower and XLA are JAX's own compile "
           "events summed over every program compiled; cache: none, cold (an empty "
           "persistent compilation cache, filled by this run) or warm (read from it).", "",
           "| program | cache | import s | first call s | second call s | trace s | lower s "
           "| XLA compile s | programs compiled |", "| --- | --- | --- | --- | --- | --- | --- "
           "| --- | --- |"]
  for r in report["rows"]:
    lines.append(f"| {r['program']} | {r['cache']} | {r['import_s']:.2f} | {r['first_s']:.2f} "
                 f"| {r['second_s']:.3f} | {r.get('trace_s', 0):.2f} | {r.get('lower_s', 0):.2f} "
                 f"| {r.get('xla_compile_s', 0):.2f} | {r.get('n_compiles', 0):.0f} |")
  fit0 = next(r for r in report["rows"] if r["program"] == "fit" and r["cache"] == "none")
  lines += ["", f"First `fit` / first Adam scan: {report['ratio_first_call']:.1f}x. "
            "The costliest steps of the first `fit`: " + "; ".join(
                f"`{name}` {secs:.2f} s" for name, secs in fit0["top_programs"]) + "."]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
