"""Generate stage under bad input: malformed replies, status codes, a silent endpoint, a damaged journal,
credentials in the endpoint URL. Everything runs against loopback HTTP servers in a few seconds."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
import yaml

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate import run as gen
from fairgender_utils.generate import results as res
from fairgender_utils.config import ConfigError
from fairgender_utils.io import write_json, write_jsonl
from fairgender_utils.generate.llm_client import (Endpoint, EndpointUnreachable, Journal, MalformedResponse,
                                         RequestRejected, complete, make_client)
from fairgender_utils.loaders import GenderWords
from fairgender_utils.paths import REPO_ROOT
from tests.scripted_llm import Loopback

WORDS = GenderWords(pairs=(("father", "mother"), ("he", "she"), ("king", "queen")),
                    targets=("doctor", "nurse"),
                    swap_pairs=(("he", "she"), ("his", "her"), ("father", "mother"), ("king", "queen")))
SWAP = cf.build_swap_list(WORDS.swap_pairs)
JSON = "application/json"


def good(body: dict, chat: bool) -> bytes:
    prompt = body["messages"][-1]["content"] if chat else body["prompt"]
    kind, a, b = prompt.split("|")
    if kind == "S1":
        text = f"The {a} met a {b} yesterday."
    else:
        for pair in b.split(", "):
            old, new = pair.split(" -> ")
            a = " ".join(new if w == old else w for w in a.split(" "))
        text = a
    choice = ({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}} if chat
              else {"index": 0, "finish_reason": "stop", "text": " " + text})
    return json.dumps({"id": "x", "object": "x", "created": 0, "model": body["model"], "choices": [choice],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 7}}).encode()


class Scripted(Loopback):
    """Loopback endpoint: replies from ``script`` (status, content type, body) first, then good answers."""

    def __init__(self, script=()):
        self.script, self.requests, self.lock = list(script), [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                           "body": body})
                    step = outer.script.pop(0) if outer.script else None
                status, ctype, data = step or (200, JSON, good(body, self.path.endswith("/chat/completions")))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)


def config(**overrides) -> gen.GenerateConfig:
    values = yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text())
    values.update(step1_completion_prompt="S1|{attribute}|{target}",
                  step2_completion_prompt="S2|{sentence}|{mapping}",
                  step1_chat_prompt="S1|{attribute}|{target}", step2_chat_prompt="S2|{sentence}|{mapping}",
                  n_cells=4, throughput_cells=0, compare_cells=1, max_retries=2, backoff_s=0.01,
                  read_timeout_s=5.0, connect_timeout_s=2.0, stream=False, step1_prefill=False,
                  step2_prefill=False)
    values.update(overrides)
    return gen.GenerateConfig.from_params(values, "params/generate.yaml", check_paths=False)


def run(url: str, cfg: gen.GenerateConfig, cells, journal: Journal, concurrency: int, phase: str = "t"):
    return gen.generate(Endpoint(url, "m", "completions", "gemma-3-270m"), cfg, SWAP, cells, journal,
                        concurrency, phase)


def ask(url: str, api: str = "completions", retries: int = 2, stream: bool = False, **client):
    prompt = "S1|he|doctor" if api == "completions" else [{"role": "user", "content": "S1|he|doctor"}]
    ep = Endpoint(url, "m", api)  # type: ignore[arg-type]
    return complete(make_client(url, client.get("read", 5.0), connect_timeout_s=client.get("connect", 2.0)),
                    ep, prompt, {}, max_retries=retries, backoff_s=0.01, stream=stream)


# ---------------------------------------------------------------- malformed replies

MALFORMED = {
    "empty": (JSON, b"", "empty body"),
    "html": ("text/html", b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
    "not json": (JSON, b"{not json", "not JSON"),
    "not utf-8": (JSON, b'{"choices": "\xff\xfe"}', "not UTF-8"),
    "json list": (JSON, b"[1, 2]", "JSON list"),
    "json string": (JSON, b'"hello"', "JSON str"),
    "no choices": (JSON, b'{"id": "x"}', "no choices"),
    "error object": (JSON, b'{"error": {"message": "model overloaded"}}', "model overloaded"),
    "empty choices": (JSON, b'{"choices": []}', "no choices"),
    "choices not a list": (JSON, b'{"choices": {"text": "a"}}', "no choices"),
    "choice null": (JSON, b'{"choices": [null]}', "choices.0. is a NoneType"),
    "choice empty": (JSON, b'{"choices": [{}]}', r"choices\[0\].text is null"),
    "text a number": (JSON, b'{"choices": [{"text": 5}]}', r"choices\[0\].text is 5"),
    "text a list": (JSON, b'{"choices": [{"text": ["a"]}]}', "not a string"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_reply_is_retried_then_one_error_naming_url_and_reply(name):
    ctype, body, what = MALFORMED[name]
    with Scripted([(200, ctype, body)] * 3) as llm, pytest.raises(MalformedResponse) as err:
        ask(llm.url, retries=2)
    assert len(llm.requests) == 3  # retried, not taken as an answer
    msg = str(err.value)
    assert msg.startswith(f"{llm.url}: no usable answer after 3 attempts") and "\n" not in msg
    assert re.search(what, msg), msg


@pytest.mark.parametrize("body", [b'{"choices": [{"message": null}]}', b'{"choices": [{"message": {}}]}',
                                  b'{"choices": [{"message": {"content": 7}}]}',
                                  b'{"choices": [{"message": {"content": null}}]}',
                                  b'{"choices": [{"text": "a completions reply"}]}'])
def test_malformed_chat_reply(body):
    with Scripted([(200, JSON, body)] * 2) as llm, pytest.raises(MalformedResponse, match="message.content"):
        ask(llm.url, "chat", retries=1)


SSE = "text/event-stream"


@pytest.mark.parametrize("body, what", [
    (b'data: {"error": {"message": "model overloaded"}}\n\n', "model overloaded"),
    (b"data: {not json\n\n", "JSONDecodeError"),
    (b'data: {"id": "x", "choices": [{"index": 0, "text": 5, "finish_reason": null}]}\n\n', "not a string"),
])
def test_a_malformed_stream_is_retried_then_one_error(body, what):
    with Scripted([(200, SSE, body)] * 3) as llm, pytest.raises(MalformedResponse) as err:
        ask(llm.url, retries=2, stream=True)
    assert len(llm.requests) == 3 and re.search(what, str(err.value)), str(err.value)
    assert str(err.value).startswith(f"{llm.url}: no usable answer after 3 attempts")


def test_a_stream_cut_short_is_retried_and_then_an_answer():
    cut = b'data: {"id": "x", "choices": [{"index": 0, "text": " The he", "finish_reason": null}]}\n\n'
    with Scripted([(200, SSE, cut)]) as llm:
        rec = ask(llm.url, retries=2, stream=True)
    # a stream that ends without [DONE] and without a newline is a (short) answer, taken as it came
    assert rec["raw"] == " The he" and rec["attempts"] == 1 and len(llm.requests) == 1


def test_a_malformed_reply_then_a_good_one_is_an_answer():
    with Scripted([(200, "text/html", b"<html>"), (200, JSON, b"[]")]) as llm:
        rec = ask(llm.url, retries=2)
    assert rec["attempts"] == 3 and rec["raw"].startswith(" The he met a doctor") and "error" not in rec


def test_an_empty_string_is_a_real_answer():
    body = b'{"choices": [{"text": "", "finish_reason": "length"}], "usage": {"completion_tokens": "x"}}'
    with Scripted([(200, JSON, body)]) as llm:
        rec = ask(llm.url)
    got = (rec["raw"], rec["finish_reason"], rec["completion_tokens"], rec["attempts"])
    assert got == ("", "length", None, 1)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_are_retried(status):
    with Scripted([(status, JSON, b'{"error": "busy"}')] * 2) as llm:
        rec = ask(llm.url, retries=2)
    assert rec["attempts"] == 3 and len(llm.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_fail_at_once(status):
    with Scripted([(status, JSON, b'{"error": {"message": "no such model"}}')]) as llm, \
            pytest.raises(RequestRejected, match=f"{llm.url} rejected .* status {status}"):
        ask(llm.url, retries=3)
    assert len(llm.requests) == 1


def test_persistent_5xx_is_one_error():
    with Scripted([(503, "text/html", b"<h1>down</h1>")] * 3) as llm, \
            pytest.raises(EndpointUnreachable, match=f"{llm.url}: no answer after 3 attempts .*status 503"):
        ask(llm.url, retries=2)


def test_generate_journals_no_malformed_reply_and_a_healthy_rerun_asks_again(tmp_path):
    cfg, cells = config(), gen.sample_cells(WORDS, 4, seed=0)
    path = tmp_path / "journal.jsonl"
    with Scripted([(200, JSON, b'{"choices": []}')] * 100) as bad, \
            pytest.raises(MalformedResponse, match=bad.url):
        run(bad.url, cfg, cells, Journal(path), 2)
    assert not path.exists() or path.read_text() == ""  # nothing was taken as an answer
    with Scripted() as ok:
        stats = run(ok.url, cfg, cells, Journal(path), 2)
    assert stats["new_requests"] == 8
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(path), SWAP)
    assert len(pairs) == 4 and not rejects


# ---------------------------------------------------------------- a silent endpoint, timeouts


@pytest.fixture
def silent_url():
    """A loopback socket that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held, done = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    done.set()
    for c in held:
        c.close()
    srv.close()


def test_silent_endpoint_fails_fast_with_one_error(silent_url):
    t0 = time.perf_counter()
    pattern = f"{silent_url}: no answer after 3 attempts .*APITimeoutError"
    with pytest.raises(EndpointUnreachable, match=pattern):
        ask(silent_url, retries=2, read=0.3)
    assert time.perf_counter() - t0 < 3.0  # 3 x 0.3 s + backoff


def test_silent_endpoint_stops_a_whole_run_quickly(silent_url, tmp_path):
    cfg = config(read_timeout_s=0.3, max_retries=1)
    t0 = time.perf_counter()
    with pytest.raises(EndpointUnreachable, match=silent_url):
        run(silent_url, cfg, gen.sample_cells(WORDS, 6, seed=0), Journal(tmp_path / "j.jsonl"), 3)
    assert time.perf_counter() - t0 < 4.0


def test_default_timeouts_fail_within_three_minutes():
    cfg = config(**{k: yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text())[k]
                    for k in ("connect_timeout_s", "read_timeout_s", "max_retries", "backoff_s")})
    attempts = cfg.max_retries + 1
    waits = cfg.backoff_s * (2 ** cfg.max_retries - 1)
    worst = attempts * (cfg.connect_timeout_s + cfg.read_timeout_s) + waits
    assert worst <= 180, worst
    client = make_client("http://127.0.0.1:9/v1", cfg.read_timeout_s, connect_timeout_s=cfg.connect_timeout_s)
    assert (client.timeout.connect, client.timeout.read, client.max_retries) == (
        cfg.connect_timeout_s, cfg.read_timeout_s, 0)


@pytest.mark.parametrize("key, value", [("read_timeout_s", 0), ("connect_timeout_s", -1.0),
                                        ("max_retries", -1), ("backoff_s", 0.0)])
def test_timeout_params_are_checked(key, value):
    with pytest.raises(ConfigError, match=f"params/generate.yaml: key '{key}'"):
        config(**{key: value})


# ---------------------------------------------------------------- a damaged journal


def _record(key: str, **extra) -> dict:
    return {"key": key, "cell_id": "c", "step": 1, "generator": "g", "settings": "s", "phase": "p",
            "run_id": "r", "concurrency": 1, "raw": "A sentence.", "finish_reason": "stop",
            "completion_tokens": 3, "attempts": 1, "t_start": 1.0, "t_end": 2.0, "latency_s": 1.0, **extra}


def test_journal_lines_with_missing_or_wrong_fields_are_named_and_skipped(tmp_path):
    path = tmp_path / "journal.jsonl"
    no_raw = _record("k2")
    del no_raw["raw"]
    lines = [json.dumps(_record("k1")), json.dumps(no_raw), json.dumps(_record("k3", raw=None)), "[1, 2]",
             json.dumps(_record("k5", step="one")), json.dumps(_record("k6", t_start=True)), "",
             json.dumps(_record("k8"))]
    path.write_bytes("\n".join(lines).encode() + b"\n" + b'{"key": "\xff\xfe"}\n' + b"\n\n")
    journal = Journal(path)
    assert set(journal.records) == {"k1", "k8"}
    problems = "\n".join(journal.problems)
    for needle in (":2: no 'raw'", ":3: 'raw' is null, not str", ":4: corrupt JSONL line (a JSON list",
                   ":5: 'step' is \"one\", not int", ":6: 't_start' is true",
                   ":9: corrupt JSONL line (not UTF-8)"):
        assert needle in problems, problems
    assert len(journal.problems) == 6 and all(str(path) in p for p in journal.problems)
    assert path.read_bytes().count(b"\n") == 11  # nothing was removed from the file


def test_a_malformed_reply_saved_by_an_older_version_is_asked_again(tmp_path):
    cfg, cells = config(), gen.sample_cells(WORDS, 2, seed=0)
    path = tmp_path / "journal.jsonl"
    with Scripted() as llm:
        run(llm.url, cfg, cells, Journal(path), 1)
    recs = [json.loads(ln) for ln in path.read_text().splitlines()]
    first = next(r for r in recs if r["step"] == 1)
    write_jsonl(path, [{**first, "raw": "", "error": "malformed response: JSONDecodeError"}]
                + [r for r in recs if r["cell_id"] != first["cell_id"]])
    journal = Journal(path)
    assert first["key"] not in journal and "asked again" in journal.problems[0]
    with Scripted() as llm:
        stats = run(llm.url, cfg, cells, journal, 1)
    assert stats["new_requests"] == 2
    again = Journal(path)
    assert again.problems == [] and again.get(first["key"])["raw"].startswith(" The")


# ---------------------------------------------------------------- credentials


def test_credentials_never_reach_a_written_file_a_log_or_an_error(tmp_path, monkeypatch, caplog, capfd):
    secret, token = "s3cr3t-pa55word", "t0ken-in-query"
    cfg, cells = config(), gen.sample_cells(WORDS, 4, seed=0)
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    with Scripted() as llm:
        url = llm.url.replace("http://", f"http://fairuser:{secret}@") + f"?api-key={token}"
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        journal = Journal(out / "journal.jsonl")
        with gen.open_endpoint(cfg, "gemma-3-270m") as ep:
            assert secret not in repr(ep)
            gen.generate(ep, cfg, SWAP, cells, journal, 2, "t")
        sent = llm.requests
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, journal, SWAP)
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "rejects.jsonl", rejects)
    write_json(out / "provenance.json", res.provenance(cfg, "gemma-3-270m", journal, pairs, rejects))
    cfg.write(out / "config.json")
    # the credentials still reach the endpoint: basic auth and the query parameter
    assert sent and all(r["auth"] == "Basic " + base64.b64encode(f"fairuser:{secret}".encode()).decode()
                        for r in sent)
    assert all(f"api-key={token}" in r["path"] for r in sent)
    with pytest.raises(MalformedResponse) as err, Scripted([(200, JSON, b"[]")] * 3) as bad:
        ask(bad.url.replace("http://", f"http://u:{secret}@") + f"?api-key={token}")
    written = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(written) == 5 and len(pairs) == 4
    captured = capfd.readouterr()
    texts = [b.decode() for b in written.values()]
    for text in [*texts, caplog.text, captured.out, captured.err, str(err.value)]:
        assert secret not in text and token not in text
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["endpoints"] == [llm.url + "?api-key=***"]


def test_provenance_hides_credentials_journalled_by_an_older_version(tmp_path):
    cfg, cells = config(), gen.sample_cells(WORDS, 1, seed=0)
    path = tmp_path / "journal.jsonl"
    with Scripted() as llm:
        run(llm.url, cfg, cells, Journal(path), 1)
    leaky = "http://me:hunter22@host:8000/v1"
    old = [{**json.loads(ln), "base_url": leaky} for ln in path.read_text().splitlines()]
    write_jsonl(path, old)
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(path), SWAP)
    prov = res.provenance(cfg, "gemma-3-270m", Journal(path), pairs, rejects)
    assert prov["endpoints"] == ["http://host:8000/v1"]


@pytest.mark.parametrize("url", ["http://me:pw@host/v1", "http://host/v1?key=abc", "https://me@host/v1"])
def test_credentials_in_the_params_file_are_refused(url):
    with pytest.raises(ConfigError, match="key 'base_url': .*holds credentials .*OPENAI_BASE_URL"):
        config(base_url=url)


def test_public_url_forms():
    from fairgender_utils.generate.endpoint_url import public_url

    assert public_url("http://u:p%40ss@Host.example:8080/v1?key=1&api-version=2#frag") == \
        "http://host.example:8080/v1?key=***&api-version=***"
    assert public_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert public_url("http://localhost:99999999/v1") == "http://localhost/v1"
    assert public_url("") == ""


def test_log_records_of_the_http_stack_are_redacted(caplog):
    from fairgender_utils.generate.endpoint_url import redact_logs

    redact_logs(frozenset({"very-secret-value"}))
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").info("HTTP Request: POST %s", "http://h/v1?k=very-secret-value")
    assert "very-secret-value" not in caplog.text and "k=***" in caplog.text



@pytest.mark.parametrize("status, kind", [(401, RequestRejected), (200, MalformedResponse),
                                          (503, EndpointUnreachable)])
def test_credentials_echoed_by_the_server_are_hidden_in_the_error(status, kind):
    secret = "echoed-s3cret"
    body = json.dumps({"error": {"message": f"invalid key {secret} for user admin:{secret}"}}).encode()
    with Scripted([(status, JSON, body)] * 2) as llm, pytest.raises(kind) as err:
        ask(llm.url.replace("http://", f"http://admin:{secret}@") + f"?key={secret}", retries=1)
    assert secret not in str(err.value) and "***" in str(err.value)
