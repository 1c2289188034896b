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
