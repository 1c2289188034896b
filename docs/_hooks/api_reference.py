"""MkDocs hook that writes the API reference page from ``relucomp.__all__``.

The page is generated at build time, so a name added to ``relucomp.__all__``
appears in the reference without editing any page. Names are grouped by the
private module that defines them, in the order of ``MODULE_ORDER`` (modules
not listed there follow alphabetically), and each group is titled by the
first line of its module's docstring.

The functions here need only ``relucomp``; MkDocs is imported by
:func:`on_files` alone, so ``tests/test_docs.py`` can call :func:`render`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from types import ModuleType

PAGE = "api.md"

# Reading order of the sections: from the building blocks to the tools.
MODULE_ORDER = (
    "relucomp._triangle",
    "relucomp._series",
    "relucomp._network",
    "relucomp._mlp",
    "relucomp._train",
    "relucomp._regions",
    "relucomp._layer",
    "relucomp._validation",
)


def _submodules(package: ModuleType) -> list[ModuleType]:
  modules = []
  for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
    modules.append(importlib.import_module(info.name))
  return modules


def defining_module(package: ModuleType, name: str) -> str:
  """The module that defines the public ``name`` of ``package``.

  Functions and classes know their module. Data (a tuple, a number) does not,
  so the submodule that binds the same object, preferably one listing it in
  its own ``__all__``, is taken.
  """
  obj = getattr(package, name)
  module = getattr(obj, "__module__", None)
  if (callable(obj) or inspect.isclass(obj)) and isinstance(module, str):
    if module.startswith(package.__name__ + "."):
      return module
  candidates = [m for m in _submodules(package) if vars(m).get(name, None) is obj]
  listed = [m for m in candidates if name in getattr(m, "__all__", ())]
  for group in (listed, candidates):
    if group:
      return group[0].__name__
  return package.__name__


def data_docstring(module: ModuleType, name: str) -> str:
  """The string literal that follows ``name = ...`` at the top of ``module``.

  This is where Python documentation tools (griffe, Sphinx) read the
  docstring of a module-level constant.
  """
  try:
    tree = ast.parse(inspect.getsource(module))
  except (OSError, TypeError):
    return ""
  body = tree.body
  for stmt, nxt in zip(body, body[1:]):
    targets = []
    if isinstance(stmt, ast.Assign):
      targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign):
      targets = [stmt.target]
    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
      if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
          and isinstance(nxt.value.value, str)):
        return inspect.cleandoc(nxt.value.value)
      return ""
  return ""


def docstring(package: ModuleType, name: str) -> str:
  """The docstring of a public name: its own, or a constant's literal."""
  obj = getattr(package, name)
  own = getattr(obj, "__doc__", None)
  if inspect.isclass(obj) or (own and own != getattr(type(obj), "__doc__", None)):
    return inspect.cleandoc(own or "")
  module = importlib.import_module(defining_module(package, name))
  return data_docstring(module, name)


def _title(module_name: str) -> str:
  module = importlib.import_module(module_name)
  doc = (module.__doc__ or "").strip().splitlines()
  if not doc:
    return module_name.rsplit(".", 1)[-1].strip("_").capitalize()
  title = re.sub(r"\s*\([^)]*\)\s*\.?$", "", doc[0]).rstrip(".")
  title = title.replace("``", "`")
  return title[:1].upper() + title[1:]


def sections(package: ModuleType) -> list[tuple[str, list[str]]]:
  """``(title, names)`` per defining module, in reading order."""
  groups: dict[str, list[str]] = {}
  for name in package.__all__:
    groups.setdefault(defining_module(package, name), []).append(name)

  def rank(module_name: str) -> tuple[int, str]:
    if module_name in MODULE_ORDER:
      return MODULE_ORDER.index(module_name), module_name
    # Unlisted modules go after the listed ones, the validation helpers last.
    return len(MODULE_ORDER) - 1, module_name

  ordered = sorted(groups, key=rank)
  return [(_title(m), sorted(groups[m], key=str.lower)) for m in ordered]


_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj):`~?([\w.]+)`")


def _summary(package: ModuleType, name: str) -> str:
  """The first paragraph of the docstring, as one Markdown table cell."""
  doc = docstring(package, name).strip()
  first = doc.split("\n\n", 1)[0].replace("\n", " ") if doc else ""

  def link(match: re.Match) -> str:
    target = match.group(1).removeprefix(package.__name__ + ".")
    if target in package.__all__:
      return f"[`{target}`][{package.__name__}.{target}]"
    return f"`{match.group(1)}`"

  return _ROLE.sub(link, first).replace("|", "\\|")


def render(package_name: str = "relucomp") -> str:
  """The Markdown source of the API reference page."""
  package = importlib.import_module(package_name)
  lines = [
      "# API reference",
      "",
      f"Every public name of `{package_name}`, generated from the docstrings "
      f"at build time: this page lists exactly `{package_name}.__all__`. Import "
      f"everything from the top-level package (`import {package_name}`); the "
      "private modules named in the source links are not part of the API.",
      "",
      "| name | summary |",
      "| --- | --- |",
  ]
  for _, names in sections(package):
    for name in names:
      lines.append(f"| [`{name}`][{package_name}.{name}] | {_summary(package, name)} |")
  lines.append("")
  for title, names in sections(package):
    lines += [f"## {title}", ""]
    for name in names:
      lines += [f"::: {package_name}.{name}", ""]
  return "\n".join(lines)


def on_files(files, config):
  """MkDocs event: adds the generated page to the site's files."""
  from mkdocs.structure.files import File  # only needed inside a build

  files.append(File.generated(config, PAGE, content=render()))
  return files
