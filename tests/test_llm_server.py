"""A real ``transformers serve`` on loopback with a tiny model, driven through the openai client."""

from __future__ import annotations

import os

import pytest

from fairgender_utils.generate import run as gen
from fairgender_utils.generate import results as res
from fairgender_utils.generate.llm_client import Endpoint, Journal, complete, make_client
from fairgender_utils.generate.llm_server import ServerStartError, health, serve_local, supports_continuous_batching
from tests import tiny_models
from tests.test_generation import SWAP, WORDS, config

CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """The tiny decoder with a chat template, so both endpoints can serve it."""
    from transformers import AutoTokenizer

    folder = tiny_models.build("llama", tmp_path_factory.mktemp("tiny") / "llama")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return folder


def _gone(pid: int) -> bool:
    """The process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_installed_transformers_serve_has_continuous_batching():
    assert supports_continuous_batching()


def test_real_server_completions_chat_and_a_run_then_stops_on_interrupt(tiny_llama, tmp_path):
    cfg = config(
        generators={"tiny": {"model": str(tiny_llama), "api": "completions"}},
        generator="tiny",
        compare_generators=[],
        max_tokens_step1=6,
        max_tokens_step2=6,
        min_words=1,
        candidates=1,
        step2_candidates=1,
    )
    with pytest.raises(KeyboardInterrupt):
        with serve_local(
            tiny_llama,
            continuous_batching=True,
            threads=1,
            cb_num_blocks=4,
            cb_max_batch_tokens=256,
            log_path=tmp_path / "serve.log",
            startup_timeout_s=120,
        ) as srv:
            url = srv.base_url.removesuffix("/v1")
            assert health(url) and srv.continuous_batching and srv.base_url.startswith("http://127.0.0.1:")
            client = make_client(srv.base_url, 60.0)
            rec = complete(
                client,
                Endpoint(srv.base_url, srv.model, "completions"),
                "The doctor said",
                {"max_tokens": 5, "temperature": 0.0, "seed": 0},
            )
            assert isinstance(rec["raw"], str) and 1 <= rec["completion_tokens"] <= 5 and rec["attempts"] == 1
            streamed = complete(client, Endpoint(srv.base_url, srv.model, "completions"), "The doctor said",
                                {"max_tokens": 5, "temperature": 0.0}, stream=True)
            assert streamed["raw"].startswith(rec["raw"].split("\n")[0]) and 1 <= streamed["completion_tokens"] <= 5
            chat = complete(
                client,
                Endpoint(srv.base_url, srv.model, "chat"),
                [{"role": "user", "content": "Write a sentence."}],
                {"max_tokens": 5, "temperature": 0.0},
            )
            assert isinstance(chat["raw"], str) and 1 <= chat["completion_tokens"] <= 5
            # the stage's own run: two cells, both steps where step 1 is usable, journalled; random text is
            # rejected with a reason, never a crash
            cells = gen.sample_cells(WORDS, 2, seed=0)
            journal = Journal(tmp_path / "journal.jsonl")
            stats = gen.generate(
                Endpoint(srv.base_url, srv.model, "completions", "tiny"), cfg, SWAP, cells, journal, 2, "test"
            )
            assert 2 <= stats["new_requests"] <= 4 == 2 * len(cells)
            pairs, rejects = res.assemble(cfg, "tiny", cells, journal, SWAP)
            assert len(pairs) + len(rejects) == 2 and all(r["reason"] for r in rejects)
            pid = srv.pid
            raise KeyboardInterrupt  # the user stops the notebook
    assert _gone(pid) and not health(url)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ServerStartError, match="models/base/nope: not a model folder"):
        with serve_local("models/base/nope"):
            pass


@pytest.mark.slow  # about 45 s: the server searches every processor class before it gives up
def test_server_that_cannot_load_the_model_fails_with_its_log(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ServerStartError, match=r"exited with status \d+ before .*/health answered") as err:
        with serve_local(
            bad, continuous_batching=False, startup_timeout_s=120, log_path=tmp_path / "serve.log"
        ):
            pass
    assert str(bad) in str(err.value) and "serve.log" in str(err.value)


@pytest.mark.slow  # starts a second server
def test_server_dies_with_the_process_that_started_it(tiny_llama, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time; from fairgender_utils.generate.llm_server import serve_local\n"
            f"with serve_local({str(tiny_llama)!r}, continuous_batching=False, threads=1) as s:\n"
            "    print(s.pid, s.base_url, flush=True); time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid, url = parent.stdout.readline().split()
    os.kill(parent.pid, signal.SIGKILL)  # no finally runs in the parent
    parent.wait()
    deadline = time.time() + 30
    while not _gone(int(pid)) and time.time() < deadline:
        time.sleep(0.5)
    assert _gone(int(pid)) and not health(url.removesuffix("/v1"))
