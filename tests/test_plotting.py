"""Plot helpers: figures are built from the exact regions."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import relucomp  # noqa: E402
from conftest import enable_x64  # noqa: E402


def _net(seed, widths):
  rng = np.random.default_rng(seed)
  return [{"kernel": rng.normal(size=(a, b)) / np.sqrt(a), "bias": rng.normal(size=b) * 0.5}
          for a, b in zip(widths[:-1], widths[1:])]


def test_plot_partition_draws_every_region(tmp_path):
  import matplotlib.pyplot as plt
  params = _net(0, [2, 8, 8, 1])
  parts = relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])
  ax = relucomp.plot_partition(parts)
  paths = ax.collections[0].get_paths()
  assert len(paths) == parts.count
  assert ax.get_title() == f"{parts.count} regions"
  colours = ax.collections[0].get_facecolors()
  assert len(colours) == parts.count and len({tuple(c) for c in colours}) > 1
  np.testing.assert_allclose(paths[0].vertices[:len(parts.vertices[0])], parts.vertices[0])
  ax.figure.savefig(tmp_path / "partition.png")
  assert (tmp_path / "partition.png").stat().st_size > 0
  _, ax2 = plt.subplots()
  assert relucomp.plot_partition(parts, ax=ax2) is ax2
  plt.close("all")
  with pytest.raises(ValueError, match="regions must be the result of regions_2d or plane_regions"):
    relucomp.plot_partition(params)


def test_plot_partition_marks_the_three_points_of_a_plane():
  import matplotlib.pyplot as plt
  rng = np.random.default_rng(1)
  params = _net(1, [10, 8, 8, 1])
  points = rng.normal(size=(3, 10))
  parts = relucomp.plane_regions(params, points)
  ax = relucomp.plot_partition(parts, labels=["a 0", "a 1", "a 2"])
  assert len(ax.collections[0].get_paths()) == parts.count
  np.testing.assert_array_equal(ax.collections[1].get_offsets(), [[0, 0], [1, 0], [0, 1]])
  assert [t.get_text() for t in ax.texts] == ["a 0", "a 1", "a 2"]
  assert "points[1] - points[0]" in ax.get_xlabel()
  assert ax.get_xlim() == (-0.25, 1.25)
  plt.close("all")
  # Not marked when asked not to, nor on a partition of regions_2d.
  ax = relucomp.plot_partition(parts, mark_points=False)
  assert len(ax.collections) == 1 and not ax.texts
  ax = relucomp.plot_partition(relucomp.regions_2d(_net(0, [2, 4, 1]), [-1, -1], [1, 1]))
  assert len(ax.collections) == 1 and not ax.texts
  plt.close("all")
  with pytest.raises(ValueError, match="labels must be three strings"):
    relucomp.plot_partition(parts, labels=["a"])


def test_plot_neurons_1d_marks_crossing_neurons():
  import matplotlib.pyplot as plt
  with enable_x64():
    import jax.numpy as jnp
    peaks = jnp.asarray([0.3, 0.6, 0.45, 0.5])
    params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.3))
  fig = relucomp.plot_neurons_1d(params, 0.0, 1.0)
  assert len(fig.axes) == 3
  for ax in fig.axes:
    # Only u crosses zero: t touches it, acc and c stay positive.
    assert ax.get_title().endswith("1 of 4 neurons cross zero")
    solid = [line for line in ax.get_lines() if line.get_linestyle() == "-"
             and line.get_label().startswith("neuron")]
    assert [line.get_label() for line in solid] == ["neuron 1"]
  # The curves pass through the exact region boundaries.
  pieces = relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False)
  x = fig.axes[-1].get_lines()[0].get_xdata()
  np.testing.assert_array_equal(x[1:-1], pieces.breakpoints)
  plt.close(fig)
  # A random network: the count of crossing neurons matches sampling.
  params = _net(3, [1, 6, 6, 1])
  fig = relucomp.plot_neurons_1d(params, -2.0, 2.0, max_points=5)
  grid = np.linspace(-2.0, 2.0, 5)
  h = np.linspace(-2.0, 2.0, 100_001)[:, None]
  for layer, ax in zip(params[:-1], fig.axes):
    z = h @ layer["kernel"] + layer["bias"]
    h = np.maximum(z, 0)
    crossing = int(np.sum(np.any(z > 0, axis=0) & np.any(z < 0, axis=0)))
    assert ax.get_title().split(": ")[1].startswith(f"{crossing} of 6")
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), grid)
  plt.close(fig)
  with pytest.raises(ValueError, match="at least one hidden layer"):
    relucomp.plot_neurons_1d([{"kernel": np.ones((1, 1)), "bias": np.zeros(1)}], 0.0, 1.0)


def test_matplotlib_is_imported_lazily():
  import subprocess
  code = ("import sys, relucomp; "
          "print('matplotlib' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
