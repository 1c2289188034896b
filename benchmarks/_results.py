"""Writes a benchmark's results as JSON and as the Markdown the docs include.

Every benchmark script ends with :func:`write`: it stores the results, the
exact command that produced them and a note on the run's size in
``<out>/<name>.json``, and renders ``<out>/<name>.md`` from that JSON alone
(the command and size first, then the script's tables). The documentation
includes the Markdown files of ``docs/results/`` (``make results`` rewrites
them), and the test suite renders each one again from its JSON, so a number on
a page is always one the script wrote.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shlex
import sys
from typing import Any, Callable, Sequence

Renderer = Callable[[dict[str, Any]], str]


def command(script: str, argv: Sequence[str] | None) -> str:
  """The command line that ran ``script`` with ``argv`` (``sys.argv[1:]`` if None)."""
  args = list(sys.argv[1:] if argv is None else argv)
  return shlex.join(["python", f"benchmarks/{pathlib.Path(script).name}", *args])


def machine() -> dict[str, Any]:
  """What the timings depend on: cores, load, JAX and its backend."""
  import jax
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
  return {"cpus": os.cpu_count(), "machine": platform.machine(),
          "python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(), "load_average": load}


def header(data: dict[str, Any]) -> str:
  """The lines above a results table: the command, the size, the machine."""
  m = data["run"]["machine"]
  load = "" if m.get("load_average") is None else f", load average {m['load_average']:.1f} at the start"
  return "\n".join([
      f"<!-- Written by {data['run']['command'].split()[1]}; rerun the command to update. -->",
      "",
      "Produced by",
      "",
      "```bash",
      data["run"]["command"],
      "```",
      "",
      f"Size: {data['run']['size']}. Machine: {m['cpus']} CPU cores ({m['machine']}, "
      f"{m['backend']}), JAX {m['jax']}{load}.",
      "",
  ])


def render(data: dict[str, Any], body: Renderer) -> str:
  """The whole Markdown file: :func:`header` and then ``body(data)``."""
  return header(data) + "\n" + body(data).rstrip("\n") + "\n"


def write(out: str | os.PathLike, name: str, results: dict[str, Any], body: Renderer, *,
          script: str, argv: Sequence[str] | None, size: str) -> pathlib.Path:
  """Writes ``<out>/<name>.json`` and ``<out>/<name>.md``; returns the Markdown path.

  ``results`` must be JSON-serialisable; the Markdown is rendered from the
  JSON round trip of it, exactly as a reader of the JSON would see it.
  """
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  data = json.loads(json.dumps({"run": {"command": command(script, argv), "size": size,
                                        "machine": machine()}, **results}))
  (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
  md = out / f"{name}.md"
  md.write_text(render(data, body))
  return md
