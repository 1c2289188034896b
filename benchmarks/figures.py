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
    for neuron in ("t", "u", "c"):
      top.plot(x, h[:, names[neuron]], color=colors[neuron], lw=1.3,
               ls="--" if neuron == "c" else "-", label=neuron)
    top.set_title(f"layer {k + 1}: $t, u, c$", pad=14, fontsize=11)
    top.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
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
  axes[0, depth].set_title(f"$W_{depth}$: {2 ** depth} pieces", pad=14, fontsize=11)
  axes[1, depth].plot(x, y, color="k", lw=1.5)
  axes[1, depth].set_title(f"output $F_{depth}$", fontsize=11)
  axes[1, depth].set_xlabel("input $x$")
  for ax in axes.flat:
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=9.5)
  fig.suptitle(
      f"Neurons of the 4-wide compositional network, depth {depth}, peaks "
      + ", ".join(f"{a:g}" for a in NETWORK_PEAKS[:depth]), fontsize=12)
  fig.subplots_adjust(left=0.08, right=0.99, top=0.86, bottom=0.09, wspace=0.35)
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
  fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4.2))
  for (label, scales), color in zip(choices.items(), ("tab:blue", "tab:red")):
    slope = _derivative(lambda t, s=scales: relucomp.compositional(t, peaks, s), xm)
    axes[0].plot(xm, slope, color=color, lw=1.0, label=label)
    jumps = jnp.abs(jnp.diff(slope))
    kinks = jumps > 1e-12
    axes[1].semilogy(((xm[1:] + xm[:-1]) / 2)[kinks], jumps[kinks], ".",
                     color=color, ms=3, label=f"{label}: largest {float(jumps.max()):.2f}")
  axes[0].set_title(f"$F'(x)$, depth {LAW_DEPTH}, random peaks in [0.2, 0.8]")
  axes[0].set_xlabel("$x$")
  axes[0].set_ylabel("$F'(x)$")
  axes[0].legend(loc="upper left", fontsize=8)
  axes[1].set_title(f"jump of $F'$ at each of the {2 ** LAW_DEPTH - 1} kinks")
  axes[1].set_xlabel("kink position $x$")
  axes[1].set_ylabel("$|$jump of $F'|$ (log scale)")
  axes[1].legend(loc="lower left", fontsize=7.5)
  for ax in axes:
    ax.set_xlim(0, 1)
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
