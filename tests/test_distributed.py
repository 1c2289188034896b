"""fit_batch under jax.distributed: two real processes on CPU with gloo collectives.

Each test starts two Python processes (one CPU device each) that meet through
``jax.distributed.initialize`` on a free local port, exactly as two hosts
would. The three groups of processes are started together by one module
fixture (they spend most of their time importing JAX or waiting on a
timeout), and each test waits for its own group.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp

# Every process is killed after this many seconds: a hang fails the test.
DEADLINE_S = 300
SETTINGS = dict(method="kaiming", depth=2, pretrain_steps=0, finetune_steps=20)
N_POINTS, N_MODELS = 40, 3

WORKER = textwrap.dedent("""
    import json, os, sys, time
    port, pid, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_enable_x64", True)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid,
        initialization_timeout=60, shutdown_timeout_seconds=10,
        heartbeat_timeout_seconds=5 if mode == "crash" else 60)
    import jax.numpy as jnp
    import relucomp
    settings = json.loads(sys.argv[5])
    n_points, n_models = int(sys.argv[6]), int(sys.argv[7])

    def report(**kw):
        print("REPORT " + json.dumps(kw), flush=True)

    x = jnp.linspace(0.0, 1.0, n_points)
    ys = jnp.stack([x ** (2 + i) for i in range(n_models)])
    keys = jax.random.split(jax.random.key(7), n_models)
    if mode == "late":                 # process 1 dies before it reaches fit_batch
        if pid == 1:
            os._exit(0)
        start = time.monotonic()
        try:
            relucomp.fit_batch(x, ys, keys=keys, timeout=2.0, **settings)
        except TimeoutError as e:
            report(error=type(e).__name__, message=str(e), waited=time.monotonic() - start)
        os._exit(0)                    # skip the shutdown barrier of a dead peer
    if mode == "crash":                # process 1 dies inside fit_batch
        if pid == 1:
            relucomp._batch._check_same_everywhere = lambda **kw: os._exit(1)
        relucomp.fit_batch(x, ys, keys=keys, **settings)
        report(finished=True)          # never reached: the test fails if it is
        os._exit(0)
    errors = {}
    for name, call in {
        "devices": lambda: relucomp.fit_batch(x, ys, keys=keys, devices=jax.local_devices(),
                                              **settings),
        "small": lambda: relucomp.fit_batch(x, ys[:1], keys=keys[:1], **settings),
        "keys": lambda: relucomp.fit_batch(x, ys, keys=keys[:, None], **settings),
        "key": lambda: relucomp.fit_batch(x, ys, keys=keys, key=keys[0], **settings),
        # Each process passes its own targets: not the same global arguments.
        "differ": lambda: relucomp.fit_batch(x, ys + pid, keys=keys, **settings),
    }.items():
        try:
            call()
            errors[name] = None
        except ValueError as e:
            errors[name] = str(e)
    result = relucomp.fit_batch(x, ys, keys=keys, **settings)
    relucomp.save(result, f"{out}.{pid}")
    report(errors=errors, devices=len(jax.devices()), local=len(jax.local_devices()),
           addressable=bool(result.mse.is_fully_addressable))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(mode: str, tmp) -> dict:
  script = tmp / "worker.py"
  script.write_text(WORKER)
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)   # one CPU device per process
  procs = [subprocess.Popen(
      [sys.executable, str(script), str(port), str(pid), mode, str(tmp / mode),
       json.dumps(SETTINGS), str(N_POINTS), str(N_MODELS)],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
  return {"mode": mode, "procs": procs, "start": time.monotonic(), "out": tmp / mode}


def _wait(group: dict) -> list[dict]:
  """Waits for both processes (killing them at the deadline); their outputs."""
  outs = []
  for pid, proc in enumerate(group["procs"]):
    left = DEADLINE_S - (time.monotonic() - group["start"])
    try:
      stdout, stderr = proc.communicate(timeout=max(left, 1))
      hung = False
    except subprocess.TimeoutExpired:
      proc.kill()
      stdout, stderr = proc.communicate()
      hung = True
    reports = [json.loads(l[7:]) for l in stdout.splitlines() if l.startswith("REPORT ")]
    outs.append({"pid": pid, "rc": proc.returncode, "hung": hung, "reports": reports,
                 "stdout": stdout, "stderr": stderr,
                 "elapsed": time.monotonic() - group["start"]})
  return outs


def _explain(outs: list[dict]) -> str:
  return "\n".join(
      f"--- process {o['pid']}: rc={o['rc']} hung={o['hung']} after {o['elapsed']:.0f} s\n"
      f"stdout:\n{o['stdout'][-1500:]}\nstderr:\n{o['stderr'][-3000:]}" for o in outs)


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("distributed")
  started = {mode: _start(mode, tmp) for mode in ("fit", "late", "crash")}
  yield started
  for group in started.values():       # nothing outlives the tests
    for proc in group["procs"]:
      if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_two_processes_give_the_models_of_one(groups, x64):
  outs = _wait(groups["fit"])
  assert all(o["rc"] == 0 and len(o["reports"]) == 1 for o in outs), _explain(outs)
  x = jnp.linspace(0.0, 1.0, N_POINTS)
  ys = jnp.stack([x ** (2 + i) for i in range(N_MODELS)])
  keys = jax.random.split(jax.random.key(7), N_MODELS)
  one = relucomp.fit_batch(x, ys, keys=keys, devices=jax.devices()[:1], **SETTINGS)
  for o in outs:
    rep = o["reports"][0]
    # Two processes, one device each; the result is whole on every process.
    assert (rep["devices"], rep["local"], rep["addressable"]) == (2, 1, True)
    errors = rep["errors"]
    assert "devices must be all the processes' devices" in errors["devices"], errors
    assert "keys has 1 entries but devices has 2" in errors["small"], errors
    assert "keys must be" in errors["keys"], errors
    assert "key is not a setting" in errors["key"], errors
    assert "y differs between processes" in errors["differ"], errors
    two = relucomp.load(f"{groups['fit']['out']}.{o['pid']}")   # save works
    assert two.method == one.method and two.mse.shape == (N_MODELS,)
    # Both runs do the same float64 operations on each model; only the vmap
    # width differs (3 models on one device against 2 per device, padded),
    # which may let XLA sum the 40 points of a loss or gradient in another
    # order. A reordered sum of n terms moves by at most n eps (sum of |terms|),
    # about 1e-14 here, once per step; 20 Adam steps of a network this small
    # amplify that by far less than the 1e5 that 1e-9 of a leaf's largest
    # entry allows (a float32 computation, 1e-7, would be caught). See
    # test_batch.test_chunks_give_the_numbers_of_one_vmap.
    for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
      a, b = np.asarray(a, float), np.asarray(b, float)
      np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.max(np.abs(b)))


def test_a_process_that_never_arrives_times_out(groups):
  outs = _wait(groups["late"])
  zero = outs[0]
  assert zero["rc"] == 0 and not zero["hung"] and zero["reports"], _explain(outs)
  rep = zero["reports"][0]
  assert rep["error"] == "TimeoutError" and "timeout=2 s" in rep["message"], rep
  assert 1.5 < rep["waited"] < 30, rep


def test_a_process_that_dies_mid_call_fails_the_other(groups):
  outs = _wait(groups["crash"])
  zero = outs[0]
  assert outs[1]["rc"] == 1, _explain(outs)
  # The survivor stops with an error (the runtime notices the missing
  # heartbeats within 5 s, or gloo the closed connection), never a result.
  assert not zero["hung"] and zero["rc"] != 0 and not zero["reports"], _explain(outs)
  said = zero["stderr"].lower()
  assert any(w in said for w in ("stopped sending heartbeats", "gloo", "connection")), (
      _explain(outs))
