"""Shared fixtures: a seeded key, a float64 switch, and loading scripts by path."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import types

import jax
import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("relucomp", max_examples=25, deadline=None,
                          derandomize=True, print_blob=True)
# A long run for benchmarks (e.g. the fuzz module): HYPOTHESIS_PROFILE=relucomp-long.
settings.register_profile("relucomp-long", max_examples=1000, deadline=None,
                          derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "relucomp"))

# Most of the suite's time is XLA compilation. JAX's persistent compilation
# cache lets the pytest-xdist workers (and the subprocesses some tests start)
# share every program one of them has compiled, and a repeated run reuse
# them all. It only skips the compile of a program whose key (the program,
# its shapes and dtypes, the flags, the backend) matches: the executable,
# and so every number, is the one a compile would give. The directory is
# ``.jax_cache`` in the repository (git-ignored);
# ``RELUCOMP_TEST_JAX_CACHE=off`` runs without it.
_CACHE = os.environ.get("RELUCOMP_TEST_JAX_CACHE",
                        os.path.join(os.path.dirname(os.path.dirname(__file__)), ".jax_cache"))
if _CACHE != "off":
  _SETTINGS = {"jax_compilation_cache_dir": _CACHE,
               "jax_persistent_cache_min_compile_time_secs": 0.0,
               "jax_persistent_cache_min_entry_size_bytes": 0}
  for _name, _value in _SETTINGS.items():
    jax.config.update(_name, _value)
    os.environ.setdefault(_name.upper(), str(_value))      # for subprocesses of tests


@contextlib.contextmanager
def enable_x64(enabled: bool = True):
  """Temporarily sets ``jax_enable_x64``."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", enabled)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)


def load_script(path: str | os.PathLike, name: str) -> types.ModuleType:
  """Imports the Python file at ``path`` (a benchmark or docs hook) as module ``name``."""
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def key() -> jax.Array:
  """A seeded PRNG key."""
  return jax.random.key(20261122)


@pytest.fixture
def rng() -> np.random.Generator:
  """A seeded NumPy generator for test data."""
  return np.random.default_rng(20261122)


@pytest.fixture
def x64():
  """Runs the test with float64 enabled."""
  with enable_x64(True):
    yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
  """Runs the test once in float32 and once in float64; yields the dtype."""
  with enable_x64(request.param == "float64"):
    yield np.dtype(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  """Keeps every test of a module with a module-scoped fixture on one worker.

  Such fixtures (a set of fits shared by a module's tests) are built once per
  process. With ``--dist loadgroup`` (what ``make test`` passes) the tests
  that use them form one group, so that the two pytest-xdist workers do not
  both build them; every other test is shared out one by one.
  """
  for item in items:
    defs = getattr(item, "_fixtureinfo", None)
    scopes = ({d[-1].scope for d in defs.name2fixturedefs.values() if d}
              if defs is not None else set())
    if "module" in scopes:
      item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
