"""Figures of exact regions (matplotlib, imported only when a plot is made)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from relucomp import _plane
from relucomp import _regions

__all__ = ["plot_partition", "plot_neurons_1d"]


def plot_partition(regions: _regions.Regions2D, *, ax: Any = None, cmap: str = "tab20",
                   edgecolor: str = "k", linewidth: float = 0.2, seed: int = 0,
                   mark_points: bool = True,
                   labels: Sequence[str] = ("points[0]", "points[1]", "points[2]")) -> Any:
  """Draws the regions of :func:`regions_2d` or :func:`plane_regions`, each in its own colour.

  Colours are drawn from ``cmap`` in a shuffled order (fixed by ``seed``) so
  that neighbouring regions rarely share one. On the partition of a plane
  through three points (:func:`plane_regions`) the points, at ``(0, 0)``,
  ``(1, 0)`` and ``(0, 1)`` of the plane's coordinates, are marked and
  labelled, and the axes are labelled with the plane's coordinates.

  Args:
    regions: the result of :func:`regions_2d` or :func:`plane_regions`.
    ax: a matplotlib axes to draw into; a new figure when ``None``.
    cmap: a matplotlib colormap name.
    edgecolor: colour of the region boundaries.
    linewidth: width of the boundaries.
    seed: seed of the colour shuffle.
    mark_points: on a plane's partition, mark the three points.
    labels: their three labels (for example the classes of three images).

  Returns:
    The matplotlib axes.

  Raises:
    ValueError: if ``regions`` is not a :class:`Regions2D`, or ``labels``
      are not three.

  Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import relucomp
    >>> grid = [{"kernel": np.eye(2), "bias": np.zeros(2)},
    ...         {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
    >>> ax = relucomp.plot_partition(relucomp.regions_2d(grid, [-1, -1], [1, 1]))
    >>> len(ax.collections[0].get_paths())
    4
    >>> rng = np.random.default_rng(0)
    >>> params = [{"kernel": rng.normal(size=(8, 6)), "bias": rng.normal(size=6)},
    ...           {"kernel": rng.normal(size=(6, 1)), "bias": np.zeros(1)}]
    >>> ax = relucomp.plot_partition(relucomp.plane_regions(params, rng.normal(size=(3, 8))))
    >>> ax.collections[1].get_offsets().tolist()   # the three points, marked
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
  """
  if not isinstance(regions, _regions.Regions2D):
    raise ValueError("regions must be the result of regions_2d or plane_regions (a "
                     f"Regions2D); got {type(regions).__name__}.")
  labels = list(labels)
  if len(labels) != 3:
    raise ValueError(f"labels must be three strings (one per point); got {len(labels)}.")
  import matplotlib.pyplot as plt
  from matplotlib.collections import PolyCollection

  if ax is None:
    _, ax = plt.subplots(figsize=(5, 5))
  colours = plt.get_cmap(cmap)
  order = np.random.default_rng(seed).permutation(max(regions.count, 1))
  n_colours = getattr(colours, "N", 256)
  facecolors = [colours(int(k) % n_colours) for k in order[:regions.count]]
  collection = PolyCollection(regions.vertices, facecolors=facecolors,
                              edgecolors=edgecolor, linewidths=linewidth)
  ax.add_collection(collection)
  if regions.count:
    points = np.concatenate(regions.vertices)
    ax.set_xlim(points[:, 0].min(), points[:, 0].max())
    ax.set_ylim(points[:, 1].min(), points[:, 1].max())
  ax.set_aspect("equal")
  ax.set_title(f"{regions.count} regions")
  if mark_points and isinstance(regions, _plane.PlaneRegions):
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ax.scatter(corners[:, 0], corners[:, 1], s=36, c="w", edgecolors="k", zorder=3)
    for (u, v), text in zip(corners, labels):
      ax.annotate(str(text), (u, v), xytext=(4, 4), textcoords="offset points", fontsize=8,
                  bbox={"boxstyle": "round,pad=0.15", "fc": "w", "alpha": 0.8})
    ax.set_xlabel("$y_0$ (along points[1] - points[0])")
    ax.set_ylabel("$y_1$ (along points[2] - points[0])")
  return ax


def _preactivations(layers, x):
  h = x[:, None]
  out = []
  for kernel, bias in layers[:-1]:
    z = h @ kernel + bias
    out.append(z)
    h = np.maximum(z, 0.0)
  return out


def plot_neurons_1d(params: Any, lo: Any, hi: Any, *, normalize: bool = True,
                    max_points: int = 200_000, fig: Any = None) -> Any:
  """Each hidden neuron's pre-activation over ``[lo, hi]``, one panel a layer.

  Like Figures 3 and 5 of Heinecke and Hwang: the curves are drawn through
  the exact region boundaries of :func:`linear_pieces_1d` (``merge=False``),
  so every kink is where it really is. Neurons whose pre-activation changes
  sign somewhere on the interval are drawn solid; those that never cross
  zero (always active or always inactive) thin and dashed. Each panel's
  title counts the crossing neurons (decided from the exact boundaries).
  With more than ``max_points`` region boundaries the curves are drawn on an
  even grid of ``max_points`` points instead.

  Args:
    params: an MLP with one input, as for :func:`linear_pieces_1d`.
    lo: left end of the interval.
    hi: right end, ``hi > lo``.
    normalize: divide each neuron's curve by its largest absolute value on
      the interval, so that neurons of very different magnitude (a deep
      compositional layer carries values near ``s_d``) are all visible; the
      zero crossings are unchanged.
    max_points: most points per curve.
    fig: a matplotlib figure to draw into; a new one when ``None``.

  Returns:
    The matplotlib figure (one axes per hidden layer).

  Raises:
    ValueError: as :func:`linear_pieces_1d`, or a network without hidden
      layers.

  Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> peaks = jnp.full(4, 0.5)
    >>> params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.25))
    >>> fig = relucomp.plot_neurons_1d(params, 0.0, 1.0)
    >>> [ax.get_title() for ax in fig.axes]
    ['layer 1: 1 of 4 neurons cross zero', 'layer 2: 1 of 4 neurons cross zero', 'layer 3: 1 of 4 neurons cross zero']
  """
  pieces = _regions.linear_pieces_1d(params, lo, hi, merge=False)
  layers = _regions.host_layers(params)
  if len(layers) < 2:
    raise ValueError("params must have at least one hidden layer to plot its neurons.")
  lo, hi = float(np.asarray(lo)), float(np.asarray(hi))
  knots = np.concatenate([[lo], pieces.breakpoints, [hi]])
  x = knots if knots.size <= max_points else np.linspace(lo, hi, max_points)
  import matplotlib.pyplot as plt

  n_hidden = len(layers) - 1
  if fig is None:
    fig = plt.figure(figsize=(6, 1.8 * n_hidden + 0.6))
  axes = fig.subplots(n_hidden, 1, sharex=True, squeeze=False)[:, 0]
  # Pre-activations are affine between knots, so a neuron changes sign on
  # the interval iff it has both signs at the knots (with the enumeration's
  # neuron-relative zero rule); the curves use ``x``.
  h_knots, h = knots[:, None], x[:, None]
  for l, ((kernel, bias), ax) in enumerate(zip(layers[:-1], axes)):
    z_knots, _ = _regions.preactivation(h_knots, kernel, bias)
    h_knots = np.maximum(z_knots, 0.0)
    crosses = np.any(z_knots > 0, axis=0) & np.any(z_knots < 0, axis=0)
    z, _ = _regions.preactivation(h, kernel, bias)
    h = np.maximum(z, 0.0)
    if normalize:
      peak = np.max(np.abs(z_knots), axis=0)
      z = z / np.where(peak > 0, peak, 1.0)
    for i in range(z.shape[1]):
      if crosses[i]:
        ax.plot(x, z[:, i], lw=1.2, label=f"neuron {i}")
      else:
        ax.plot(x, z[:, i], lw=0.7, ls="--", color="0.6")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_title(f"layer {l + 1}: {int(crosses.sum())} of {z.shape[1]} neurons cross zero")
    ax.set_ylabel("pre-act. / max" if normalize else "pre-activation")
  axes[-1].set_xlabel("x")
  fig.tight_layout()
  return fig
