"""The one-input fits' positive definite solve against LAPACK's.

relucomp's one-input second-order steps solve their damped systems with a
Cholesky loop of plain XLA operations (``relucomp/_linalg.py``), because
the CPU's batched LAPACK solves can hang when two run at once. This script
times both on the sizes those fits meet (a batch of systems: a ``vmap`` of
fits), one compiled program each, and checks that they agree.

  python benchmarks/solve.py            # quick (the default)
  python benchmarks/solve.py --repeats 20
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from relucomp._linalg import spd_solve

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402

#: (unknowns, systems in the batch): stage-1 breakpoints, the 97-weight
#: network of depth 5 alone and under a vmap of 120 fits, a dc pair, the
#: largest network the default solves.
SIZES = ((12, 120), (64, 120), (97, 1), (97, 120), (190, 100), (500, 1))


def _median_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))                     # compile and warm up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def run(n: int, batch: int, repeats: int) -> dict[str, Any]:
  m = jax.random.normal(jax.random.key(n), (batch, n, n + 5), jnp.float32)
  a = m @ jnp.swapaxes(m, 1, 2) + 1e-3 * jnp.eye(n, dtype=jnp.float32)
  b = jax.random.normal(jax.random.key(n + 1), (batch, n), jnp.float32)
  ours = jax.jit(jax.vmap(spd_solve))
  lapack = jax.jit(jax.vmap(jnp.linalg.solve))
  x, y = np.asarray(ours(a, b), np.float64), np.asarray(lapack(a, b), np.float64)
  residual = [float(np.max(np.abs(np.einsum("bij,bj->bi", np.asarray(a, np.float64), z)
                                  - np.asarray(b, np.float64)))) for z in (x, y)]
  return {"n": n, "batch": batch, "relucomp_ms": _median_ms(ours, a, b, repeats=repeats),
          "lapack_ms": _median_ms(lapack, a, b, repeats=repeats),
          "residual_relucomp": residual[0], "residual_lapack": residual[1]}


def markdown(results: dict[str, Any]) -> str:
  lines = [f"**Batched positive definite solves**, float32, one compiled program each, "
           f"median of {results['repeats']} calls; residual: largest |A x - b| "
           "(b ~ N(0, 1)).", "",
           "| unknowns | systems | relucomp ms | LAPACK ms | ratio | residual relucomp "
           "| residual LAPACK |", "|---|---|---|---|---|---|---|"]
  for r in results["rows"]:
    lines.append(f"| {r['n']} | {r['batch']} | {r['relucomp_ms']:.2f} | {r['lapack_ms']:.2f} "
                 f"| {r['relucomp_ms'] / r['lapack_ms']:.2f} | {r['residual_relucomp']:.1e} "
                 f"| {r['residual_lapack']:.1e} |")
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sizes", default=",".join(f"{n}x{b}" for n, b in SIZES),
                      help="comma-separated UNKNOWNSxSYSTEMS")
  parser.add_argument("--out", default="out/solve")
  args = parser.parse_args(argv)
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1; got {args.repeats}")
  sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
  rows = []
  for n, batch in sizes:
    rows.append(run(n, batch, args.repeats))
    print(f"n={n} batch={batch}: relucomp {rows[-1]['relucomp_ms']:.2f} ms, "
          f"LAPACK {rows[-1]['lapack_ms']:.2f} ms", flush=True)
  results = {"repeats": args.repeats, "rows": rows}
  md = _results.write(args.out, "solve", results, markdown, script=__file__, argv=argv,
                      size=f"{len(sizes)} sizes, {args.repeats} calls each")
  print()
  print(md.read_text())
  return results


if __name__ == "__main__":
  main()
