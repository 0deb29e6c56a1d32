"""Training jobs: one per session, a cap per server with the others waiting, Stop, and nothing outliving a session."""

from __future__ import annotations

import threading
import time

import pytest

from flowscope_ui import jobs


def wait_until(check: object, timeout: float = 10.0) -> None:
    """Poll `check()` until it is true (or fail after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def looping(release: threading.Event) -> object:
    """Work that reports steps until released or stopped, and returns how far it got."""
    def work(job: jobs.Job) -> int:
        step = 0
        while not release.is_set() and not job.stop_requested:
            step += 1
            job.report(step, 1.0 / step, 0.0, [1.0] * step)
            time.sleep(0.005)
        return step
    return work


def test_cap_waiting_stop_and_one_job_per_session() -> None:
    manager = jobs.JobManager(max_running=2, grace_s=60.0)
    release = threading.Event()
    first = [manager.submit(f"s{i}", f"job {i}", 100, looping(release)) for i in range(3)]  # type: ignore[arg-type]
    wait_until(lambda: manager.counts() == (2, 1))  # the third waits for a slot
    waiting = next(j for j in first if j.state == "waiting")
    assert waiting.step == 0
    with pytest.raises(jobs.JobBusy):
        manager.submit("s0", "again", 100, looping(release))  # type: ignore[arg-type]
    running = next(j for j in first if j.state == "running")
    running.stop()  # it ends at its next report, with what it did so far; the waiting one then starts
    wait_until(lambda: running.state == "done" and waiting.state == "running")
    assert isinstance(running.result, int) and running.result >= 1
    assert manager.jobs_of(running.owner) == [running] and manager.jobs_of("nobody") == []
    manager.collect(running)
    assert manager.jobs_of(running.owner) == []
    release.set()
    wait_until(lambda: manager.counts() == (0, 0) and manager.threads() == 0)
    assert all(j.state == "done" for j in first)


def test_a_failing_job_says_why_and_frees_its_slot() -> None:
    manager = jobs.JobManager(max_running=1, grace_s=60.0)

    def broken(job: jobs.Job) -> None:
        raise ValueError("the data have no rows")

    job = manager.submit("s", "broken", 10, broken)
    wait_until(lambda: not job.active)
    assert job.state == "failed" and job.error == "ValueError: the data have no rows"
    ok = manager.submit("s", "next", 10, lambda j: "model")
    wait_until(lambda: ok.state == "done")
    assert ok.result == "model"


def test_a_closed_tab_stops_its_job_and_uncollected_results_are_dropped() -> None:
    manager = jobs.JobManager(max_running=1, grace_s=0.3, reap_every_s=0.05)
    release = threading.Event()
    gone = manager.submit("gone", "left behind", 100, looping(release))  # type: ignore[arg-type]
    stays = manager.submit("stays", "queued", 100, looping(release))  # type: ignore[arg-type]
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # one session keeps showing up (its sidebar refreshes), the other left
        stays.touch()
        time.sleep(0.02)
    assert gone.stop_requested and gone.state == "done"  # stopped by the reaper after the grace
    wait_until(lambda: stays.state == "running")
    assert not stays.stop_requested
    wait_until(lambda: manager.jobs_of("gone") == [])  # its finished job was never collected: dropped
    release.set()
    wait_until(lambda: manager.threads() == 0)
