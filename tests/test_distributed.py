"""Training on 2 processes with torchrun (gloo, CPU): the ranks stay identical, match one process at the doubled
batch, resume, and a NaN on one rank stops every rank with the last good weights saved and no process left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flowscope import MLPConfig, TrainConfig, train
from flowscope.data.datasets import make_dataset
from flowscope.evaluation.report import sample_quality
from flowscope.io import checkpoint
from flowscope.solver.sampling import SolverConfig

WORKER = Path(__file__).with_name("distributed_worker.py")
STEPS, BATCH = 300, 64
#: Seconds any one torchrun launch may take before it (and its ranks) are killed and the test fails.
LAUNCH_TIMEOUT = 180


def _torchrun(*args: str, marker: Path) -> subprocess.CompletedProcess[str]:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 ARGS`, killed with all its ranks past
    LAUNCH_TIMEOUT; afterwards no process naming `marker` (a folder in every rank's arguments) may be left."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(process, marker)
        pytest.fail(f"torchrun {' '.join(args)} ran past {LAUNCH_TIMEOUT} s")
    assert not _processes_naming(marker), "a rank outlived torchrun"
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _kill(process: subprocess.Popen[str], marker: Path) -> None:
    """Stop torchrun (SIGTERM: it stops its ranks), then SIGKILL whatever still names `marker` (torchrun starts each
    rank in a session of its own, out of reach of a signal to torchrun's process group)."""
    process.terminate()
    try:
        process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    for pid in _processes_naming(marker):
        os.kill(pid, signal.SIGKILL)
    process.communicate()


def _processes_naming(marker: Path) -> list[int]:
    """Pids of live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(marker).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _weights(path: Path) -> list[torch.Tensor]:
    return list(checkpoint.load(path).net.state_dict().values())


def _w2_ratio(flow: object, data: np.ndarray) -> float:
    samples = flow.sample(1000, solver=SolverConfig("rk4", steps=20),  # type: ignore[attr-defined]
                          generator=torch.Generator().manual_seed(1)).samples.numpy()
    ratio = sample_quality(samples, data, n=1000, repeats=1).w2_ratio
    assert ratio is not None
    return ratio


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's torchrun script calling flowscope.train twice (same seed) on 2 ranks of batch BATCH."""
    out = tmp_path_factory.mktemp("ddp")
    result = _torchrun(str(WORKER), "train", str(out), str(STEPS), str(BATCH), marker=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_ranks_hold_identical_weights_and_a_rerun_reproduces_them(two_ranks: Path) -> None:
    rank0 = _weights(two_ranks / "rank0.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(rank0, _weights(two_ranks / "rank1.safetensors"), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(rank0, _weights(two_ranks / "rank0-again.safetensors"),
                                                 strict=True))
    flow = checkpoint.load(two_ranks / "rank0.safetensors")
    assert flow.info["distributed"] == {"world_size": 2, "backend": "gloo", "global_batch_size": 2 * BATCH}
    assert flow.info["steps_done"] == STEPS


def test_two_ranks_match_one_process_at_the_doubled_batch(two_ranks: Path) -> None:
    data = make_dataset("moons", 4000, seed=0)
    single = train(torch.from_numpy(data), model=MLPConfig(dim=2, width=64, depth=2),
                   config=TrainConfig(steps=STEPS, batch_size=2 * BATCH, seed=0, device="cpu")).model
    held_out = make_dataset("moons", 4000, seed=7)
    two, one = _w2_ratio(checkpoint.load(two_ranks / "rank0.safetensors"), held_out), _w2_ratio(single, held_out)
    # Measured: see the print; an untrained or one-rank-only model is far worse.
    print(f"W2/floor: 2 ranks x {BATCH}: {two:.3f}, 1 process x {2 * BATCH}: {one:.3f}")
    assert two < 1.35 * one + 0.15, (two, one)


@pytest.mark.slow
def test_torchrun_module_cli_resumes_and_only_rank_0_writes(two_ranks: Path, tmp_path: Path) -> None:
    """Resume on a memory-mapped .npy streamed by a DistributedSampler (--stream), through `-m flowscope`."""
    out, data = tmp_path / "resumed.safetensors", tmp_path / "moons.npy"
    np.save(data, make_dataset("moons", 4000, seed=0))
    result = _torchrun("-m", "flowscope", "train", "--data", str(data), "--stream", "--steps", "30",
                       "--batch-size", "32", "--resume", str(two_ranks / "rank0.safetensors"), "--quiet",
                       "--out", str(out), marker=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote") == 1  # rank 0 alone reports and writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moons.npy", "resumed.safetensors"]  # no temporary file
    resumed = checkpoint.load(out)
    assert resumed.info["steps_done"] == STEPS + 30 and resumed.info["dataset"] == "moons.npy"


@pytest.mark.slow
def test_a_nan_on_rank_1_stops_every_rank_and_keeps_the_last_good_weights(tmp_path: Path) -> None:
    out = tmp_path / "nan.safetensors"
    result = _torchrun(str(WORKER), "nan", "120", "train", "--dataset", "moons", "--steps", "200", "--batch-size",
                       "32", "--width", "32", "--no-eval", "--quiet", "--out", str(out), marker=tmp_path)
    assert result.returncode != 0
    assert ("flowscope train: error: training stopped at step 120: the loss became nan on rank 1"
            in result.stderr), result.stderr[-3000:]
    assert f"saved them to {out}" in result.stderr
    assert result.stderr.count("flowscope train: error") == 1  # said once, by rank 0
    kept = checkpoint.load(out)
    assert kept.info["steps_done"] == 119
    assert all(bool(torch.isfinite(p).all()) for p in kept.net.parameters())
