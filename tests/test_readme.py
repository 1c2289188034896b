"""The README's example runs and prints what it claims."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re


def test_readme_example_runs():
  text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
  assert blocks, "README.md has no python example"
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(blocks[0], "README.md", "exec"), {})
  assert out.getvalue().split() == ["(16,", "1001)", "256"]
