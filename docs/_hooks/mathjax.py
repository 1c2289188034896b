"""MkDocs hook that serves MathJax from the site itself.

The MathJax 3 bundle comes from a PyPI package of the docs extra (the
``mathjax`` folder of ``django-static-mathjax``, plain JavaScript and fonts),
so neither the build nor a reader of the built site needs the network. Only
the combined TeX/MathML-to-HTML component and its web fonts are copied, to
``javascripts/mathjax/`` in the site, where ``mkdocs.yml`` loads it.
"""

from __future__ import annotations

import importlib.util
import pathlib

DEST = "javascripts/mathjax"
COMPONENT = "tex-mml-chtml.js"
FONTS = "output/chtml/fonts/woff-v2"


def bundle_dir() -> pathlib.Path:
  """The ``es5`` folder of the installed MathJax bundle."""
  spec = importlib.util.find_spec("mathjax")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "MathJax is missing: install the docs extra (pip install -e '.[docs]').")
  root = pathlib.Path(next(iter(spec.submodule_search_locations)))
  es5 = root / "static" / "mathjax" / "es5"
  if not (es5 / COMPONENT).is_file():
    raise FileNotFoundError(f"no MathJax component {COMPONENT} under {es5}.")
  return es5


def on_files(files, config):
  """MkDocs event: adds the MathJax component and fonts to the site."""
  from mkdocs.structure.files import File

  es5 = bundle_dir()
  sources = [es5 / COMPONENT] + sorted((es5 / FONTS).glob("*.woff"))
  for source in sources:
    relative = source.relative_to(es5).as_posix()
    files.append(File.generated(config, f"{DEST}/{relative}", abs_src_path=str(source)))
  return files
