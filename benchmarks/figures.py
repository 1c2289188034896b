"""Regenerates every figure of the documentation into ``docs/figures/``.

    python benchmarks/figures.py              # all figures
    python benchmarks/figures.py --list       # names of the registered figures
    python benchmarks/figures.py network_neurons --out /tmp/figs

Each figure is a function registered with ``@figure("name")`` that returns a
matplotlib ``Figure``; the runner saves it as ``<out>/<name>.png``. To add a
figure, write such a function in this file (or import a module that registers
more), give its axes labels and a title, and link the PNG from a page as
``figures/<name>.png``. Everything is computed in float64 with relucomp's
public functions, and the PNGs carry no time stamp, so an unchanged figure
regenerates to the same bytes.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Callable

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import relucomp  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "figures"

FigureFn = Callable[[], "matplotlib.figure.Figure"]
FIGURES: dict[str, FigureFn] = {}

# The documentation's content column is about 700-800 pixels wide: figures
# are drawn at that width so that their text keeps its size on the page.
PAGE_WIDTH = 8.0
DPI = 100

plt.rcParams.update({
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
})


def figure(name: str) -> Callable[[FigureFn], FigureFn]:
  """Registers a function returning a matplotlib figure under ``name``."""
  def register(fn: FigureFn) -> FigureFn:
    if name in FIGURES:
      raise ValueError(f"figure name {name!r} is registered twice.")
    FIGURES[name] = fn
    return fn
  return register


def _derivative(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  return jax.vmap(jax.grad(fn))(x)


# --- The paper's Figure 1: triangle waves and the x^2 approximations

@figure("triangle_waves_x2")
def triangle_waves_x2():
  """Waves W_1..W_4 (peaks 1/2), the partial sums F_d -> x^2, their slopes."""
  depth = 4
  x = jnp.linspace(0.0, 1.0, 2001)
  peaks = jnp.full(depth + 1, 0.5)
  scales = relucomp.enforced_scales(peaks, 0.25)          # s_i = 4^-i
  waves = relucomp.triangle_waves(x, peaks[:depth])
  # Midpoints of a grid that never hits a kink (kinks sit at multiples of 2^-d).
  xm = (jnp.arange(4000) + 0.5) / 4000

  fig, axes = plt.subplots(3, 1, figsize=(PAGE_WIDTH, 9.5), sharex=True)
  colors = plt.cm.viridis(jnp.linspace(0.0, 0.85, depth + 1))
  for k in range(depth):
    axes[0].plot(x, waves[k], color=colors[k + 1], lw=1.3, label=f"$W_{k + 1}$")
  axes[0].set_ylabel("wave value")
  axes[0].set_title("Composed triangle waves $W_k = T_{1/2} \\circ W_{k-1}$: "
                    "$2^k$ linear pieces")
  axes[0].set_ylim(-0.05, 1.32)
  axes[0].legend(loc="upper center", ncol=depth)

  axes[1].plot(x, x ** 2, color="k", lw=2.2, ls="--", label="$x^2$")
  for d in range(depth + 1):
    if d == 0:
      f = x
    else:
      f = relucomp.compositional(x, peaks[:d], scales[:d])
    axes[1].plot(x, f, color=colors[d], lw=1.2, label=f"$F_{d}$")
  axes[1].set_ylabel("$F_d(x)$")
  axes[1].set_title("Partial sums $F_d(x) = x - 4^{-1} W_1(x) - \\dots - 4^{-d} W_d(x)$ "
                    "approach $x^2$")
  axes[1].legend(loc="upper left", ncol=3)

  axes[2].plot(xm, 2 * xm, color="k", lw=2.2, ls="--", label="$2x$")
  for d in range(depth + 1):
    if d == 0:
      df = jnp.ones_like(xm)
    else:
      df = _derivative(
          lambda t, d=d: relucomp.compositional(t, peaks[:d], scales[:d]), xm)
    axes[2].plot(xm, df, color=colors[d], lw=1.2, label=f"$F_{d}'$")
  axes[2].set_ylabel("$F_d'(x)$")
  axes[2].set_xlabel("$x$")
  axes[2].set_title("Their derivatives: steps that approach $2x$")
  axes[2].legend(loc="upper left", ncol=3)
  axes[2].set_xlim(0, 1)
  fig.tight_layout()
  return fig


# --- The paper's Figure 3: the outputs of every neuron of the 4-wide network

NETWORK_PEAKS = (0.35, 0.6, 0.45, 0.55, 0.5)
NETWORK_AMPLITUDE = 0.2


def hidden_outputs(params: list[dict[str, jax.Array]], x: jax.Array) -> list[jax.Array]:
  """Post-ReLU outputs of each hidden layer at inputs ``x`` of shape (n,).

  Layer ``k`` is read by applying the first ``k`` layers followed by an
  identity read-out, so :func:`relucomp.mlp_apply` does the work.
  """
  outputs = []
  for k in range(1, len(params)):
    width = params[k - 1]["kernel"].shape[1]
    readout = {"kernel": jnp.eye(width), "bias": jnp.zeros(width)}
    outputs.append(relucomp.mlp_apply(list(params[:k]) + [readout], x[:, None]))
  return outputs


@figure("network_neurons")
def network_neurons():
  """Each neuron's output over x in [0, 1], per hidden layer, and the output."""
  peaks = jnp.asarray(NETWORK_PEAKS)
  scales = relucomp.enforced_scales(peaks, NETWORK_AMPLITUDE)
  params = relucomp.compositional_mlp(peaks, scales)
  depth = len(params) - 1
  x = jnp.linspace(0.0, 1.0, 2001)
  hidden = hidden_outputs(params, x)
  offset = -params[-1]["bias"][0]              # the constant C kept in acc
  y = relucomp.mlp_apply(params, x[:, None])[:, 0]
  names = dict(zip(relucomp.NEURONS, range(4)))
  colors = {"t": "tab:blue", "u": "tab:orange", "c": "tab:green", "acc": "tab:purple"}

  fig, axes = plt.subplots(2, depth + 1, figsize=(PAGE_WIDTH, 5.6),
                           sharex=True, gridspec_kw={"hspace": 0.35})
  for k, h in enumerate(hidden):
    top = axes[0, k]
    # The outputs shrink with depth; each panel shows them in units of a
    # power of ten named in its title (no offset text crowding the title).
    shown = [names[neuron] for neuron in ("t", "u", "c")]
    exponent = int(np.floor(np.log10(float(jnp.max(h[:, shown])))))
    unit = 10.0 ** exponent
    for neuron in ("t", "u", "c"):
      top.plot(x, h[:, names[neuron]] / unit, color=colors[neuron], lw=1.3,
               ls="--" if neuron == "c" else "-", label=neuron)
    top.set_title(f"layer {k + 1}: $t, u, c$" + (
        f"\n(unit $10^{{{exponent}}}$)" if exponent else "\n"), fontsize=11)
    bottom = axes[1, k]
    bottom.plot(x, h[:, names["acc"]] - offset, color=colors["acc"], lw=1.3,
                label="acc $- C$")
    bottom.set_title(f"acc $- C = F_{k}$", fontsize=11)
    bottom.set_xlabel("input $x$")
  axes[0, 0].set_ylabel("neuron output")
  axes[1, 0].set_ylabel("neuron output $- C$")
  axes[0, 0].legend(loc=(0.03, 0.42), fontsize=9.5, handlelength=1.5)

  axes[0, depth].plot(x, relucomp.triangle_waves(x, peaks[:depth])[-1],
                      color="tab:gray", lw=1.2)
  axes[0, depth].set_title(f"$W_{depth}$, {2 ** depth} pieces\n", fontsize=11)
  axes[1, depth].plot(x, y, color="k", lw=1.5)
  axes[1, depth].set_title(f"output $F_{depth}$", fontsize=11)
  axes[1, depth].set_xlabel("input $x$")
  for ax in axes.flat:
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=9.5)
  fig.suptitle(
      f"Neurons of the 4-wide compositional network, depth {depth}, peaks "
      + ", ".join(f"{a:g}" for a in NETWORK_PEAKS[:depth]), fontsize=12)
  fig.subplots_adjust(left=0.08, right=0.99, top=0.83, bottom=0.09, wspace=0.45,
                      hspace=0.45)
  return fig


# --- The paper's Figure 5: a default network's neurons against the construction's

DEFAULT_DEPTH = 5
DEFAULT_SEED = 0


def kaiming_uniform_mlp(key: jax.Array, widths: list[int]) -> list[dict[str, jax.Array]]:
  """PyTorch's default ``nn.Linear`` initialisation, as relucomp params.

  Weights and biases are drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
  """
  params = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    key, k_w, k_b = jax.random.split(key, 3)
    bound = 1.0 / jnp.sqrt(n_in)
    params.append({
        "kernel": jax.random.uniform(k_w, (n_in, n_out), minval=-bound, maxval=bound),
        "bias": jax.random.uniform(k_b, (n_out,), minval=-bound, maxval=bound),
    })
  return params


def pre_activations(params: list[dict[str, jax.Array]], x: jax.Array) -> list[jax.Array]:
  """Each hidden layer's pre-activations at inputs ``x`` of shape (n,).

  The network cut after layer ``k`` ends in that layer, linear, so
  :func:`relucomp.mlp_apply` of the first ``k`` layers is its pre-activation.
  """
  return [relucomp.mlp_apply(list(params[:k]), x[:, None])
          for k in range(1, len(params))]


@figure("default_vs_compositional")
def default_vs_compositional():
  """Pre-activations per layer: a default-initialised MLP against the construction."""
  depth = DEFAULT_DEPTH
  x = jnp.linspace(0.0, 1.0, 1001)
  default = kaiming_uniform_mlp(jax.random.key(DEFAULT_SEED), [1] + [4] * depth + [1])
  peaks = jnp.asarray(NETWORK_PEAKS + (0.5,))[: depth + 1]
  constructed = relucomp.compositional_mlp(
      peaks, relucomp.enforced_scales(peaks, NETWORK_AMPLITUDE))
  rows = {"default initialisation": default, "compositional, untrained": constructed}
  fig, axes = plt.subplots(2, depth, figsize=(PAGE_WIDTH, 5.6), sharex=True)
  for r, (label, params) in enumerate(rows.items()):
    for k, pre in enumerate(pre_activations(params, x)):
      ax = axes[r, k]
      scale = jnp.maximum(jnp.max(jnp.abs(pre), axis=0), 1e-30)
      # Takes both signs, beyond rounding: the neuron bends somewhere in [0, 1].
      tol = 1e-9 * scale
      crossing = int(jnp.sum(jnp.any(pre > tol, axis=0) & jnp.any(pre < -tol, axis=0)))
      for j in range(pre.shape[1]):
        ax.plot(x, pre[:, j] / scale[j], lw=1.2)
      ax.axhline(0.0, color="k", lw=0.8)
      ax.set_title(f"layer {k + 1}\n{crossing}/4 change sign", fontsize=10)
      ax.set_ylim(-1.1, 1.1)
      ax.tick_params(labelsize=9)
      if r == 1:
        ax.set_xlabel("input $x$")
    axes[r, 0].set_ylabel(f"{label}\npre-activation / max", fontsize=10)
  fig.suptitle("Which neurons bend? Pre-activations over $x \\in [0, 1]$, each "
               "scaled to a maximum of 1", fontsize=11.5)
  fig.tight_layout()
  return fig


# --- The differentiability law at random peaks -------------------------------

LAW_DEPTH = 8
LAW_SEED = 0


@figure("law_derivatives")
def law_derivatives():
  """F' and its jumps at random peaks: scales from the law versus 4^-i."""
  key = jax.random.key(LAW_SEED)
  peaks = jax.random.uniform(key, (LAW_DEPTH + 1,), minval=0.2, maxval=0.8)
  amplitude = 0.2
  choices = {
      "law: $s_{i+1} = s_i (1 - a_{i+1}) a_{i+2}$":
          relucomp.enforced_scales(peaks, amplitude),
      "ignoring the law: $s_{i+1} = s_i / 4$":
          amplitude * 0.25 ** jnp.arange(LAW_DEPTH),
  }
  # Midpoints of a grid fine enough to put at most one kink between two of them.
  xm = (jnp.arange(100000) + 0.5) / 100000
  fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4.6))
  largest = []
  for (label, scales), color in zip(choices.items(), ("tab:blue", "tab:red")):
    slope = _derivative(lambda t, s=scales: relucomp.compositional(t, peaks, s), xm)
    axes[0].plot(xm, slope, color=color, lw=1.0, label=label)
    jumps = jnp.abs(jnp.diff(slope))
    kinks = jumps > 1e-12
    axes[1].semilogy(((xm[1:] + xm[:-1]) / 2)[kinks], jumps[kinks], ".",
                     color=color, ms=3)
    largest.append(f"{label} (largest jump {float(jumps.max()):.2f})")
  axes[0].set_title(f"$F'(x)$, depth {LAW_DEPTH}, random peaks")
  axes[0].set_xlabel("$x$")
  axes[0].set_ylabel("$F'(x)$")
  axes[1].set_title(f"jump of $F'$ at each of the {2 ** LAW_DEPTH - 1} kinks")
  axes[1].set_xlabel("kink position $x$")
  axes[1].set_ylabel("$|$jump of $F'|$ (log scale)")
  for ax in axes:
    ax.set_xlim(0, 1)
  fig.legend(axes[0].get_lines(), largest, loc="lower center", ncol=1, fontsize=11)
  fig.tight_layout(rect=(0, 0.15, 1, 1))
  return fig


# --- Exact pieces: versus depth, during training, a 2-D partition -----------

PIECES_MAX_DEPTH = 10
PIECES_SAMPLES = 50
PIECES_SEED = 0


def default_init_numpy(rng: np.random.Generator, widths: list[int]) -> list[dict]:
  """PyTorch's default ``nn.Linear`` initialisation (as ``fit``'s ``"kaiming"``
  method draws it): weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
  drawn with NumPy (many small networks, nothing to compile)."""
  params = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    bound = 1.0 / np.sqrt(n_in)
    params.append({"kernel": rng.uniform(-bound, bound, (n_in, n_out)),
                   "bias": rng.uniform(-bound, bound, n_out)})
  return params


@figure("pieces_vs_depth")
def pieces_vs_depth():
  """Exact pieces on [0, 1] against depth: compositional versus default init."""
  depths = list(range(1, PIECES_MAX_DEPTH + 1))
  key = jax.random.key(PIECES_SEED)
  rng = np.random.default_rng(PIECES_SEED)
  compositional, stats = [], []
  for d in depths:
    key, k_peaks = jax.random.split(key)
    peaks = jax.random.uniform(k_peaks, (d + 1,), minval=0.2, maxval=0.8)
    params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.2))
    compositional.append(relucomp.linear_pieces_1d(params, 0.0, 1.0).count)
    counts = [relucomp.linear_pieces_1d(default_init_numpy(rng, [1] + [4] * d + [1]),
                                        0.0, 1.0).count
              for _ in range(PIECES_SAMPLES)]
    stats.append((min(counts), float(np.median(counts)), float(np.mean(counts)), max(counts)))
  low, median, mean, high = (list(column) for column in zip(*stats))

  fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.6))
  ax.semilogy(depths, [2.0 ** d for d in depths], color="0.6", lw=4, alpha=0.5,
              label="$2^d$")
  ax.semilogy(depths, compositional, "o-", color="tab:blue",
              label="compositional, random peaks in [0.2, 0.8]")
  ax.fill_between(depths, low, high, color="tab:red", alpha=0.15,
                  label=f"default init: min to max of {PIECES_SAMPLES} networks")
  ax.semilogy(depths, mean, "s-", color="tab:red", label="default init: mean")
  ax.semilogy(depths, median, "^:", color="tab:red", label="default init: median")
  ax.set_xlabel("depth $d$ (hidden layers of width 4)")
  ax.set_ylabel("exact linear pieces on [0, 1]")
  ax.set_xticks(depths)
  ax.set_title("Linear pieces versus depth (linear_pieces_1d)")
  ax.legend(loc="upper left")
  fig.tight_layout()
  return fig


TRAIN_DEPTH = 5
TRAIN_MODELS = 3
TRAIN_STEPS = (300, 300)          # stage 1, stage 2 (one-stage methods: the sum)
TRAIN_EVERY = 20
TRAIN_POINTS = 200
METHOD_LABELS = {
    "enforced": "enforced",
    "free_scales": "not enforced",
    "no_pretrain": "no pretraining",
    "kaiming": "default init",
    "raai": "RAAI",
}
METHOD_COLORS = {
    "enforced": "tab:blue",
    "free_scales": "tab:cyan",
    "no_pretrain": "tab:green",
    "kaiming": "tab:red",
    "raai": "tab:orange",
}
_TRAINED: dict = {}


def trained_x3():
  """One small batch of fits of x^3 per method (computed once, shared)."""
  if not _TRAINED:
    x = jnp.linspace(0.0, 1.0, TRAIN_POINTS)
    keys = jax.random.split(jax.random.key(0), TRAIN_MODELS)
    for method in METHOD_LABELS:
      result = relucomp.fit_batch(
          x, x ** 3, keys=keys, method=method, depth=TRAIN_DEPTH,
          pretrain_steps=TRAIN_STEPS[0], finetune_steps=TRAIN_STEPS[1],
          track_pieces_every=TRAIN_EVERY)
      _TRAINED[method] = (result, relucomp.pieces_history(result))
    _TRAINED["x"] = x
  return _TRAINED


@figure("pieces_during_training")
def pieces_during_training():
  """Exact pieces of x^3 fits during training, per method (pieces_history)."""
  trained = trained_x3()
  fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 5.0))
  for method, label in METHOD_LABELS.items():
    _, history = trained[method]
    counts = history.counts                      # (models, snapshots)
    color = METHOD_COLORS[method]
    for i in range(counts.shape[0]):
      ax.plot(history.steps, counts[i], color=color, lw=1.3, alpha=0.8,
              label=label if i == 0 else None)
  top = max(int(trained[m][1].counts.max()) for m in METHOD_LABELS) + 6
  ax.axvline(TRAIN_STEPS[0], color="k", ls=":", lw=1)
  ax.text(TRAIN_STEPS[0] + 8, top - 4, "stage 2 starts", fontsize=10)
  ax.axhline(2 ** TRAIN_DEPTH, color="0.6", lw=4, alpha=0.4)
  ax.set_xlabel("training step")
  ax.set_ylabel("exact linear pieces on [0, 1]")
  ax.set_ylim(0, top)
  ax.set_title(f"Pieces during training on $x^3$, depth {TRAIN_DEPTH} "
               f"($2^{TRAIN_DEPTH}$ = {2 ** TRAIN_DEPTH}, grey), {TRAIN_MODELS} models per method")
  ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5, fontsize=10,
            handlelength=1.5, columnspacing=1.2)
  fig.tight_layout()
  return fig


@figure("fits_per_setup")
def fits_per_setup():
  """Best fit of x^3 and its error per training setup (small run)."""
  trained = trained_x3()
  x = trained["x"]
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 7.2), sharex=True)
  top.plot(x, x ** 3, color="k", lw=3, alpha=0.35, label="$x^3$")
  for method, label in METHOD_LABELS.items():
    result, _ = trained[method]
    best = int(jnp.argmin(result.mse))
    params = jax.tree.map(lambda a, best=best: a[best], result.params)
    y = relucomp.mlp_apply(params, x[:, None])[:, 0]
    color = METHOD_COLORS[method]
    top.plot(x, y, color=color, lw=1.3,
             label=f"{label}: best MSE {float(result.mse[best]):.1e}, "
                   f"mean {float(result.mse.mean()):.1e}")
    bottom.semilogy(x, jnp.abs(y - x ** 3) + 1e-12, color=color, lw=1.1)
  top.set_ylabel("$y$")
  top.set_title(f"Fits of $x^3$: best of {TRAIN_MODELS} models per setup, depth "
                f"{TRAIN_DEPTH}, {sum(TRAIN_STEPS)} steps")
  top.legend(loc="upper left", fontsize=9.5)
  bottom.set_ylabel("$|$error$|$ (log scale)")
  bottom.set_xlabel("$x$")
  bottom.set_ylim(1e-7, 1)
  bottom.set_xlim(0, 1)
  fig.tight_layout()
  return fig


PARTITION_WIDTHS = (2, 16, 16, 16, 1)
PARTITION_SEED = 3


@figure("partition_2d")
def partition_2d():
  """Exact regions of a random 2-input MLP on [-1, 1]^2 (regions_2d)."""
  params = kaiming_uniform_mlp(jax.random.key(PARTITION_SEED), list(PARTITION_WIDTHS))
  partition = relucomp.regions_2d(params, (-1.0, -1.0), (1.0, 1.0))
  fig, (left, right) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.9))
  relucomp.plot_partition(partition, ax=left, linewidth=0.3)
  left.set_title(f"{partition.count} regions, each its own colour")
  grid = jnp.linspace(-1.0, 1.0, 301)
  g0, g1 = jnp.meshgrid(grid, grid)
  out = relucomp.mlp_apply(params, jnp.stack([g0.ravel(), g1.ravel()], axis=1))[:, 0]
  image = right.imshow(out.reshape(g0.shape), origin="lower", extent=(-1, 1, -1, 1),
                       cmap="viridis")
  from matplotlib.collections import PolyCollection
  right.add_collection(PolyCollection(partition.vertices, facecolors="none",
                                      edgecolors="w", linewidths=0.2))
  right.set_title("network output, region boundaries")
  fig.colorbar(image, ax=right, fraction=0.046, pad=0.04, label="output")
  for ax in (left, right):
    ax.grid(False)
    ax.set_xlabel("input $y_0$")
    ax.set_ylabel("input $y_1$")
  fig.suptitle("A random MLP 2-16-16-16-1 (PyTorch default init) on $[-1, 1]^2$",
               fontsize=12)
  fig.tight_layout()
  return fig


# --- Runner -------------------------------------------------------------------

def save(fig: "matplotlib.figure.Figure", path: pathlib.Path) -> None:
  """Writes ``fig`` as a PNG without a time stamp or version tag."""
  fig.savefig(path, dpi=DPI, metadata={"Software": None})
  plt.close(fig)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("names", nargs="*",
                      help="figures to make (default: all registered)")
  parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                      help=f"output folder (default: {DEFAULT_OUT.relative_to(ROOT)})")
  parser.add_argument("--list", action="store_true",
                      help="print the registered names and exit")
  args = parser.parse_args(argv)
  if args.list:
    for name, fn in FIGURES.items():
      print(f"{name:24s} {(fn.__doc__ or '').strip().splitlines()[0]}")
    return 0
  unknown = [n for n in args.names if n not in FIGURES]
  if unknown:
    parser.error(f"unknown figure(s) {unknown}; registered: {sorted(FIGURES)}")
  args.out.mkdir(parents=True, exist_ok=True)
  for name in args.names or list(FIGURES):
    start = time.perf_counter()
    path = args.out / f"{name}.png"
    save(FIGURES[name](), path)
    print(f"{path}  ({path.stat().st_size / 1024:.0f} KiB, "
          f"{time.perf_counter() - start:.1f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
