"""Progress bar, stopping from a callback, and Ctrl-C returning the work done so far."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastgd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))
BACKENDS = fastgd.available_backends()


@pytest.fixture(scope="module")
def data():
    X, y, coef, b = fastgd.datasets.make_linear(3000, 4, noise=0.1, seed=3)
    return X, y


def test_progress_bar_shows_epochs_and_loss(data, capsys):
    pytest.importorskip("tqdm")
    X, y = data
    res = fastgd.fit(X, y, optimizer="adam", lr=1e-3, max_iter=40, tol=0, progress=True)
    err = capsys.readouterr().err
    assert "40/40" in err and "epoch" in err
    assert "loss=" in err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    shown = float(last.split("loss=")[1].split("]")[0])
    assert shown == pytest.approx(res.objective, rel=1e-5)  # the bar ends on the final loss


def test_no_progress_bar_by_default(data, capsys):
    X, y = data
    fastgd.fit(X, y, max_iter=5)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_callback_sees_every_epoch_and_can_stop(data, backend):
    X, y = data
    seen = []

    def cb(epoch, coef, intercept, objective):
        seen.append((epoch, coef.copy(), intercept, objective))
        return True if epoch == 7 else None  # anything but True continues

    res = fastgd.fit(X, y, optimizer="momentum", max_iter=100, tol=0, callback=cb, backend=backend)
    assert res.status == "callback" and not res.converged
    assert res.n_iter == 7 and [s[0] for s in seen] == list(range(1, 8))
    np.testing.assert_allclose([s[3] for s in seen], res.history.loss[1:])
    np.testing.assert_array_equal(seen[-1][1], res.coef)
    assert seen[-1][2] == res.intercept


@pytest.mark.parametrize("backend", BACKENDS)
def test_keyboard_interrupt_keeps_the_progress(data, backend):
    X, y = data
    start, *_ = fastgd.loss_and_grad(X, y, np.zeros(X.shape[1]), 0.0)

    def cb(epoch, coef, intercept, objective):
        if epoch == 5:
            raise KeyboardInterrupt

    res = fastgd.fit(
        X, y, max_iter=1000, tol=0, callback=cb, backend=backend, batch_size=64, seed=0
    )
    assert res.status == "interrupted" and not res.converged
    assert res.n_iter == 5 and len(res.history.loss) == 6
    assert np.all(np.isfinite(res.coef)) and math.isfinite(res.intercept)
    assert res.objective < start / 10
    value, *_ = fastgd.loss_and_grad(X, y, res.coef, res.intercept)
    assert res.objective == pytest.approx(value, rel=1e-6)  # the objective of what is returned


CHILD = """
import json, sys, numpy as np, fastgd
backend = sys.argv[1]
X, y, coef, b = fastgd.datasets.make_linear(400_000, 8, noise=0.5, seed=1)
start = fastgd.loss_and_grad(X, y, np.zeros(8), 0.0, backend=backend)[0]
fastgd.fit(X[:100], y[:100], backend=backend, max_iter=2)  # compile before the clock starts
print("fitting", flush=True)
# Huber: every epoch is a pass over the rows (MSE epochs can be O(p^2) on compiled backends)
res = fastgd.fit(X, y, loss="huber", optimizer="adam", lr=1e-3, max_iter=10**6, tol=0,
                 record=None, backend=backend)
print(json.dumps({"status": res.status, "n_iter": res.n_iter, "objective": res.objective,
                  "start": start, "coef": res.coef.tolist(), "intercept": res.intercept}))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_during_a_long_fit(backend):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "fitting", proc.stderr.read()
        time.sleep(2.0)  # a million epochs would take hours: it is still running
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    res = json.loads(out)
    assert res["status"] == "interrupted"
    assert 0 < res["n_iter"] < 10**6
    assert all(math.isfinite(c) for c in res["coef"]) and math.isfinite(res["intercept"])
    assert res["objective"] < res["start"]
