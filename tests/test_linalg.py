"""The positive definite solve of the second-order steps: against NumPy, its
derivatives, and the reason it exists (no LAPACK kernel that can hang when
two run at once)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import relucomp
from conftest import enable_x64
from relucomp._linalg import spd_solve


def _spd(seed: int, n: int, cond: float, batch=()):
  """``Q diag(s) Q^T`` with eigenvalues from 1 to ``cond`` (float64, NumPy)."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=batch + (n, n)))
  s = np.geomspace(1.0, cond, n) * rng.uniform(0.5, 2.0)
  return (q * s[..., None, :]) @ np.swapaxes(q, -1, -2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(seed=st.integers(0, 2 ** 31), n=st.sampled_from([1, 2, 5, 17, 40]),
       log_cond=st.floats(0.0, 6.0), k=st.sampled_from([None, 3]))
def test_matches_numpy_within_the_cholesky_error_bound(dtype, seed, n, log_cond, k):
  # (a few sizes only: each shape is one more compiled program)
  with enable_x64(dtype == np.float64):
    _check_against_numpy(dtype, seed, n, log_cond, k)


def _check_against_numpy(dtype, seed, n, log_cond, k):
  # Cholesky is backward stable: the relative error of x is at most about
  # n * eps * cond(A) (Higham, ch. 10); a factor 8 covers the constants.
  cond = 10.0 ** log_cond
  a = _spd(seed, n, cond, batch=(2,))
  rng = np.random.default_rng(seed + 1)
  b = rng.normal(size=(2, n) if k is None else (2, n, k))
  want = np.linalg.solve(a, b[..., None] if k is None else b)
  want = want[..., 0] if k is None else want
  got = np.asarray(jax.jit(spd_solve)(jnp.asarray(a, dtype), jnp.asarray(b, dtype)), np.float64)
  assert got.shape == b.shape and got.dtype == np.float64
  eps = np.finfo(dtype).eps
  # the inputs themselves are rounded to dtype: that alone moves x by cond * eps
  bound = 8 * (n + 1) * eps * cond * np.max(np.abs(want))
  assert np.max(np.abs(got - want)) <= bound


def test_vmap_and_unbatched_agree_with_the_batched_call(x64):
  a = jnp.asarray(_spd(3, 7, 100.0, batch=(5,)))
  b = jnp.asarray(np.random.default_rng(4).normal(size=(5, 7)))
  batched = spd_solve(a, b)
  mapped = jax.vmap(spd_solve)(a, b)
  looped = jnp.stack([spd_solve(a[i], b[i]) for i in range(5)])
  np.testing.assert_allclose(batched, mapped, rtol=1e-12)
  np.testing.assert_allclose(batched, looped, rtol=1e-12)
  np.testing.assert_allclose(np.einsum("bij,bj->bi", a, batched), b, atol=1e-10)


def test_derivatives_match_the_closed_form(x64):
  # x = A^{-1} b: dx = A^{-1} (db - dA x), written here with NumPy.
  a = _spd(5, 6, 50.0)
  rng = np.random.default_rng(6)
  b, da, db = rng.normal(size=6), rng.normal(size=(6, 6)), rng.normal(size=6)
  da = da + da.T                              # the solve reads a symmetric matrix
  x = np.linalg.solve(a, b)
  want = np.linalg.solve(a, db - da @ x)
  _, got = jax.jvp(spd_solve, (jnp.asarray(a), jnp.asarray(b)), (jnp.asarray(da), jnp.asarray(db)))
  np.testing.assert_allclose(got, want, rtol=1e-9)
  # reverse mode: grad of c . x with respect to b is A^{-1} c
  c = rng.normal(size=6)
  grad_b = jax.grad(lambda bb: jnp.dot(jnp.asarray(c), spd_solve(jnp.asarray(a), bb)))(jnp.asarray(b))
  np.testing.assert_allclose(grad_b, np.linalg.solve(a, c), rtol=1e-9)


def test_a_pivot_lost_to_rounding_gives_finite_numbers(dtype):
  # Singular (rank one): the floored pivot keeps the answer finite, and it
  # still solves the consistent system.
  v = jnp.asarray([1.0, 2.0, 3.0], dtype)
  a = jnp.outer(v, v)
  x = spd_solve(a, v)
  assert bool(jnp.all(jnp.isfinite(x)))
  np.testing.assert_allclose(a @ x, v, rtol=1e-3 if dtype == np.float32 else 1e-8)


def _lowered_text(method: str, x, y) -> str:
  fn = jax.vmap(lambda k: relucomp.fit(x, y, key=k, method=method, depth=3,
                                       pretrain_steps=4, finetune_steps=4))
  return jax.jit(fn).lower(jax.random.split(jax.random.key(0), 3)).as_text()


@pytest.mark.parametrize("method", ["enforced", "dc"])
def test_default_fits_call_no_lapack_kernel(method):
  # The CPU's batched LAPACK solves wait on the thread pool they run on;
  # two at once can hang forever (see the concurrency test below). A vmap
  # of default fits must lower to none of them.
  x = jnp.linspace(0.0, 1.0, 40)
  text = _lowered_text(method, x, x ** 3 if method == "enforced" else jnp.sin(6 * x))
  assert "lapack" not in text.lower()


def test_two_threads_solving_batches_at_once_finish():
  # The same batch of systems (sizes at which jnp.linalg.solve hung when two
  # threads ran it at once on two cores) solved in two threads; a hang fails
  # the timeout instead of blocking the suite.
  code = textwrap.dedent("""
      import threading, jax, jax.numpy as jnp
      from relucomp._linalg import spd_solve
      m = jax.random.normal(jax.random.key(0), (120, 64, 64))
      a = m @ jnp.swapaxes(m, 1, 2) + 64 * jnp.eye(64)
      run = jax.jit(lambda a, b: jax.lax.fori_loop(
          0, 20, lambda i, b: jax.vmap(spd_solve)(a, b) * 0.5 + b, b))
      b = jnp.ones((120, 64))
      run(a, b).block_until_ready()
      def work():
        for _ in range(5):
          run(a, b).block_until_ready()
      threads = [threading.Thread(target=work) for _ in range(2)]
      [t.start() for t in threads]
      [t.join() for t in threads]
      print("finished")
      """)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "finished" in proc.stdout
