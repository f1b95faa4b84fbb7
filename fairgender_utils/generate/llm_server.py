"""A local OpenAI-compatible server for a model folder: ``transformers serve`` on a free loopback port.

``serve_local`` is a context manager: it starts the server as a child process (its own process group),
waits until ``/health`` answers, yields the base URL and the model name to send, and always stops the
server on exit, also after an error or a KeyboardInterrupt; on Linux the server also gets SIGTERM when
the process that started it is killed outright. The server is pinned to the one model (preloaded before
``/health`` answers) and answers ``/v1/chat/completions`` and ``/v1/completions``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fairgender_utils.paths import repo_path

# Runs the `transformers` console script of the current interpreter, independent of PATH.
_CLI = ("import sys; from transformers.cli.transformers import main; "
        "sys.argv[0] = 'transformers'; sys.exit(main())")


class ServerStartError(RuntimeError):
    """The local server did not come up; the message names the model and shows the end of its log."""


@dataclass(frozen=True)
class LocalServer:
    base_url: str  # e.g. http://127.0.0.1:43121/v1
    model: str  # the name requests must carry (the absolute model folder)
    pid: int
    log_path: Path
    command: list[str] = field(default_factory=list)
    continuous_batching: bool = False
    startup_s: float = 0.0


def supports_continuous_batching() -> bool:
    """Whether the installed ``transformers serve`` has ``--continuous-batching``."""
    from transformers.cli.serve import Serve

    return "continuous_batching" in inspect.signature(Serve.__init__).parameters


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def health(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url/health`` answers 200 with status ok."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as r:
            return r.status == 200 and json.loads(r.read() or b"{}").get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _die_with_parent() -> None:
    """Linux: the server receives SIGTERM when the process that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after ``grace_s``; return once it has exited."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def serve_local(model_dir: str | Path, *, continuous_batching: bool = True, device: str = "cpu",
                dtype: str = "auto", host: str = "127.0.0.1", port: int | None = None,
                startup_timeout_s: float = 600.0, log_path: str | Path | None = None,
                seed: int | None = None, threads: int = 0, cb_num_blocks: int = 0,
                cb_max_batch_tokens: int = 0) -> Iterator[LocalServer]:
    """Serve ``model_dir`` with ``transformers serve`` on loopback; stop it on exit, whatever happens.

    ``threads`` > 0 caps the server's CPU threads (OMP/MKL); on a shared CPU one thread avoids the
    thread contention that otherwise makes decoding several times slower. ``cb_num_blocks`` (KV-cache
    blocks of 256 tokens) and ``cb_max_batch_tokens`` size the continuous-batching cache; left at 0 the
    library sizes it from free memory (most of the machine's RAM on a CPU, and slower: the attention
    masks span the whole cache).
    """
    folder = repo_path(model_dir).resolve()
    if not (folder / "config.json").is_file():
        raise ServerStartError(f"{model_dir}: not a model folder (no config.json); "
                               "run the models stage first")
    cb = continuous_batching and supports_continuous_batching()
    port = port or free_port(host)
    cmd = [sys.executable, "-c", _CLI, "serve", str(folder), "--host", host, "--port", str(port),
           "--device", device, "--dtype", dtype, "--log-level", "warning",
           "--continuous-batching" if cb else "--no-continuous-batching"]
    if seed is not None:
        cmd += ["--default-seed", str(seed)]
    if cb and cb_num_blocks > 0:
        cmd += ["--cb-num-blocks", str(cb_num_blocks)]
    if cb and cb_max_batch_tokens > 0:
        cmd += ["--cb-max-batch-tokens", str(cb_max_batch_tokens)]
    if log_path is None:
        log_path = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")[1]
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false"}
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    url = f"http://{host}:{port}"
    t0 = time.perf_counter()
    with log.open("w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    try:
        while not health(url):
            if proc.poll() is not None:
                raise ServerStartError(f"transformers serve exited with status {proc.returncode} before "
                                       f"{url}/health answered (model {folder}); log {log}:\n{_tail(log)}")
            if time.perf_counter() - t0 > startup_timeout_s:
                raise ServerStartError(f"{url}/health did not answer within {startup_timeout_s:.0f} s "
                                       f"(model {folder}); log {log}:\n{_tail(log)}")
            time.sleep(0.5)
        yield LocalServer(f"{url}/v1", str(folder), proc.pid, log, cmd, cb, time.perf_counter() - t0)
    finally:
        stop(proc)
