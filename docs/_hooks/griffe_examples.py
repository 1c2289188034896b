"""Griffe extension: reads relucomp's docstrings as the reference renders them.

* Griffe's Google parser knows the plural ``Examples:`` as the section whose
  ``>>>`` lines are rendered as code; the singular ``Example:``, which
  relucomp's docstrings use, would otherwise be read as an admonition of
  Markdown text. It is renamed on load.
* Sphinx roles such as ``:func:`mlp_apply``` become links to the API
  reference when they name a public relucomp object, and inline code
  otherwise.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj):`~?([\w.]+)`")


def _public_names() -> frozenset[str]:
  try:
    return frozenset(importlib.import_module("relucomp").__all__)
  except ImportError:
    return frozenset()


class ExampleSections(griffe.Extension):
  """Normalises example headers and Sphinx roles in every docstring."""

  def __init__(self) -> None:
    super().__init__()
    self._public = _public_names()

  def _link(self, match: re.Match) -> str:
    target = match.group(1)
    name = target.removeprefix("relucomp.")
    if "." not in name and name in self._public:
      return f"[`{name}`][relucomp.{name}]"
    return f"`{target}`"

  def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
    if obj.docstring is not None:
      text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
      obj.docstring.value = _ROLE.sub(self._link, text)
