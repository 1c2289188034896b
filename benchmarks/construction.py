"""The construction at a glance: pieces, x^2 error and weight size per depth.

For depths 1..12 (``--max-depth``) this builds Yarotsky's special case of the
compositional network (every peak 1/2, amplitude 1/4) and a network from
random peaks under the differentiability law, then prints

* the exact number of linear pieces of each MLP on [0, 1],
* the largest error of Yarotsky's network against x^2 (bound 2^-(2d+2)),
* the largest kernel entry of each MLP,

writes the table as ``construction.json`` and ``construction.md`` (with the
command) and draws a figure in the style of the paper's Figure 1 (unless
``--no-figure``): composed triangle waves, the approximations of x^2 and
their derivatives.

    python benchmarks/construction.py [--max-depth 12] [--out out/construction]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import relucomp  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _results  # noqa: E402


def _row(d: int, rng: np.random.Generator) -> dict:
  half = jnp.full(d + 1, 0.5)
  yarotsky = relucomp.compositional_mlp(half, relucomp.enforced_scales(half, 0.25))
  x = jnp.linspace(0.0, 1.0, 2 ** (d + 3) + 1)
  error = float(jnp.max(jnp.abs(relucomp.mlp_apply(yarotsky, x[:, None])[:, 0] - x**2)))
  peaks = jnp.asarray(rng.uniform(0.1, 0.9, d + 1))
  law = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.3))
  largest = lambda params: max(float(jnp.max(jnp.abs(p["kernel"]))) for p in params)
  return {
      "depth": d,
      "pieces_yarotsky": relucomp.linear_pieces_1d(yarotsky, 0.0, 1.0).count,
      "pieces_random_peaks": relucomp.linear_pieces_1d(law, 0.0, 1.0).count,
      "expected_pieces": 2**d,
      "max_error_x2": error,
      "error_bound": 2.0 ** (-2 * d - 2),
      "max_weight_yarotsky": largest(yarotsky),
      "max_weight_random_peaks": largest(law),
  }


def _figure(path: pathlib.Path, depths=(1, 2, 3, 4)) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  x = jnp.linspace(0.0, 1.0, 4097)
  half = jnp.full(max(depths) + 1, 0.5)
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
  waves = relucomp.triangle_waves(x, half[: max(depths)])
  for d in depths:
    axes[0].plot(x, waves[d - 1], lw=1.2, label=f"$W_{d}$")
    params = relucomp.compositional_mlp(half[: d + 1], relucomp.enforced_scales(half[: d + 1], 0.25))
    y = relucomp.mlp_apply(params, x[:, None])[:, 0]
    axes[1].plot(x, y, lw=1.2, label=f"$F_{d}$")
    mid = 0.5 * (x[1:] + x[:-1])
    axes[2].step(mid, jnp.diff(y) / jnp.diff(x), where="mid", lw=1.2, label=f"$F_{d}'$")
  axes[1].plot(x, x**2, "k--", lw=1, label="$x^2$")
  axes[2].plot(x, 2 * x, "k--", lw=1, label="$2x$")
  titles = ("composed triangle waves (peaks 1/2)", "approximations of $x^2$",
            "their derivatives")
  for ax, title in zip(axes, titles):
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
  axes[0].set_ylabel("wave value")
  axes[1].set_ylabel("F(x)")
  axes[2].set_ylabel("F'(x)")
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--max-depth", type=int, default=12)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/construction"))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no-figure", action="store_true", help="the table only")
  args = parser.parse_args(argv)
  if args.max_depth < 1:
    parser.error("--max-depth must be at least 1")
  args.out.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(args.seed)
  start = time.perf_counter()
  rows = [_row(d, rng) for d in range(1, args.max_depth + 1)]
  header = (f"{'depth':>5} {'pieces':>8} {'pieces (random peaks)':>22} {'2^d':>8} "
            f"{'max |F - x^2|':>14} {'bound 2^-(2d+2)':>16} {'max |w|':>8} {'max |w| (random)':>17}")
  print(header)
  print("-" * len(header))
  for r in rows:
    print(f"{r['depth']:>5} {r['pieces_yarotsky']:>8} {r['pieces_random_peaks']:>22} "
          f"{r['expected_pieces']:>8} {r['max_error_x2']:>14.3e} {r['error_bound']:>16.3e} "
          f"{r['max_weight_yarotsky']:>8.3f} {r['max_weight_random_peaks']:>17.3f}")
  result = {"rows": rows, "seed": args.seed, "seconds": time.perf_counter() - start}
  md = _results.write(args.out, "construction", result, markdown, script=__file__, argv=argv,
                      size=f"depths 1 to {args.max_depth}, float64")
  print(f"\ntable:  {args.out / 'construction.json'}, {md}")
  if not args.no_figure:
    figure = args.out / "construction.png"
    _figure(figure)
    print(f"figure: {figure}")
  return result


def markdown(result: dict) -> str:
  """The table of ``construction.json`` (without the command header) as Markdown."""
  lines = ["**The construction per depth $d$**: exact linear pieces on [0, 1] "
           "(`linear_pieces_1d`) of Yarotsky's network (every peak 1/2, amplitude 1/4) and "
           "of a network from random peaks in [0.1, 0.9] under the law (amplitude 0.3); the "
           "largest error of Yarotsky's network against $x^2$ with its bound "
           "$2^{-(2d+2)}$; the largest kernel entry of each network.", "",
           "| $d$ | pieces | pieces (random peaks) | $2^d$ | error against $x^2$ | bound | "
           "largest weight | largest weight (random peaks) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in result["rows"]:
    lines.append(f"| {r['depth']} | {r['pieces_yarotsky']:,} | {r['pieces_random_peaks']:,} | "
                 f"{r['expected_pieces']:,} | {r['max_error_x2']:.3e} | {r['error_bound']:.3e} | "
                 f"{r['max_weight_yarotsky']:.3f} | {r['max_weight_random_peaks']:.3f} |")
  lines += ["", f"Time: {result['seconds']:.1f} s."]
  return "\n".join(lines)


if __name__ == "__main__":
  main()
