"""The documentation stays true: every public name is documented with a
runnable example and listed in the generated API reference, and every Python
code block on the documentation pages runs."""

from __future__ import annotations

import ast
import doctest
import inspect
import pathlib
import re

import jax
import pytest
from conftest import load_script

import relucomp

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)

_EXAMPLE = re.compile(r"^\s*Examples?:\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES_WITH_CODE = [p for p in PAGES if _FENCE.search(p.read_text())]


def _load_generator():
  return load_script(DOCS / "_hooks" / "api_reference.py", "api_reference")


def _constant_docstring(name: str) -> str:
  """The string literal after ``name = ...`` in the relucomp module binding it.

  Written independently of the page generator: every ``relucomp/*.py`` is
  parsed and the assignment searched for.
  """
  found = []
  for path in sorted((ROOT / "relucomp").glob("*.py")):
    body = ast.parse(path.read_text()).body
    for stmt, nxt in zip(body, body[1:] + [None]):
      targets = (stmt.targets if isinstance(stmt, ast.Assign)
                 else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
      if any(isinstance(t, ast.Name) and t.id == name for t in targets):
        literal = (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                   and isinstance(nxt.value.value, str))
        found.append(inspect.cleandoc(nxt.value.value) if literal else "")
  return max(found, key=len, default="")


def _is_constant(name: str) -> bool:
  """True for data (a tuple, a number): neither a class nor a (wrapped) routine."""
  obj = getattr(relucomp, name)
  return not (inspect.isclass(obj) or inspect.isroutine(inspect.unwrap(obj)))


def _docstring(name: str) -> str:
  obj = getattr(relucomp, name)
  own = getattr(obj, "__doc__", None)
  if not _is_constant(name) or (own and own != getattr(type(obj), "__doc__", None)):
    return inspect.cleandoc(own or "")
  return _constant_docstring(name)


def _example(doc: str) -> str:
  """The text of the docstring's Example(s) section, or an empty string."""
  match = _EXAMPLE.search(doc)
  return doc[match.end():] if match else ""


def test_all_names_exist():
  assert relucomp.__all__, "relucomp.__all__ is empty"
  missing = [n for n in relucomp.__all__ if not hasattr(relucomp, n)]
  assert not missing, f"names in relucomp.__all__ that relucomp lacks: {missing}"


@pytest.mark.parametrize("name", relucomp.__all__)
def test_public_name_has_docstring_with_runnable_example(name):
  doc = _docstring(name)
  assert doc.strip(), f"relucomp.{name} has no docstring"
  example = _example(doc)
  assert example, f"the docstring of relucomp.{name} has no 'Example:' section"
  assert ">>>" in example, (
      f"the Example section of relucomp.{name} has no doctest ('>>>' lines)")


@pytest.mark.parametrize("name", [n for n in relucomp.__all__ if _is_constant(n)])
def test_constant_examples_run(name):
  # Functions and classes run as doctests through --doctest-modules; a
  # constant's docstring is not collected there, so its example runs here.
  example = _example(_docstring(name))
  test = doctest.DocTestParser().get_doctest(
      example, {}, f"relucomp.{name}", None, 0)
  runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
  result = runner.run(test)
  assert result.attempted > 0, f"relucomp.{name} has no example to run"
  assert result.failed == 0, f"the example of relucomp.{name} fails (output above)"


def test_api_reference_lists_every_public_name():
  generator = _load_generator()
  page = generator.render("relucomp")
  listed = re.findall(r"^::: relucomp\.(\w+)\s*$", page, re.MULTILINE)
  assert sorted(listed) == sorted(relucomp.__all__)
  for name in relucomp.__all__:
    assert f"[`{name}`][relucomp.{name}]" in page, f"{name} missing from the summary table"


def test_api_reference_is_in_the_navigation():
  config = (ROOT / "mkdocs.yml").read_text()
  assert re.search(r"^\s*-\s*API reference:\s*api\.md\s*$", config, re.MULTILINE)
  assert "docs/_hooks/api_reference.py" in config
  assert not (DOCS / "api.md").exists(), "api.md is generated; do not commit one"


def test_getting_started_and_concepts_have_code():
  with_code = {str(p.relative_to(DOCS)) for p in PAGES_WITH_CODE}
  assert {"index.md", "concepts.md"} <= with_code


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs(page, tmp_path, monkeypatch):
  """Runs the page's ``python`` blocks in order, in one namespace."""
  blocks = _FENCE.findall(page.read_text())
  monkeypatch.chdir(tmp_path)
  x64 = jax.config.jax_enable_x64
  namespace: dict = {"__name__": f"docs.{page.stem}"}
  try:
    for i, block in enumerate(blocks):
      code = compile(block, f"{page.relative_to(ROOT)}[block {i + 1}]", "exec")
      exec(code, namespace)  # noqa: S102
  finally:
    jax.config.update("jax_enable_x64", x64)
    import matplotlib.pyplot as plt
    plt.close("all")


def test_pages_have_no_unfinished_markers():
  for page in PAGES:
    text = page.read_text()
    for marker in ("TO" + "DO", "FIX" + "ME", "X" * 3):
      assert marker not in text, f"{page.relative_to(ROOT)} contains {marker}"


def test_figures_linked_from_pages_exist():
  links = 0
  for page in PAGES:
    for target in re.findall(r"\]\(((?:\.\./)*figures/[\w.-]+\.png)\)", page.read_text()):
      links += 1
      assert (page.parent / target).resolve().is_file(), (
          f"{page.relative_to(ROOT)} links {target}, which is not generated")
  assert links > 0, "no page shows a figure"


def _registered_figures() -> list[str]:
  """Names passed to ``@figure(...)`` in benchmarks/figures.py, read statically."""
  tree = ast.parse((ROOT / "benchmarks" / "figures.py").read_text())
  names = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for deco in node.decorator_list:
        if (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "figure"
            and deco.args and isinstance(deco.args[0], ast.Constant)):
          names.append(deco.args[0].value)
  return names


def test_gallery_shows_every_registered_figure_and_nothing_stale():
  registered = _registered_figures()
  assert registered, "benchmarks/figures.py registers no figure"
  assert len(set(registered)) == len(registered)
  gallery = (DOCS / "gallery.md").read_text()
  for name in registered:
    assert f"(figures/{name}.png)" in gallery, f"gallery.md does not show {name}"
  pngs = sorted(p.stem for p in (DOCS / "figures").glob("*.png"))
  assert pngs == sorted(registered), (
      "docs/figures/ must hold exactly the registered figures; rerun "
      "benchmarks/figures.py and remove PNGs that no function makes")


def test_figures_script_regenerates_a_figure(tmp_path):
  import subprocess
  import sys

  script = ROOT / "benchmarks" / "figures.py"
  listed = subprocess.run([sys.executable, str(script), "--list"], check=True,
                          capture_output=True, text=True).stdout
  assert [line.split()[0] for line in listed.splitlines()] == _registered_figures()
  subprocess.run([sys.executable, str(script), "network_neurons", "--out", str(tmp_path)],
                 check=True, capture_output=True, text=True)
  import matplotlib.image
  image = matplotlib.image.imread(tmp_path / "network_neurons.png")
  committed = matplotlib.image.imread(DOCS / "figures" / "network_neurons.png")
  assert image.shape == committed.shape
  assert image.shape[1] >= 700  # drawn at page width
