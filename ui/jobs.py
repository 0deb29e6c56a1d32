"""Trainings as background jobs: owned by a browser session, capped per server, stopped when the session leaves.

No Streamlit import (tested directly). A page submits a job with the work to do; a worker thread waits for a
free slot (at most `max_running` jobs train at once on the server, the others wait and say so), then runs the
work, which reports progress into the job and asks `job.stop_requested` at each report (the core's training
callback returns True to stop). The owner's pages read the job (`progress` on every page, live charts on the
Train page) and collect its result when it is done. Each page run of the owner `touch`es its jobs; a job whose
owner has not been seen for `grace_s` seconds (the tab was closed) is stopped, and a finished job nobody
collected is dropped after the same grace, so neither threads nor models outlive their session for long.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GRACE_S", "MAX_RUNNING", "Job", "JobBusy", "JobManager", "manager"]

#: Trainings that run at once on one server (each takes one CPU thread); $FLOWSCOPE_UI_MAX_JOBS overrides it.
MAX_RUNNING = 2
#: Seconds a job outlives the last sign of its session (a closed tab) before it is stopped or dropped.
GRACE_S = 60.0
_ids = itertools.count(1)


class JobBusy(RuntimeError):
    """The session already has a training that has not finished (one at a time per session)."""


@dataclass
class Job:
    """One training of one session: its state, progress, the live picture and, at the end, its result.

    Fields written by the worker thread are plain attributes read by the owner's page runs (a stale read
    shows the previous report, never a torn one: each is replaced whole).
    """

    owner: str
    label: str
    steps: int
    work: Callable[[Job], Any] = field(repr=False)
    id: int = field(default_factory=lambda: next(_ids))
    state: str = "waiting"  # waiting, running, done, failed
    step: int = 0
    loss: float | None = None
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list, repr=False)
    preview: Any = field(default=None, repr=False)
    result: Any = field(default=None, repr=False)
    error: str | None = None
    collected: bool = False
    last_seen: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        """Waiting for a slot or training."""
        return self.state in ("waiting", "running")

    @property
    def stop_requested(self) -> bool:
        """Whether the owner (or the reaper) asked it to stop: the training callback then returns True."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the job to stop at its next report (a waiting job never starts)."""
        self._stop.set()

    def touch(self) -> None:
        """The owner's session is still there (called on each of its page runs)."""
        self.last_seen = time.monotonic()

    def report(self, step: int, loss: float | None, seconds: float, losses: list[float], preview: Any = None) -> None:
        """Progress from the worker: the step reached, the recent loss, the losses so far, a new picture."""
        self.step, self.loss, self.seconds, self.losses = step, loss, seconds, losses
        if preview is not None:
            self.preview = preview


class JobManager:
    """The server's jobs: at most `max_running` run at once; at most one active job per session."""

    def __init__(self, max_running: int = MAX_RUNNING, grace_s: float = GRACE_S, reap_every_s: float = 2.0) -> None:
        self.max_running = max(1, int(max_running))
        self.grace_s = grace_s
        self._slots = threading.Semaphore(self.max_running)
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._reap_every_s = reap_every_s
        self._reaper: threading.Thread | None = None

    def submit(self, owner: str, label: str, steps: int, work: Callable[[Job], Any]) -> Job:
        """Start `work(job)` in a worker thread once a slot is free; raises JobBusy if `owner` has an active job."""
        with self._lock:
            if any(j.owner == owner and j.active for j in self._jobs.values()):
                raise JobBusy("a training of yours is still running: stop it or wait for it to finish")
            job = Job(owner=owner, label=label, steps=steps, work=work)
            self._jobs[job.id] = job
            job.thread = threading.Thread(target=self._run, args=(job,), name=f"flowscope-job-{job.id}", daemon=True)
            job.thread.start()
            self._start_reaper()
        return job

    def _run(self, job: Job) -> None:
        """The worker: wait for a slot (giving up if stopped meanwhile), run the work, record how it ended."""
        while not self._slots.acquire(timeout=0.2):
            if job.stop_requested:
                job.state, job.error, job.finished_at = "failed", "stopped before it started", time.monotonic()
                return
        try:
            if job.stop_requested:
                job.state, job.error = "failed", "stopped before it started"
                return
            job.state = "running"
            job.result = job.work(job)
            job.state = "done"
        except Exception as err:  # the page shows the message; the server goes on
            job.state, job.error = "failed", f"{type(err).__name__}: {err}"
        finally:
            job.finished_at = time.monotonic()
            self._slots.release()

    def jobs_of(self, owner: str) -> list[Job]:
        """The session's jobs not yet collected, oldest first."""
        with self._lock:
            return [j for j in self._jobs.values() if j.owner == owner and not j.collected]

    def collect(self, job: Job) -> None:
        """The owner took the finished job's result: the manager forgets it."""
        job.collected = True
        with self._lock:
            self._jobs.pop(job.id, None)

    def counts(self) -> tuple[int, int]:
        """(running, waiting) jobs on the server."""
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return states.count("running"), states.count("waiting")

    def threads(self) -> int:
        """Worker threads still alive (for tests and the load benchmark: none may outlive its job)."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.thread is not None and j.thread.is_alive())

    def reap(self, now: float | None = None) -> None:
        """Stop the active jobs of sessions gone for longer than the grace; drop uncollected finished ones."""
        now = time.monotonic() if now is None else now
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.active and now - job.last_seen > self.grace_s:
                job.stop()
            elif not job.active and job.finished_at is not None and now - max(job.finished_at, job.last_seen) \
                    > self.grace_s:
                self.collect(job)

    def _start_reaper(self) -> None:
        """A daemon thread that reaps every few seconds while there are jobs (started with the first one)."""
        if self._reaper is not None and self._reaper.is_alive():
            return

        def loop() -> None:
            while True:
                time.sleep(self._reap_every_s)
                self.reap()
                with self._lock:
                    if not self._jobs:
                        self._reaper = None
                        return

        self._reaper = threading.Thread(target=loop, name="flowscope-job-reaper", daemon=True)
        self._reaper.start()


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def manager() -> JobManager:
    """The server's one JobManager (its cap from $FLOWSCOPE_UI_MAX_JOBS, else MAX_RUNNING)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager(int(os.environ.get("FLOWSCOPE_UI_MAX_JOBS") or MAX_RUNNING))
        return _manager
