"""The package's layout stays as documented: no import circles, short
functions, and an architecture page that names every module that exists."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "relucomp"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: Longest function body allowed (lines of code, docstring excluded).
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, ast.Module]:
  return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module) -> set[str]:
  """relucomp modules a module imports, at top level or inside functions."""
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "relucomp":
        found.update(a.name for a in node.names)
      elif node.module.startswith("relucomp."):
        found.add(node.module.split(".")[1])
    elif isinstance(node, ast.Import):
      found.update(a.name.split(".")[1] for a in node.names
                   if a.name.startswith("relucomp."))
  return found


def import_graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: {m for m in _imports(tree) if m in modules and m != name}
          for name, tree in modules.items() if name != "__init__"}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(node):
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_cycle_finder_finds_a_cycle():
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
  cycle = _find_cycle(import_graph())
  assert cycle is None, "import circle among relucomp modules: " + " -> ".join(cycle)


def test_engine_imports_no_model_family():
  families = {m for m in import_graph() if m.startswith("_fit")}
  assert not import_graph()["_engine"] & families
  for family in families - {"_fit"}:
    assert "_fit" not in import_graph()[family], f"{family} imports the front door"


def _code_lines(fn: ast.FunctionDef) -> int:
  body = fn.body
  if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
      and isinstance(body[0].value.value, str):
    body = body[1:]
  if not body:
    return 0
  return body[-1].end_lineno - body[0].lineno + 1


def test_no_long_functions():
  long = []
  for name, tree in _modules().items():
    for node in ast.walk(tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        n = _code_lines(node)
        if n > MAX_FUNCTION_LINES:
          long.append(f"relucomp/{name}.py:{node.lineno} {node.name} ({n} lines)")
  assert not long, "functions over the limit:\n" + "\n".join(long)


def test_architecture_page_names_every_module_and_only_those():
  text = ARCHITECTURE.read_text()
  named = set(re.findall(r"relucomp/(_?\w+)\.py", text)) - {"__init__"}
  existing = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
  assert named, "docs/architecture.md names no module"
  assert not named - existing, f"architecture page names missing modules: {named - existing}"
  assert not existing - named, f"modules the architecture page leaves out: {existing - named}"


def test_a_family_must_define_init_and_two_stage_ones_their_stage_one():
  import dataclasses

  import jax.numpy as jnp
  import pytest

  from relucomp import _engine

  with pytest.raises(TypeError, match="init"):
    _engine.Trainer()

  @dataclasses.dataclass(frozen=True)
  class Half(_engine.Trainer):
    def init(self, key, problem, options):
      return {}, {}

  half = Half()
  with pytest.raises(NotImplementedError, match="Half is two-stage but defines no predict1"):
    half.predict1({}, {}, jnp.zeros(3))
  with pytest.raises(NotImplementedError, match="stage2_start"):
    half.stage2_start({}, {})
