"""The paper-table and stage-2 benchmarks run end to end at a tiny size."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
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
                               "kaiming,enforced", "--no-figure", "--out", str(out),
                               "--workers", "2"])
  saved = json.loads((out / "paper_tables.json").read_text())
  table = (out / "paper_tables.md").read_text()
  assert saved["setups"].keys() == {"kaiming", "enforced"}
  for method in ("kaiming", "enforced"):
    for curve in paper_tables.CURVES:
      entry = saved["setups"][method][curve]
      assert len(entry["pieces"]) == 2
      assert 0 < entry["min"] <= entry["mean"]
      assert entry["ratio_to_limit"] == pytest.approx(
          entry["min"] / saved["limit"][curve], rel=1e-9)
      assert saved["sparse"][method][curve] > 0
  assert results["timing"]["compile_wall_s"] <= results["timing"]["train_wall_s"]
  assert "| x^11 | enforced |" in table and "**Sparse data**" in table


def test_stage2_sweep_tiny_run(tmp_path):
  sweep = _load("stage2_sweep")
  results = sweep.main(["--curves", "x^3", "--steps", "20", "--b1", "0.98", "--lr",
                        "0.1", "--long", "30", "--out", str(tmp_path)])
  runs = results["curves"]["x^3"]["runs"]
  assert [(r["optimizer"], r["b1"], r["steps"]) for r in runs] == [
      ("adam", 0.98, 20), ("lbfgs", None, 20), ("lbfgs", None, 30)]
  assert all(np.isfinite(r["mse"]) and r["mse"] > 0 for r in runs)
  # L-BFGS starts from the stage-1 network and only descends from there.
  stage1 = results["curves"]["x^3"]["stage1"]
  assert runs[2]["mse"] <= runs[1]["mse"] < stage1
  assert (tmp_path / "stage2_sweep.md").exists() and (tmp_path / "stage2_sweep.json").exists()
