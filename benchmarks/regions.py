"""Exact region enumeration: speed, counts against regioncam, and figures.

Run from the repository root:

    .venv/bin/python benchmarks/regions.py            # quick (default)
    .venv/bin/python benchmarks/regions.py --full     # every size of the issue

(``pip install regioncam`` for the comparison; the full 2-D grid is widths
16, 32, 64, 128 by depths 2, 3, 4, two networks each, seven runs.)

Parts:

1. 1-D: ``linear_pieces_1d`` on compositional networks of depth 8..20 (2^d
   pieces), median wall and CPU time of several runs, time per piece.
2. 2-D: ``regions_2d`` on random two-input MLPs (PyTorch's default
   ``nn.Linear`` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
   weights and biases) on [-1, 1]^2, side by side with regioncam (an
   optional package, float32) when it is installed: counts, median wall and
   CPU times of interleaved runs and their ratios, per network and as a
   width x depth table. Where the counts differ, the number of our regions
   too small for float32 to resolve is shown. One untimed call first loads
   the compiled enumeration (numba's cache) and reports how long that took.
3. Rounding to float32: the compositional network at d = 8 in 1-D and a
   grid of two compositional towers at d = 4 in 2-D, counted on the float64
   weights, on the float32-rounded weights (exactly, and with the dtype-aware
   default tolerance), and by regioncam.
4. Pieces versus depth (width 4, the compositional architecture) for the
   compositional network and for random networks with the default and a
   RAAI-like initialisation; a 2-D partition picture; neuron plots.

Networks with many inputs, on planes through three points
(``plane_regions``), have their own benchmark: ``benchmarks/plane_regions.py``;
regions near training points over training: ``benchmarks/local_complexity.py``.

Writes ``regions.json``, ``regions.md`` (the tables, with the command) and
the figures (unless ``--no-figure``) into ``--out`` (default ``out/regions``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import relucomp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

try:  # optional: only this benchmark uses it
  import regioncam  # noqa: E402
except ImportError:  # pragma: no cover - depends on the environment
  regioncam = None


# ------------------------------------------------------------ initialisers

def default_init(rng, widths):
  """PyTorch ``nn.Linear`` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  layers = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    bound = 1.0 / np.sqrt(n_in)
    layers.append({"kernel": rng.uniform(-bound, bound, (n_in, n_out)),
                   "bias": rng.uniform(-bound, bound, n_out)})
  return layers


def raai_like_init(rng, widths):
  """A RAAI-like initialisation (local to this benchmark).

  Lu et al.'s randomized asymmetric initialisation: each neuron's weights
  and bias are drawn N(0, 0.6007^2 / fan_in), then one of those fan_in + 1
  entries, chosen uniformly, is replaced by a Beta(2, 1) draw (positive).
  The anti-correlation step of Singh and Sreejith is not included here.
  """
  layers = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    sigma = 0.6007 / np.sqrt(n_in)
    full = rng.normal(0.0, sigma, (n_in + 1, n_out))  # last row: the bias
    pick = rng.integers(0, n_in + 1, n_out)
    full[pick, np.arange(n_out)] = rng.beta(2.0, 1.0, n_out)
    layers.append({"kernel": full[:-1], "bias": full[-1]})
  return layers


def compositional_params(rng, d, *, amplitude=0.25, lo=0.2, hi=0.8):
  peaks = jnp.asarray(rng.uniform(lo, hi, d + 1))
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, amplitude))
  return [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]


# ---------------------------------------------------------------- timing

def timed(fn, repeats):
  walls, cpus, result = [], [], None
  for _ in range(repeats):
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    walls.append(time.perf_counter() - w)
    cpus.append(time.process_time() - c)
  return result, float(np.median(walls)), float(np.median(cpus))


def regioncam_2d(params, size=1.0, *, with_patterns=False):
  cam = regioncam.Regioncam(size)
  for i, layer in enumerate(params):
    cam.linear(np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32))
    if i < len(params) - 1:
      cam.relu()
  if not with_patterns:
    return cam.num_faces
  # Layers: 0 input, then (linear, relu) per hidden layer; a neuron is active
  # on a face where its affine map there is not identically zero.
  patterns = [np.any(np.asarray(cam.face_activations(2 * (l + 1))) != 0, axis=1)
              for l in range(len(params) - 1)]
  return cam.num_faces, np.concatenate(patterns, axis=1)


def disagreement(ours, theirs_patterns, areas):
  """Regions whose pattern one side has and the other has not."""
  mine = np.concatenate(ours.patterns, axis=1)
  key = lambda rows: {r.tobytes() for r in np.packbits(rows, axis=1)}
  theirs = key(theirs_patterns)
  packed = np.packbits(mine, axis=1)
  missing = [i for i, r in enumerate(packed) if r.tobytes() not in theirs]
  extra = len(theirs - key(mine))
  return {"ours_not_in_regioncam": len(missing), "regioncam_not_in_ours": extra,
          "regioncam_distinct_patterns": len(theirs),
          "areas_of_ours_not_in_regioncam": [float(areas[i]) for i in missing][:10]}


def regioncam_1d(params, lo, hi):
  # Regioncam1D(size) covers [-size/2, size/2]; a first linear layer maps it
  # onto [lo, hi].
  cam = regioncam.Regioncam1D(1.0)
  cam.linear(np.array([[hi - lo]], np.float32), np.array([(lo + hi) / 2], np.float32))
  for i, layer in enumerate(params):
    cam.linear(np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32))
    if i < len(params) - 1:
      cam.relu()
  return cam.num_edges


def polygon_area(poly):
  x, y = poly[:, 0], poly[:, 1]
  return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


# ------------------------------------------------------------------ parts

def part_1d(depths, repeats):
  rows = []
  rng = np.random.default_rng(1)
  for d in depths:
    params = compositional_params(rng, d)
    merged, wall, cpu = timed(lambda: relucomp.linear_pieces_1d(params, 0.0, 1.0), repeats)
    regions, wall_nm, cpu_nm = timed(
        lambda: relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False), repeats)
    rows.append({"depth": d, "pieces": merged.count, "regions": regions.count,
                 "expected": 2 ** d, "wall_s": wall, "cpu_s": cpu,
                 "wall_s_no_merge": wall_nm, "cpu_s_no_merge": cpu_nm,
                 "ns_per_piece": 1e9 * wall / merged.count})
  print("\n1-D: compositional networks on [0, 1] (peaks U(0.2, 0.8), amplitude 0.25), "
        f"median of {repeats} runs")
  print(f"{'d':>3} {'pieces':>9} {'2^d':>9} {'wall s':>8} {'cpu s':>8} "
        f"{'wall s (merge=False)':>21} {'ns/piece':>9}")
  for r in rows:
    print(f"{r['depth']:>3} {r['pieces']:>9} {r['expected']:>9} {r['wall_s']:>8.4f} "
          f"{r['cpu_s']:>8.4f} {r['wall_s_no_merge']:>21.4f} {r['ns_per_piece']:>9.1f}")
  return rows


def timed_pair(fns, repeats):
  """Runs the functions in turn ``repeats`` times (interleaved, so load drift
  hits both alike); returns each one's last result and median wall and CPU
  seconds."""
  walls = [[] for _ in fns]
  cpus = [[] for _ in fns]
  results = [None for _ in fns]
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      w, c = time.perf_counter(), time.process_time()
      results[i] = fn()
      walls[i].append(time.perf_counter() - w)
      cpus[i].append(time.process_time() - c)
  return [(r, float(np.median(w)), float(np.median(c))) for r, w, c in zip(results, walls, cpus)]


def first_call_2d():
  """Seconds of the first ``regions_2d`` call in this process: loading the
  compiled enumeration from numba's cache (or compiling it when the cache is
  empty). Made before the timings, which it would otherwise enter."""
  params = default_init(np.random.default_rng(0), [2, 4, 1])
  start = time.perf_counter()
  relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])
  seconds = time.perf_counter() - start
  print(f"\n2-D: the first regions_2d call in this process took {seconds:.2f} s (compiled "
        "code loaded from numba's cache, or compiled); not in the timings below")
  return seconds


def part_2d(widths, depths, seeds, repeats):
  rows = []
  for w in widths:
    for d in depths:
      for seed in seeds:
        rng = np.random.default_rng(1000 * w + 10 * d + seed)
        params = default_init(rng, [2] + [w] * d + [1])
        fns = [lambda: relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])]
        if regioncam is not None:
          fns.append(lambda: regioncam_2d(params))
        timings = timed_pair(fns, repeats)
        ours, wall, cpu = timings[0]
        areas = np.array([polygon_area(p) for p in ours.vertices])
        row = {"width": w, "depth": d, "seed": seed, "ours": ours.count, "ours_s": wall,
               "ours_cpu_s": cpu, "area_sum": float(areas.sum()), "min_area": float(areas.min()),
               "tiny_regions": int(np.sum(areas < 1e-9)),
               # Weights rounded to float32 (what regioncam is given), counted
               # exactly: separates rounding of weights from float32 arithmetic.
               "ours_f32_weights": relucomp.regions_2d(
                   [{k: np.asarray(v, np.float32).astype(np.float64) for k, v in layer.items()}
                    for layer in params], [-1.0, -1.0], [1.0, 1.0]).count}
        if regioncam is not None:
          count, rc_wall, rc_cpu = timings[1]
          row.update(regioncam=int(count), regioncam_s=rc_wall, regioncam_cpu_s=rc_cpu,
                     ratio=rc_wall / wall, ratio_cpu=rc_cpu / cpu)
          _, theirs = regioncam_2d(params, with_patterns=True)
          row.update(disagreement(ours, theirs, areas))
        rows.append(row)
        print(f"  width {w:>3} depth {d} seed {seed}: {ours.count} regions, {1e3 * wall:.2f} ms"
              + (f" (regioncam {row['regioncam']} faces, {1e3 * row['regioncam_s']:.2f} ms)"
                 if regioncam is not None else ""), flush=True)
  print(f"\n2-D: default-initialised MLPs with 2 inputs on [-1, 1]^2, median of {repeats} runs "
        "(relucomp and regioncam interleaved)")
  if regioncam is None:
    print("regioncam is not installed (pip install regioncam): showing relucomp only.")
  print(f"{'width':>5} {'depth':>5} {'seed':>4} {'ours':>7} {'regioncam':>9} {'diff':>5} "
        f"{'ours f32w':>9} {'<1e-9 area':>10} {'ours ms':>9} {'regioncam ms':>12} "
        f"{'ratio':>6} {'ratio cpu':>9}")
  for r in rows:
    has_rc = r.get("regioncam") is not None
    dash = lambda width: f"{'-':>{width}}"
    print(f"{r['width']:>5} {r['depth']:>5} {r['seed']:>4} {r['ours']:>7} "
          + (f"{r['regioncam']:>9} {r['regioncam'] - r['ours']:>5} " if has_rc
             else f"{dash(9)} {dash(5)} ")
          + f"{r['ours_f32_weights']:>9} {r['tiny_regions']:>10} {1e3 * r['ours_s']:>9.2f} "
          + (f"{1e3 * r['regioncam_s']:>12.2f} {r['ratio']:>6.2f} {r['ratio_cpu']:>9.2f}"
             if has_rc else f"{dash(12)} {dash(6)} {dash(9)}"))
  print("(ratio = regioncam time / relucomp time, wall clock; ratio cpu: the same in CPU "
        "time; > 1 means relucomp is faster)")
  if regioncam is not None:
    print("\nMedian ratio (wall) per cell over the networks; rows: width, columns: depth")
    print(f"{'':>5}" + "".join(f"{d:>8}" for d in depths))
    for w in widths:
      cells = [np.median([r["ratio"] for r in rows if r["width"] == w and r["depth"] == d])
               for d in depths]
      print(f"{w:>5}" + "".join(f"{c:>8.2f}" for c in cells))
  for r in rows:
    if r.get("ours_not_in_regioncam") or r.get("regioncam_not_in_ours"):
      print(f"  width {r['width']} depth {r['depth']} seed {r['seed']}: "
            f"{r['ours_not_in_regioncam']} of our regions have a pattern regioncam lacks "
            f"(areas {', '.join(f'{a:.1e}' for a in r['areas_of_ours_not_in_regioncam'])}), "
            f"{r['regioncam_not_in_ours']} regioncam patterns are not ours; regioncam has "
            f"{r['regioncam_distinct_patterns']} distinct patterns on {r['regioncam']} faces")
  return rows


def grid_params(rng, d, *, amplitude=0.25):
  """Two compositional towers side by side, one per input, outputs summed:
  on [0, 1]^2 its regions are the 2^d x 2^d rectangles between the
  breakpoints of the two triangle waves."""
  towers = [compositional_params(rng, d, amplitude=amplitude) for _ in range(2)]
  layers = []
  for i, (a, b) in enumerate(zip(*towers)):
    if i == d:
      layers.append({"kernel": np.concatenate([a["kernel"], b["kernel"]]),
                     "bias": a["bias"] + b["bias"]})
      continue
    kernel = np.zeros((a["kernel"].shape[0] + b["kernel"].shape[0], 8))
    kernel[:a["kernel"].shape[0], :4] = a["kernel"]
    kernel[a["kernel"].shape[0]:, 4:] = b["kernel"]
    layers.append({"kernel": kernel, "bias": np.concatenate([a["bias"], b["bias"]])})
  return layers


def regioncam_2d_on(params, lo, hi):
  """regioncam's face count on the square [lo, hi]^2 (Regioncam(1.0) covers
  [-1, 1]^2; a first linear layer maps it onto the square)."""
  cam = regioncam.Regioncam(1.0)
  cam.linear(np.eye(2, dtype=np.float32) * np.float32((hi - lo) / 2),
             np.full(2, (lo + hi) / 2, np.float32))
  for i, layer in enumerate(params):
    cam.linear(np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32))
    if i < len(params) - 1:
      cam.relu()
  return cam.num_faces


def part_compositional_d8():
  """Rounding to float32: the compositional network at d = 8 (1-D) and the
  grid of two towers at d = 4 (2-D), counted exactly on the float64 weights,
  on the float32-rounded weights (in float64 with float64's tolerance, and as
  float32 arrays with the dtype-aware default), and by regioncam."""
  rows = []
  for seed in range(3):
    for dim, d in (("1-D", 8), ("2-D", 4)):
      rng = np.random.default_rng(seed)
      params = compositional_params(rng, d) if dim == "1-D" else grid_params(rng, d)
      f32 = [{k: np.asarray(v, np.float32) for k, v in layer.items()} for layer in params]
      f32_in_f64 = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in f32]
      if dim == "1-D":
        count = lambda p, **kw: relucomp.linear_pieces_1d(p, 0.0, 1.0, merge=False, **kw).count
      else:
        count = lambda p, **kw: relucomp.regions_2d(p, [0.0, 0.0], [1.0, 1.0], **kw).count
      row = {"seed": seed, "input": dim, "depth": d, "exact": (2 if dim == "1-D" else 4) ** d,
             "ours": count(params), "ours_f32_weights": count(f32_in_f64),
             "ours_f32_dtype_tolerance": count(f32)}
      if regioncam is not None:
        row["regioncam"] = int(regioncam_1d(params, 0.0, 1.0) if dim == "1-D"
                               else regioncam_2d_on(params, 0.0, 1.0))
      rows.append(row)
  print("\nRounding to float32: activation regions of the compositional network (1-D, d = 8, "
        "on [0, 1]) and of the grid of two towers (2-D, d = 4, on [0, 1]^2)")
  print(f"{'seed':>4} {'input':>5} {'exact':>6} {'ours f64':>8} {'ours f32 (1e-10)':>16} "
        f"{'ours f32 (dtype)':>16} {'regioncam (f32)':>15}")
  for r in rows:
    print(f"{r['seed']:>4} {r['input']:>5} {r['exact']:>6} {r['ours']:>8} "
          f"{r['ours_f32_weights']:>16} {r['ours_f32_dtype_tolerance']:>16} "
          f"{r.get('regioncam', '-'):>15}")
  print("(f32 (1e-10): the rounded weights in float64 with float64's zero tolerance, i.e. the "
        "rounded network counted exactly; f32 (dtype): float32 arrays, default tolerance)")
  return rows


def part_depth_curves(max_depth, samples):
  rng = np.random.default_rng(7)
  depths = list(range(1, max_depth + 1))
  curves = {"compositional": [], "default": [], "raai_like": []}
  for d in depths:
    widths = [1] + [4] * d + [1]
    curves["compositional"].append(
        relucomp.linear_pieces_1d(compositional_params(rng, d), 0.0, 1.0).count)
    for name, init in (("default", default_init), ("raai_like", raai_like_init)):
      counts = [relucomp.linear_pieces_1d(init(rng, widths), 0.0, 1.0).count
                for _ in range(samples)]
      curves[name].append({"mean": float(np.mean(counts)), "median": float(np.median(counts)),
                           "max": int(np.max(counts)), "min": int(np.min(counts))})
  print(f"\nLinear pieces on [0, 1] versus depth (width 4; random inits: {samples} networks "
        "per depth, mean / max)")
  print(f"{'d':>3} {'compositional':>13} {'default mean':>12} {'default max':>11} "
        f"{'RAAI-like mean':>14} {'RAAI-like max':>13}")
  for i, d in enumerate(depths):
    dft, raai = curves["default"][i], curves["raai_like"][i]
    print(f"{d:>3} {curves['compositional'][i]:>13} {dft['mean']:>12.2f} {dft['max']:>11} "
          f"{raai['mean']:>14.2f} {raai['max']:>13}")
  return depths, curves


def figures(out, depths, curves):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  ax.semilogy(depths, curves["compositional"], "o-", label="compositional ($2^d$)")
  for name, label in (("default", "default init (mean, max)"),
                      ("raai_like", "RAAI-like init (mean, max)")):
    mean = [c["mean"] for c in curves[name]]
    top = [c["max"] for c in curves[name]]
    line, = ax.semilogy(depths, mean, "s-", label=label)
    ax.semilogy(depths, top, ":", color=line.get_color())
  ax.set_xlabel("depth d (hidden layers of width 4)")
  ax.set_ylabel("linear pieces on [0, 1]")
  ax.set_title("Exact linear pieces versus depth")
  ax.legend()
  fig.tight_layout()
  fig.savefig(out / "pieces_vs_depth.png", dpi=120)
  plt.close(fig)

  params = default_init(np.random.default_rng(3), [2, 32, 32, 32, 1])
  parts = relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])
  ax = relucomp.plot_partition(parts)
  ax.set_title(f"2-input MLP 32-32-32, default init: {parts.count} regions")
  ax.figure.savefig(out / "partition_2d.png", dpi=120)
  plt.close(ax.figure)

  fig = relucomp.plot_neurons_1d(compositional_params(np.random.default_rng(4), 4), 0.0, 1.0)
  fig.suptitle("compositional network, d = 4 (each neuron scaled to max |value| = 1)")
  fig.tight_layout()
  fig.savefig(out / "neurons_compositional.png", dpi=120, bbox_inches="tight")
  plt.close(fig)
  fig = relucomp.plot_neurons_1d(default_init(np.random.default_rng(5), [1, 4, 4, 4, 4, 1]),
                                 0.0, 1.0)
  fig.suptitle("default init, width 4, d = 4 (each neuron scaled to max |value| = 1)")
  fig.tight_layout()
  fig.savefig(out / "neurons_default.png", dpi=120, bbox_inches="tight")
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="every size of the issue")
  size.add_argument("--quick", action="store_true", help="small sizes (the default)")
  parser.add_argument("--out", default="out/regions", help="directory for JSON and figures")
  parser.add_argument("--no-figure", action="store_true", help="tables only, no figures")
  args = parser.parse_args(argv)
  full = args.full and not args.quick
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)

  print(f"relucomp regions benchmark ({'full' if full else 'quick'}); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
        f"regioncam {'installed' if regioncam is not None else 'not installed'}")
  one_d = part_1d(list(range(8, 21)) if full else [8, 12, 16, 20], repeats=5 if full else 3)
  repeats_2d = 7 if full else 3
  first_call = first_call_2d()
  two_d = part_2d([16, 32, 64, 128] if full else [16, 32, 64],
                  [2, 3, 4] if full else [2, 3],
                  [0, 1] if full else [0], repeats=repeats_2d)
  comp8 = part_compositional_d8()
  samples = 30 if full else 10
  depths, curves = part_depth_curves(20 if full else 12, samples=samples)
  if not args.no_figure:
    figures(out, depths, curves)
  record = {"mode": "full" if full else "quick",
            "regioncam": (getattr(regioncam, "__version__", "installed")
                          if regioncam else None),
            "one_d": one_d, "two_d": two_d, "two_d_repeats": repeats_2d,
            "two_d_first_call_s": first_call,
            "compositional_d8": comp8,
            "pieces_vs_depth": {"depths": depths, "samples": samples, **curves}}
  size = ("full" if full else "quick") + (
      f": 1-D depths {one_d[0]['depth']} to {one_d[-1]['depth']}, 2-D widths "
      f"{', '.join(str(w) for w in sorted({r['width'] for r in two_d}))} and depths "
      f"{', '.join(str(d) for d in sorted({r['depth'] for r in two_d}))}; "
      f"{samples} random networks per depth for pieces against depth")
  _results.write(out, "regions", record, markdown, script=__file__, argv=argv, size=size)
  print(f"\nwrote {out / 'regions.json'}, {out / 'regions.md'}" + (
      "" if args.no_figure else " and figures pieces_vs_depth.png, partition_2d.png, "
      "neurons_compositional.png, neurons_default.png"))


def markdown(record):
  """The tables of ``regions.json`` (without the command header) as Markdown."""
  lines = ["**1-D: compositional networks on [0, 1]** (peaks U(0.2, 0.8), amplitude 0.25), "
           "`linear_pieces_1d`, median wall time:", "",
           "| depth | pieces | $2^d$ | wall s | wall s (`merge=False`) | ns per piece |",
           "| --- | --- | --- | --- | --- | --- |"]
  for r in record["one_d"]:
    lines.append(f"| {r['depth']} | {r['pieces']:,} | {r['expected']:,} | {r['wall_s']:.4f} | "
                 f"{r['wall_s_no_merge']:.4f} | {r['ns_per_piece']:.0f} |")
  with_rc = record["regioncam"] is not None
  lines += ["", "**2-D: default-initialised MLPs with two inputs on $[-1, 1]^2$**, "
            "`regions_2d`" + (", beside regioncam (float32)" if with_rc else "")
            + f", median of {record['two_d_repeats']} runs"
            + (" (the two in turn); ratio: regioncam's time over relucomp's, > 1 when "
               "relucomp is faster" if with_rc else "") + ":", "",
            "| width | depth | seed | regions | regions, float32 weights | area < 1e-9 | ms |"
            + (" regioncam | regioncam ms | ratio | ratio (CPU time) |" if with_rc else ""),
            "| --- | --- | --- | --- | --- | --- | --- |"
            + (" --- | --- | --- | --- |" if with_rc else "")]
  for r in record["two_d"]:
    row = (f"| {r['width']} | {r['depth']} | {r['seed']} | {r['ours']:,} | "
           f"{r['ours_f32_weights']:,} | {r['tiny_regions']} | {1e3 * r['ours_s']:.2f} |")
    if with_rc:
      row += (f" {r['regioncam']:,} | {1e3 * r['regioncam_s']:.2f} | {r['ratio']:.2f} | "
              f"{r['ratio_cpu']:.2f} |")
    lines.append(row)
  if with_rc:
    widths = sorted({r["width"] for r in record["two_d"]})
    depths_2d = sorted({r["depth"] for r in record["two_d"]})
    lines += ["", "Median ratio (wall clock) over the networks of each width (rows) and depth "
              "(columns):", "",
              "| width | " + " | ".join(f"depth {d}" for d in depths_2d) + " |",
              "| --- |" + " --- |" * len(depths_2d)]
    for w in widths:
      lines.append(f"| {w} | " + " | ".join(
          f"{np.median([r['ratio'] for r in record['two_d'] if (r['width'], r['depth']) == (w, d)]):.2f}"
          for d in depths_2d) + " |")
  if "two_d_first_call_s" in record:
    lines += ["", "The first `regions_2d` call of the run took "
              f"{record['two_d_first_call_s']:.2f} s (loading the compiled code from numba's "
              "cache, or compiling it when the cache is empty); it is made before, and not part "
              "of, the timings."]
  lines += ["", "**Rounding to float32**: activation regions of the compositional network "
            "(1-D, $d = 8$, on [0, 1]) and of a grid of two compositional towers (2-D, $d = 4$, "
            "on $[0, 1]^2$); *f32, 1e-10*: the rounded weights counted exactly (float64's zero "
            "tolerance), *f32, dtype*: float32 arrays with the dtype-aware default:", "",
            "| seed | input | exact | float64 weights | f32, 1e-10 | f32, dtype |"
            + (" regioncam (float32) |" if with_rc else ""),
            "| --- | --- | --- | --- | --- | --- |" + (" --- |" if with_rc else "")]
  for r in record["compositional_d8"]:
    lines.append(f"| {r['seed']} | {r['input']} | {r['exact']:,} | {r['ours']:,} | "
                 f"{r['ours_f32_weights']:,} | {r['ours_f32_dtype_tolerance']:,} |"
                 + (f" {r['regioncam']:,} |" if with_rc else ""))
  curves = record["pieces_vs_depth"]
  lines += ["", f"**Pieces on [0, 1] against depth** (width 4; random initialisations: "
            f"{curves['samples']} networks per depth, mean and max):", "",
            "| depth | compositional | default mean | default max | RAAI-like mean | "
            "RAAI-like max |", "| --- | --- | --- | --- | --- | --- |"]
  for i, d in enumerate(curves["depths"]):
    dft, raai = curves["default"][i], curves["raai_like"][i]
    lines.append(f"| {d} | {curves['compositional'][i]:,} | {dft['mean']:.1f} | {dft['max']} | "
                 f"{raai['mean']:.1f} | {raai['max']} |")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
