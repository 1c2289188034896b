"""The result tables on the documentation pages are the benchmark scripts' output.

A page includes a table with ``--8<-- "results/<name>.md"``; the file and its
JSON are written by a benchmark script (``make results``). Each included file
must exist, state the command that wrote it, and be exactly what the script's
renderer makes of the JSON beside it, so no number on a page is typed in by
hand.
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex

import jax
import pytest
from conftest import load_script

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
PAGES = sorted(p for p in DOCS.rglob("*.md")
               if "_hooks" not in p.parts and RESULTS not in p.parents)
_INCLUDE = re.compile(r'^\s*-{2}8<-{2}\s+"(results/[^"]+)"\s*$', re.MULTILINE)
INCLUDES = [(page, target) for page in PAGES for target in _INCLUDE.findall(page.read_text())]
_SCRIPTS: dict[str, object] = {}


def _script(path: pathlib.Path):
  """The benchmark script as a module, leaving JAX's float64 flag as it was."""
  if path not in _SCRIPTS:
    x64 = jax.config.jax_enable_x64
    try:
      module = load_script(path, f"benchmark_{path.stem}")
    finally:
      jax.config.update("jax_enable_x64", x64)
    _SCRIPTS[path] = module
  return _SCRIPTS[path]


def _command(md: pathlib.Path) -> tuple[str, list[str]]:
  data = json.loads(md.with_suffix(".json").read_text())
  return data["run"]["command"], shlex.split(data["run"]["command"])


def test_reproduction_and_benchmarks_pages_include_results():
  including = {page.name for page, _ in INCLUDES}
  assert {"reproduction.md", "benchmarks.md"} <= including


@pytest.mark.parametrize("page,target", INCLUDES,
                         ids=[f"{p.name}:{t}" for p, t in INCLUDES])
def test_included_result_is_the_scripts_output(page, target):
  md = DOCS / target
  assert md.suffix == ".md" and md.is_file(), (
      f"{page.relative_to(ROOT)} includes {target}, which does not exist; run make results")
  assert md.with_suffix(".json").is_file(), f"{target} has no JSON beside it"
  command, argv = _command(md)
  text = md.read_text()
  # The command heads the table, as a shell block a reader can copy.
  assert f"```bash\n{command}\n```" in text.split("|", 1)[0], (
      f"{target} does not state the command that produced it above its table")
  assert argv[0] == "python" and argv[1].startswith("benchmarks/"), command
  script = ROOT / argv[1]
  assert script.is_file(), f"{target} names {argv[1]}, which does not exist"
  out = argv[argv.index("--out") + 1] if "--out" in argv else None
  assert out is not None and (ROOT / out).resolve() == md.parent.resolve(), (
      f"{command} does not write into {md.parent.relative_to(ROOT)}")
  module = _script(script)
  data = json.loads(md.with_suffix(".json").read_text())
  assert module._results.render(data, module.markdown) == text, (
      f"{target} differs from what {argv[1]} renders from its JSON: it was edited by "
      "hand or the script changed; rerun the command")


def test_every_result_file_is_shown_and_made_by_make_results():
  shown = {DOCS / target for _, target in INCLUDES}
  written = set(RESULTS.glob("*.md"))
  assert written, "docs/results holds no result table"
  assert written == shown, (
      f"result tables no page includes: {sorted(p.name for p in written - shown)}")
  recipe = re.search(r"^results:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(),
                     re.MULTILINE)
  assert recipe, "the Makefile has no results target"
  for md in written:
    _, argv = _command(md)
    assert re.search(rf"{re.escape(argv[1])} .*--out \$\(RESULTS\)", recipe.group(1)), (
        f"make results does not run {argv[1]} into docs/results")
  assert re.search(r"^RESULTS := docs/results$", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_a_script_writes_its_table_under_its_command(tmp_path):
  construction = _script(ROOT / "benchmarks" / "construction.py")
  argv = ["--max-depth", "2", "--out", str(tmp_path), "--no-figure"]
  x64 = jax.config.jax_enable_x64
  try:
    jax.config.update("jax_enable_x64", True)
    construction.main(argv)
  finally:
    jax.config.update("jax_enable_x64", x64)
  data = json.loads((tmp_path / "construction.json").read_text())
  assert data["run"]["command"] == shlex.join(["python", "benchmarks/construction.py", *argv])
  assert [row["pieces_yarotsky"] for row in data["rows"]] == [2, 4]
  text = (tmp_path / "construction.md").read_text()
  assert text.startswith("<!-- Written by benchmarks/construction.py")
  assert f"```bash\n{data['run']['command']}\n```" in text
  assert "| 2 | 4 | 4 | 4 |" in text
  assert not list(tmp_path.glob("*.png"))
