"""The explorer's Streamlit server for the browser benchmarks: started on a free port, stopped however they end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["explorer", "free_port"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def explorer(root: Path, folder: Path, pythonpath: str | None, zoo_dir: str | None = None,
             options: tuple[str, ...] = ()) -> Iterator[tuple[str, int]]:
    """`streamlit run <root>/ui/app.py` on a free port, with Streamlit `options` too; (its URL, its pid). Stopped
    (its group) at the end. The server sees this environment without PYTHONPATH and FLOWSCOPE_ZOO_DIR, but for
    the ones given."""
    port = free_port()
    home = folder / "home"
    home.mkdir(parents=True)
    log = folder / "server.log"
    command = [sys.executable, "-m", "streamlit", "run", str(root / "ui" / "app.py"), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", *options]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FLOWSCOPE_ZOO_DIR")}
    env.update(HOME=str(home), FLOWSCOPE_UI_CACHE=str(folder / "ui-cache"))
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if zoo_dir:
        env["FLOWSCOPE_ZOO_DIR"] = zoo_dir
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
