"""The paper-table and stage-2 benchmarks run end to end at a tiny size."""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import relucomp
from conftest import load_script

_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _load(name):
  if _DIR not in sys.path:
    sys.path.insert(0, _DIR)      # stage2_sweep imports paper_tables
  return load_script(os.path.join(_DIR, f"{name}.py"), f"{name}_benchmark")


@pytest.fixture(scope="module")
def paper_tables():
  return _load("paper_tables")


def test_limit_matches_an_equispaced_knot_fit_and_the_notes(paper_tables):
  x = np.linspace(0.0, 1.0, 500)
  y = x ** 3
  limit = paper_tables.piecewise_linear_limit(x, y)
  # Free knots can only beat 31 equispaced knots (the least-squares fit on
  # a hat basis, computed here directly).
  nodes = np.linspace(0.0, 1.0, 33)
  basis = np.stack([np.interp(x, nodes, np.eye(33)[i]) for i in range(33)], axis=1)
  coef = np.linalg.lstsq(basis, y, rcond=None)[0]
  equispaced = np.mean((basis @ coef - y) ** 2)
  assert limit <= equispaced
  assert limit == pytest.approx(paper_tables.LIMIT_REFERENCE["x^3"], rel=0.05)


def test_paper_tables_tiny_run_writes_tables(paper_tables, tmp_path):
  out = tmp_path / "tables"
  results = paper_tables.main(["--models", "2", "--steps", "10", "--setups",
                               "kaiming,enforced", "--with-lm", "--lm-steps", "3",
                               "--no-figure", "--out", str(out), "--workers", "2"])
  saved = json.loads((out / "paper_tables.json").read_text())
  table = (out / "paper_tables.md").read_text()
  assert saved["setups"].keys() == {"kaiming", "enforced", "enforced_lm"}
  for method in ("kaiming", "enforced", "enforced_lm"):
    for curve in paper_tables.CURVES:
      entry = saved["setups"][method][curve]
      assert len(entry["pieces"]) == 2
      assert 0 < entry["min"] <= entry["mean"]
      assert entry["ratio_to_limit"] == pytest.approx(
          entry["min"] / saved["limit"][curve], rel=1e-9)
      assert saved["sparse"][method][curve] > 0
  assert results["timing"]["compile_wall_s"] <= results["timing"]["train_wall_s"]
  assert "| x^11 | enforced |" in table and "**Sparse data**" in table
  assert "| x^11 | enforced, LM stage 2 |" in table and "10 + 3 Levenberg" in table


def test_paper_tables_rejects_unknown_setup(paper_tables, tmp_path):
  with pytest.raises(SystemExit):
    paper_tables.main(["--setups", "kaiming,adamw", "--out", str(tmp_path)])


def test_stage2_sweep_tiny_run(tmp_path):
  sweep = _load("stage2_sweep")
  results = sweep.main(["--curves", "x^3", "--steps", "20", "--b1", "0.98", "--lr",
                        "0.1", "--long", "30", "--lm-steps", "5", "--out", str(tmp_path)])
  runs = results["curves"]["x^3"]["runs"]
  assert [(r["optimizer"], r["start"], r["b1"], r["steps"]) for r in runs] == [
      ("adam", "balanced", 0.98, 20), ("adam", "as built", 0.98, 20),
      ("lbfgs", "balanced", None, 20), ("lbfgs", "balanced", None, 30),
      ("levenberg_marquardt", "balanced", None, 5), ("levenberg_marquardt", "as built", None, 5),
      ("levenberg_marquardt", "balanced", None, 20),
      ("levenberg_marquardt", "as built", None, 20)]
  assert all(np.isfinite(r["mse"]) and r["mse"] > 0 for r in runs)
  # Both starts are the stage-1 network; Adam moves them differently.
  assert runs[0]["mse"] != runs[1]["mse"]
  # Levenberg-Marquardt never ends above where it started.
  assert all(r["mse"] <= results["curves"]["x^3"]["stage1"] * (1 + 1e-5) for r in runs[4:])
  # L-BFGS starts from the stage-1 network and only descends from there.
  stage1 = results["curves"]["x^3"]["stage1"]
  assert runs[3]["mse"] <= runs[2]["mse"] < stage1
  assert (tmp_path / "stage2_sweep.md").exists() and (tmp_path / "stage2_sweep.json").exists()


def test_stage2_sweep_starts_encode_the_same_function():
  sweep = _load("stage2_sweep")
  x = jnp.linspace(0.0, 1.0, 200)
  y = jnp.sin(x)                       # concave: the amplitude's sign is negative
  start = relucomp.fit(x, y, key=jax.random.key(1), pretrain_steps=50, finetune_steps=0,
                       optimizer="adam")    # the law's stage 1, as the sweep runs it
  built = sweep._as_built(start, x, y)
  np.testing.assert_allclose(relucomp.mlp_apply(built, x[:, None]),
                             relucomp.mlp_apply(start.params, x[:, None]), atol=1e-6)
  assert not np.allclose(built[1]["kernel"], start.params[1]["kernel"])


def test_beyond_convex_tiny_run_with_a_longer_2d_budget(tmp_path):
  bench = _load("beyond_convex")
  results = bench.main(["--parts", "2d", "--models-2d", "1", "--steps", "3",
                        "--long-2d", "4", "--kaiming-lrs", "1e-3", "--grid", "5",
                        "--depth-2d", "2", "--out", str(tmp_path)])
  assert results["config"]["steps_per_stage_2d_long"] == 4 and results["1d"] == {}
  for part in ("2d", "2d_long"):
    assert set(results[part]) == set(bench.TARGETS_2D)
    for r in results[part].values():
      assert np.isfinite(r["ratio"]) and r["ratio"] > 0
      assert r["dense"]["0.001"]["n_params"] >= r["compositional"]["n_params"]
  table = (tmp_path / "beyond_convex.md").read_text()
  assert "**2-D, longer**: the same 2-D comparison with 4 + 4 steps" in table
  saved = json.loads((tmp_path / "beyond_convex.json").read_text())
  assert saved["2d_long"].keys() == results["2d_long"].keys()


def test_beyond_convex_tiny_levenberg_marquardt_run(tmp_path):
  bench = _load("beyond_convex")
  results = bench.main(["--models-1d", "1", "--steps", "4", "--lm-steps", "2",
                        "--depth-1d", "2", "--points-1d", "30", "--out", str(tmp_path)])
  assert results["config"]["lm_steps"] == 2 and results["2d"] == {}
  assert set(results["1d"]) == set(bench.TARGETS_1D)
  for r in results["1d"].values():
    assert np.isfinite(r["ratio"]) and r["ratio"] > 0
    (dense,) = r["dense"].values()
    assert dense["n_params"] == r["compositional"]["n_params"]
  table = (tmp_path / "beyond_convex_lm.md").read_text()
  assert "| kaiming, LM |" in table and "4 + 2" in table
  assert not (tmp_path / "beyond_convex.md").exists()


def test_solve_tiny_run_agrees_with_lapack(tmp_path):
  bench = _load("solve")
  results = bench.main(["--sizes", "3x2,6x1", "--repeats", "1", "--out", str(tmp_path)])
  assert [(r["n"], r["batch"]) for r in results["rows"]] == [(3, 2), (6, 1)]
  for r in results["rows"]:
    assert r["relucomp_ms"] > 0 and r["lapack_ms"] > 0
    # float32, well-conditioned systems: both residuals at rounding level
    assert r["residual_relucomp"] < 1e-3 and r["residual_lapack"] < 1e-3
  assert "| 3 | 2 |" in (tmp_path / "solve.md").read_text()
  with pytest.raises(SystemExit):
    bench.main(["--repeats", "0", "--out", str(tmp_path)])
