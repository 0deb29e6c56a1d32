"""`flowscope ui`: Streamlit's own options pass through, and stopping the command stops the server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from flowscope.cli import commands as cli
from flowscope.cli.commands import main

pytest.importorskip("streamlit")
pytest.importorskip("flowscope_ui")


class _Exec(Exception):
    """Raised by the fake os.execv: carries the command that would have replaced the process."""


@pytest.fixture
def execv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace os.execv in the CLI by a recorder that stops the command there (no real exec in tests)."""
    calls: list[list[str]] = []

    def fake(path: str, argv: list[str]) -> None:
        calls.append(list(argv))
        raise _Exec(path)

    monkeypatch.setattr(cli.os, "execv", fake)
    monkeypatch.setattr(cli.os, "name", "posix")
    return calls


def _streamlit_options(command: list[str]) -> list[str]:
    """What follows `streamlit run APP` in a command."""
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"] and command[4].endswith("app.py")
    return command[5:]


@pytest.mark.slow
def test_help_documents_the_pass_through() -> None:
    result = subprocess.run([sys.executable, "-m", "flowscope.cli", "ui", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for text in ("--server.port 8601", "--server.headless true", "--port", "--headless", "is an error"):
        assert text in result.stdout, text


def test_streamlit_options_reach_streamlit(execv: list[list[str]]) -> None:
    with pytest.raises(_Exec):
        main(["ui", "--server.port", "8601", "--server.headless", "true", "--theme.base", "dark"])
    assert _streamlit_options(execv[0]) == ["--server.port", "8601", "--server.headless", "true",
                                            "--theme.base", "dark"]


def test_shorthands_translate(execv: list[list[str]]) -> None:
    with pytest.raises(_Exec):
        main(["ui", "--port", "8602", "--headless", "--theme.base=dark"])
    assert _streamlit_options(execv[0]) == ["--server.port", "8602", "--server.headless", "true", "--theme.base=dark"]
    with pytest.raises(_Exec):
        main(["ui"])
    assert _streamlit_options(execv[1]) == []  # Streamlit's (and the app's config.toml) defaults


@pytest.mark.parametrize("argv", [["--port", "1", "--server.port", "2"], ["--port", "1", "--server.port=2"],
                                  ["--headless", "--server.headless", "false"]])
def test_a_shorthand_with_its_option_is_an_error(argv: list[str], execv: list[list[str]],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", *argv]) == 2
    assert "not both" in capsys.readouterr().err and not execv


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["info", "model.safetensors", "--server.port", "1"])
    assert stop.value.code == 2 and "unrecognized arguments: --server.port 1" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _health(port: int) -> str | None:
    """The body of Streamlit's health check on 127.0.0.1:port, or None if nothing answers (no proxies)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
            body: bytes = response.read()
            return body.decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="exec and process groups are POSIX")
def test_stopping_ui_stops_the_server(tmp_path: Path) -> None:
    """A real `flowscope ui --server.port P`: it serves on P, and SIGTERM to it frees P and leaves no child."""
    port = _free_port()
    env = {**os.environ, "HOME": str(tmp_path), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path / "ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flowscope.cli", "ui", "--server.port", str(port),
                                 "--server.headless", "true"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while _health(port) != "ok":
            assert proc.poll() is None, f"flowscope ui exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no health answer on port {port} in 60 s:\n{log.read_text()}"
            time.sleep(0.25)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 20
        while not (_port_is_free(port) and _group_is_empty(proc.pid)):
            assert time.monotonic() < deadline, f"port {port} still served after SIGTERM:\n{log.read_text()}"
            time.sleep(0.25)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)
