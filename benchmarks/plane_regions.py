"""Exact regions of networks with many inputs on a plane through three points.

Run from the repository root:

    .venv/bin/python benchmarks/plane_regions.py            # quick (default)
    .venv/bin/python benchmarks/plane_regions.py --full     # every size of the issue

(``pip install regioncam`` for the comparison.)

Parts:

1. The digits classifier of ``benchmarks/classify.py`` (``Linear`` or
   ``CompositionalDense`` hidden layer, trained here for ``--epochs``
   epochs), read with ``from_flax``: the plane through three test images
   of the digits 0, 1 and 2, ``plane_regions`` on its default square; count,
   median time, and an exactness check.
2. Random MLPs with 784 inputs (PyTorch's default initialisation), widths
   64..512 and depths 2..6 (quick: a subset), on the plane through three
   points ``c + spread * N(0, I)`` around a standard normal centre ``c``
   (``--spread``, default 0.25; wider planes have many more regions):
   regions and time of the enumeration (``maps="plane"``) and of the maps
   on the full input (``maps="full"``,
   while ``A`` stays below 2 GiB), and how the time grows with the number
   of regions (least-squares slope of log time on log regions).
3. regioncam (optional, float32): on the composed two-input network (the
   network composed with the plane, the input square mapped onto the same
   square) beside ``regions_2d`` of that network and ``plane_regions``; and
   regioncam's own ``through_points`` on the full-input network beside
   ``plane_regions`` on the same plane and square.

Exactness check (every part): one random point inside every region (at
most 3000 regions, halfway or more towards its vertex average), mapped to
the input space; a plain float64 NumPy forward pass there must give the
region's pattern wherever a pre-activation is clear of zero (more than
1e-6 of the sum of its terms' absolute values) and, with ``maps="full"``,
the network's value ``A x + c``.

Writes ``plane_regions.json``, ``plane_regions.md`` and (unless
``--no-figure``) ``plane_digits.png`` and ``plane_time.png`` into ``--out``
(default ``out/plane_regions``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)

import relucomp  # noqa: E402
from relucomp import _plane, _regions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402
import classify  # noqa: E402
from regions import default_init, regioncam, timed, timed_pair  # noqa: E402

LO, HI = _plane.DEFAULT_LO, _plane.DEFAULT_HI


# ------------------------------------------------------------ exactness

def check(params, points, parts, rng, *, most=3000):
  """Patterns and values at one interior point of (up to ``most``) regions."""
  layers = _regions.host_layers(params)
  pick = rng.choice(parts.count, min(parts.count, most), replace=False)
  y = np.stack([(0.5 / len(parts.vertices[r]) + 0.5 * rng.dirichlet(np.ones(len(
      parts.vertices[r])))) @ parts.vertices[r] for r in pick])
  x = points[0] + y @ (points[1:] - points[0])
  h, seen, clear = x, [], []
  for kernel, bias in layers[:-1]:
    z = h @ kernel + bias
    scale = np.abs(h) @ np.abs(kernel) + np.abs(bias)
    seen.append(z > 0)
    clear.append(np.abs(z) > 1e-6 * scale)
    h = np.maximum(z, 0.0)
  out = h @ layers[-1][0] + layers[-1][1]
  full = np.concatenate(parts.patterns, axis=1)[pick] if parts.patterns else np.zeros((len(pick), 0))
  seen = np.concatenate(seen, axis=1) if seen else full
  clear = np.concatenate(clear, axis=1) if clear else full
  row = {"checked": int(len(pick)), "pattern_mismatches": int(np.sum((seen != full) & clear)),
         "points_clear_of_all_lines": int(np.sum(clear.all(axis=1)))}
  if parts.A.shape[-1] == x.shape[1]:
    mapped = np.einsum("noi,ni->no", parts.A[pick], x) + parts.c[pick]
    ok = clear.all(axis=1)
    row["max_value_error"] = float(np.max(np.abs(mapped[ok] - out[ok]) / (1 + np.abs(out[ok]))))
  return row


# ------------------------------------------------------------ regioncam

def regioncam_composed(params, points):
  """regioncam's face count on the composed two-input network: Regioncam(1.0)
  covers [-1, 1]^2, mapped onto the plane's square by the first layer."""
  composed = _plane.compose_first_layer(_regions.host_layers(params), points[0],
                                        points[1:] - points[0])
  half = (HI[0] - LO[0]) / 2
  mid = (HI[0] + LO[0]) / 2
  first = composed[0]
  layers = [{"kernel": half * first["kernel"],
             "bias": first["bias"] + mid * first["kernel"].sum(axis=0)}] + composed[1:]
  cam = regioncam.Regioncam(1.0)
  for i, layer in enumerate(layers):
    cam.linear(np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32))
    if i < len(layers) - 1:
      cam.relu()
  return cam.num_faces


def regioncam_through(params, points):
  """regioncam's own plane through the points (on the full-input network):
  its face count, and its plane (origin, orthonormal axes, half-width)."""
  cam = regioncam.Regioncam.through_points(np.asarray(points, np.float32))
  for i, layer in enumerate(params):
    cam.linear(np.asarray(layer["kernel"], np.float32), np.asarray(layer["bias"], np.float32))
    if i < len(params) - 1:
      cam.relu()
  return cam.num_faces


def regioncam_plane(points):
  cam = regioncam.Regioncam.through_points(np.asarray(points, np.float32))
  half = float(np.max(np.abs(np.asarray(cam.vertex_inputs))))
  origin = np.asarray(cam.plane.bias, np.float64)
  axes = np.asarray(cam.plane.weight, np.float64)
  return np.vstack([origin, origin + axes]), half


def compare(params, points, repeats, *, through=True):
  """Ours against regioncam on one network and plane (see the module notes)."""
  layers = _regions.host_layers(params)
  composed = _plane.compose_first_layer(layers, points[0], points[1:] - points[0])
  fns = [lambda: relucomp.plane_regions(params, points, maps="plane"),
         lambda: relucomp.regions_2d(composed, LO, HI, value_rtol=_regions.value_rtol_for(params)),
         lambda: regioncam_composed(params, points)]
  (ours, ours_s, _), (direct, direct_s, _), (faces, rc_s, _) = timed_pair(fns, repeats)
  row = {"ours": ours.count, "ours_s": ours_s, "composed_regions_2d": direct.count,
         "composed_regions_2d_s": direct_s, "regioncam_composed": int(faces),
         "regioncam_composed_s": rc_s, "ratio_composed": rc_s / direct_s,
         "ratio_plane": rc_s / ours_s}
  if through:
    plane, half = regioncam_plane(points)
    fns = [lambda: relucomp.plane_regions(params, plane, lo=(-half, -half), hi=(half, half),
                                          maps="plane"),
           lambda: regioncam_through(params, points)]
    (same, same_s, _), (faces, through_s, _) = timed_pair(fns, repeats)
    row.update(ours_same_plane=same.count, ours_same_plane_s=same_s,
               regioncam_through_points=int(faces), regioncam_through_points_s=through_s,
               ratio_through_points=through_s / same_s)
  return row


# ------------------------------------------------------------------ parts

def part_digits(epochs, repeats, full_repeats, rng):
  x_train, x_test, y_train, y_test = classify.load_digits_split()
  x_train, x_test = classify.standardise(x_train, x_test)
  data = (x_train, x_test, y_train, y_test)
  n_in, n_classes = x_train.shape[1], 10
  p1, p2 = classify.compositional_counts(n_in, n_classes, hidden=32, units=32, depth=3)
  width = classify.matched_dense_width(n_in, n_classes, p2)
  models = {"nnx.Linear": classify.dense_model(n_in, n_classes, hidden=width, seed=0),
            "CompositionalDense": classify.compositional_model(n_in, n_classes, hidden=32,
                                                               units=32, depth=3, seed=0)}
  points = np.stack([x_test[np.flatnonzero(y_test == d)[0]] for d in (0, 1, 2)]).astype(np.float64)
  rows, shown = [], {}
  for name, model in models.items():
    run = classify.train(model, data, epochs=epochs, batch=128, learning_rate=1e-3, seed=0,
                         switch_epoch=epochs // 2 if name == "CompositionalDense" else None)
    params = relucomp.from_flax(model)
    parts, wall, cpu = timed(lambda: relucomp.plane_regions(params, points), full_repeats)
    _, wall_plane, _ = timed(lambda: relucomp.plane_regions(params, points, maps="plane"),
                             repeats)
    row = {"model": name, "accuracy": run["accuracy"][-1], "layers": [
        list(np.shape(p["kernel"])) for p in params], "regions": parts.count, "wall_s": wall,
        "cpu_s": cpu, "wall_s_plane_maps": wall_plane, **check(params, points, parts, rng)}
    if regioncam is not None:
      row.update(compare(params, points, repeats))
    rows.append(row)
    shown[name] = parts
    print(f"  digits, {name}: accuracy {row['accuracy']:.3f}, {parts.count} regions, "
          f"{1e3 * wall:.1f} ms (maps on the plane {1e3 * wall_plane:.1f} ms), "
          f"{row['pattern_mismatches']} pattern mismatches in {row['checked']} points", flush=True)
  return rows, shown


def part_random(widths, depths, repeats, rng, with_regioncam, spread):
  rows = []
  for w in widths:
    for d in depths:
      params = default_init(np.random.default_rng(1000 * w + d), [784] + [w] * d + [10])
      gen = np.random.default_rng(w + d)
      points = gen.normal(size=784) + spread * gen.normal(size=(3, 784))
      flat, wall, cpu = timed(lambda: relucomp.plane_regions(params, points, maps="plane"),
                              repeats)
      row = {"width": w, "depth": d, "regions": flat.count, "wall_s": wall, "cpu_s": cpu,
             "us_per_region": 1e6 * wall / flat.count}
      size = 8 * flat.count * 10 * 784
      if size <= _plane.FULL_MAPS_MAX_BYTES // 4:
        full, wall_full, _ = timed(lambda: relucomp.plane_regions(params, points), 1)
        row.update(wall_s_full=wall_full, **check(params, points, full, rng))
      else:
        row.update(check(params, points, flat, rng))
      if with_regioncam and regioncam is not None:
        row.update(compare(params, points, repeats if flat.count < 20000 else 1,
                           through=(w, d) == (widths[0], depths[0])))
      rows.append(row)
      print(f"  784 inputs, width {w}, depth {d}: {flat.count} regions, {1e3 * wall:.1f} ms "
            f"({row['us_per_region']:.1f} us per region)"
            + (f", full maps {1e3 * row['wall_s_full']:.0f} ms" if "wall_s_full" in row else "")
            + (f"; regioncam on the composed net {1e3 * row['regioncam_composed_s']:.1f} ms"
               if "regioncam_composed_s" in row else ""), flush=True)
  counts = np.log([r["regions"] for r in rows])
  slope = float(np.polyfit(counts, np.log([r["wall_s"] for r in rows]), 1)[0]) if len(rows) > 2 \
      else None
  full_rows = [r for r in rows if "wall_s_full" in r]
  slope_full = (float(np.polyfit(np.log([r["regions"] for r in full_rows]),
                                 np.log([r["wall_s_full"] for r in full_rows]), 1)[0])
                if len(full_rows) > 2 else None)
  return rows, slope, slope_full


def figures(out, shown, rows):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 5))
  for ax, (name, parts) in zip(np.atleast_1d(axes), shown.items()):
    relucomp.plot_partition(parts, ax=ax, labels=["digit 0", "digit 1", "digit 2"])
    ax.set_title(f"{name}: {parts.count} regions")
  fig.suptitle("Digits classifier: the plane through three test images")
  fig.tight_layout()
  fig.savefig(out / "plane_digits.png", dpi=110)
  plt.close(fig)
  fig, ax = plt.subplots(figsize=(6, 4))
  counts = np.array([r["regions"] for r in rows])
  ax.loglog(counts, [r["wall_s"] for r in rows], "o", label="plane_regions, maps='plane'")
  full = [r for r in rows if "wall_s_full" in r]
  if full:
    ax.loglog([r["regions"] for r in full], [r["wall_s_full"] for r in full], "s",
              label="plane_regions, maps='full'")
  rc = [r for r in rows if "regioncam_composed_s" in r]
  if rc:
    ax.loglog([r["regions"] for r in rc], [r["regioncam_composed_s"] for r in rc], "^",
              label="regioncam, composed 2-input net")
  ax.set_xlabel("regions")
  ax.set_ylabel("seconds")
  ax.set_title("784 inputs, widths 64..512, depths 2..6")
  ax.legend()
  ax.grid(alpha=0.3, which="both")
  fig.tight_layout()
  fig.savefig(out / "plane_time.png", dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--full", action="store_true", help="every size of the issue")
  size.add_argument("--quick", action="store_true", help="small sizes (the default)")
  parser.add_argument("--epochs", type=int, default=None, help="digits training epochs")
  parser.add_argument("--spread", type=float, default=0.25,
                      help="size of the random triangles around their centre")
  parser.add_argument("--out", default="out/plane_regions")
  parser.add_argument("--no-figure", action="store_true")
  args = parser.parse_args(argv)
  full = args.full and not args.quick
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  repeats = 5 if full else 3
  print(f"plane_regions benchmark ({'full' if full else 'quick'}); {os.cpu_count()} cpus, load "
        f"average {os.getloadavg()[0]:.1f}; regioncam "
        f"{getattr(regioncam, '__version__', 'installed') if regioncam else 'not installed'}")
  relucomp.regions_2d(default_init(rng, [2, 4, 1]), [-1, -1], [1, 1])   # load compiled code
  digits, shown = part_digits(args.epochs or (20 if full else 8), repeats,
                              repeats if full else 1, rng)
  widths = [64, 128, 256, 512] if full else [64, 128, 256]
  depths = [2, 3, 4, 5, 6] if full else [2, 3]
  rows, slope, slope_full = part_random(widths, depths, repeats, rng, with_regioncam=True,
                                        spread=args.spread)
  if not args.no_figure:
    figures(out, shown, rows)
  record = {"mode": "full" if full else "quick", "repeats": repeats,
            "regioncam": getattr(regioncam, "__version__", "installed") if regioncam else None,
            "digits": digits, "random": rows, "spread": args.spread, "time_exponent": slope,
            "time_exponent_full_maps": slope_full}
  print(f"\ntime ~ regions^{slope:.2f} (enumeration)" + (
      f", regions^{slope_full:.2f} with maps on the full input" if slope_full else ""))
  size = (f"{'full' if full else 'quick'}: widths {widths}, depths {depths}, "
          f"median of {repeats} runs")
  md = _results.write(out, "plane_regions", record, markdown, script=__file__, argv=argv,
                      size=size)
  print(md.read_text())


def _ms(value):
  return "-" if value is None else f"{1e3 * value:.1f}"


def markdown(record):
  with_rc = record["regioncam"] is not None
  lines = ["**Digits classifier, plane through three test images (digits 0, 1, 2)**, "
           "default square $[-0.25, 1.25]^2$, maps on the full input:", "",
           "| model | accuracy | regions | ms | ms (`maps='plane'`) | points checked | "
           "pattern mismatches | max value error |" + (
               " regioncam (composed) | its ms | ratio |" if with_rc else ""),
           "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- |"
                                                                  if with_rc else "")]
  for r in record["digits"]:
    lines.append(f"| {r['model']} | {r['accuracy']:.3f} | {r['regions']:,} | {_ms(r['wall_s'])} | "
                 f"{_ms(r['wall_s_plane_maps'])} | {r['checked']} | {r['pattern_mismatches']} | "
                 f"{r.get('max_value_error', float('nan')):.1e} |" + (
                     f" {r['regioncam_composed']:,} | {_ms(r['regioncam_composed_s'])} | "
                     f"{r['ratio_composed']:.1f} |" if with_rc else ""))
  lines += ["", "**Random MLPs with 784 inputs and 10 outputs** (default initialisation), plane "
            f"through three points $c + {record['spread']:g}\\,N(0, I)$ around a standard "
            "normal centre $c$, default square; *enumeration*: "
            "`maps='plane'`; *full maps*: `maps='full'` (skipped above 0.5 GiB of `A`):", "",
            "| width | depth | regions | enumeration ms | us per region | full maps ms | "
            "mismatches / checked |" + (" regioncam (composed) | its ms | regions_2d of "
                                        "the composed net, ms | ratio |" if with_rc else ""),
            "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- | --- |"
                                                              if with_rc else "")]
  for r in record["random"]:
    lines.append(f"| {r['width']} | {r['depth']} | {r['regions']:,} | {_ms(r['wall_s'])} | "
                 f"{r['us_per_region']:.1f} | {_ms(r.get('wall_s_full'))} | "
                 f"{r['pattern_mismatches']} / {r['checked']} |" + (
                     f" {r['regioncam_composed']:,} | {_ms(r['regioncam_composed_s'])} | "
                     f"{_ms(r['composed_regions_2d_s'])} | {r['ratio_composed']:.1f} |"
                     if with_rc and "regioncam_composed" in r else ""))
  lines += ["", f"Time against regions (least-squares slope of log time on log regions): "
            f"enumeration $\\propto$ regions^{record['time_exponent']:.2f}"
            + (f", with the full maps regions^{record['time_exponent_full_maps']:.2f}"
               if record["time_exponent_full_maps"] else "") + "."]
  through = [r for r in record["digits"] + record["random"] if "regioncam_through_points" in r]
  if through:
    lines += ["", "**regioncam's own `through_points`** (the full-input network, its plane and "
              "square) beside `plane_regions` on the same plane and square:", "",
              "| network | regioncam faces | its ms | ours regions | ours ms | ratio |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in through:
      name = r.get("model") or f"784-{r['width']}x{r['depth']}"
      lines.append(f"| {name} | {r['regioncam_through_points']:,} | "
                   f"{_ms(r['regioncam_through_points_s'])} | {r['ours_same_plane']:,} | "
                   f"{_ms(r['ours_same_plane_s'])} | {r['ratio_through_points']:.0f} |")
  lines += ["", "ratio: regioncam's time over relucomp's (> 1: relucomp is faster); regioncam "
            "runs in float32, so its counts differ slightly where regions are thin."]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
