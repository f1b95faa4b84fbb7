"""Generate stage: config, cells, prompts, the openai client against a local HTTP endpoint, journal resume.

The endpoint here is a small OpenAI-format HTTP server on loopback (the openai library itself is not mocked);
``test_llm_server.py`` runs the same client against a real ``transformers serve``.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest
import yaml

from fairgender_utils.generate import counterfactual as cf
from fairgender_utils.generate import run as gen
from fairgender_utils.generate.config import GenerateConfig
from fairgender_utils.generate import results as res
from fairgender_utils.config import ConfigError
from fairgender_utils.generate.llm_client import (
    Endpoint,
    EndpointUnreachable,
    Journal,
    MalformedResponse,
    RequestRejected,
    complete,
    make_client,
)
from fairgender_utils.loaders import GenderWords
from fairgender_utils.paths import REPO_ROOT
from tests.scripted_llm import Loopback

WORDS = GenderWords(
    pairs=(("father", "mother"), ("he", "she"), ("king", "queen"), ("son", "daughter")),
    targets=("doctor", "nurse", "pilot"),
    swap_pairs=(("he", "she"), ("his", "her"), ("father", "mother"), ("king", "queen"), ("son", "daughter")),
)
SWAP = cf.build_swap_list(WORDS.swap_pairs)


def params(**overrides):
    values = yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text())
    values.update(
        step1_completion_prompt="S1|{attribute}|{target}",
        step2_completion_prompt="S2|{sentence}|{mapping}",
        n_cells=6,
        throughput_cells=0,
        compare_cells=1,
        max_retries=2,
        backoff_s=0.01,
        read_timeout_s=5.0,
        connect_timeout_s=2.0,
    )
    values.update(overrides)
    return values


def config(**overrides) -> GenerateConfig:
    return GenerateConfig.from_params(params(**overrides), "params/generate.yaml", check_paths=False)


def good_answer(prompt: str) -> str:
    """A well-behaved LLM for the S1/S2 templates above (with a second line that must be cut)."""
    kind, a, b = prompt.split("|")
    if kind == "S1":
        return f" The {a} met a {b} yesterday.\nS1|another|line"
    for pair in b.split(", "):
        old, new = pair.split(" -> ")
        a = re.sub(rf"\b{re.escape(old)}\b", new, a)
    return f" {a}\n"


class FakeLLM(Loopback):
    """OpenAI-format endpoint: ``statuses`` first, then ``answer(prompt)``; 500s after ``fail_after``."""

    def __init__(self, answer=good_answer, statuses=(), fail_after=None, raw_body=None):
        self.answer, self.statuses, self.fail_after, self.raw_body = (
            answer,
            list(statuses),
            fail_after,
            raw_body,
        )
        self.requests: list[dict] = []
        self.answered = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    if outer.fail_after is not None and outer.answered >= outer.fail_after:
                        status = 500
                    if status == 200:
                        outer.answered += 1
                if status != 200:
                    return self._send(status, {"error": {"message": f"status {status}"}})
                if outer.raw_body is not None:
                    return self._send(200, None, outer.raw_body)
                chat = self.path.endswith("/chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                text = outer.answer(prompt)
                choice = (
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    if chat
                    else {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                )
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion" if chat else "text_completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [choice],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                    },
                )

            def _send(self, status, obj, raw=None):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)


def endpoint(url: str, api: str = "completions") -> Endpoint:
    return Endpoint(url, "models/base/gemma-3-270m", api, "gemma-3-270m")  # type: ignore[arg-type]


# ---------------------------------------------------------------- config, cells, prompts


def test_params_file_is_valid_and_names_existing_generators():
    cfg = GenerateConfig.from_params(
        yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text()), "p", check_paths=False
    )
    assert cfg.generator in cfg.generators and set(cfg.compare_generators) <= set(cfg.generators)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"step1_chat_prompt": "Write about {attribute}."}, "step1_chat_prompt"),
        ({"generator": "gpt-9"}, "gpt-9"),
        ({"n_cells": 0}, "n_cells"),
        ({"compare_cells": 7}, "compare_cells"),
        ({"temperatur": 0.1}, "temperatur"),
    ],
)
def test_bad_params_give_one_clear_error(override, key):
    with pytest.raises(ConfigError, match="params/generate.yaml") as err:
        config(**override)
    assert key in str(err.value)


def test_cells_are_distinct_balanced_and_seeded():
    cells = gen.sample_cells(WORDS, 12, seed=3)
    assert (
        len({(c.attr_index, c.target) for c in cells}) == 12 == len({c.id for c in cells})
    )  # the whole grid
    for n in range(1, 13):  # every prefix is balanced
        pre = cells[:n]
        for counts in (Counter(c.attr_index for c in pre), Counter(c.target for c in pre)):
            assert max(counts.values()) - min(counts.values()) <= 1
        assert abs(sum(c.start == "m" for c in pre) - sum(c.start == "f" for c in pre)) <= 2
    assert gen.sample_cells(WORDS, 12, seed=3) == cells
    assert [c.id for c in gen.sample_cells(WORDS, 12, seed=4)] != [c.id for c in cells]
    with pytest.raises(ValueError, match="exceeds the grid"):
        gen.sample_cells(WORDS, 13, seed=3)


def test_each_attribute_alternates_its_starting_side():
    words = GenderWords(
        pairs=tuple((f"m{i}", f"f{i}") for i in range(4)),
        targets=tuple(f"t{i}" for i in range(6)),
        swap_pairs=(),
    )
    cells = gen.sample_cells(words, 24, seed=0)
    for j in range(4):
        starts = [c.start for c in cells if c.attr_index == j]
        assert starts.count("m") == starts.count("f") == 3


def test_prompts_for_both_apis():
    cfg = GenerateConfig.from_params(
        yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text()), "p", check_paths=False
    )
    text = gen.build_prompt(cfg, "completions", 1, attribute="uncle", target="pilot")
    assert text.endswith("Words: uncle, pilot | Sentence:") and text.count("\n") >= 3
    msgs = gen.build_prompt(cfg, "chat", 2, sentence="My uncle is a pilot.", mapping="uncle -> aunt")
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "uncle -> aunt" in msgs[1]["content"] and "My uncle is a pilot." in msgs[1]["content"]
    assert gen.mapping_text([("He", "She"), ("his", "her")]) == "He -> She, his -> her"
    assert gen.decoding(cfg, "completions", 1)["stop"] == ["\n"] and "stop" not in gen.decoding(
        cfg, "chat", 1
    )
    assert gen.decoding(cfg, "chat", 2)["max_tokens"] == cfg.max_tokens_step2
    tpl = gen.templates(cfg, "completions")
    assert (
        set(tpl) == {"step1_completion_prompt", "step2_completion_prompt"}
        and len(tpl["step1_completion_prompt"]["sha256"]) == 64
    )
    assert gen.settings_hash(cfg, "gemma-3-270m") != gen.settings_hash(
        cfg.model_copy(update={"temperature": 0.7}), "gemma-3-270m"
    )


@pytest.mark.parametrize(
    "raw, clean",
    [
        (" My father is a doctor.\nWords: x, y | Sentence: more", "My father is a doctor."),
        ('\n\n  "My father is a doctor."  \nmore', "My father is a doctor."),
        ("Sentence: My father is a doctor.", "My father is a doctor."),
        ("", ""),
        ("\n\n", ""),
    ],
)
def test_clean_response_takes_the_first_line(raw, clean):
    assert gen.clean_response(raw) == clean


# ---------------------------------------------------------------- client


def test_retries_on_429_and_5xx_then_answers():
    cfg = config()
    with FakeLLM(statuses=[429, 503]) as llm:
        rec = complete(
            make_client(llm.url, 5.0),
            endpoint(llm.url),
            "S1|father|doctor",
            gen.decoding(cfg, "completions", 1),
            max_retries=3,
            backoff_s=0.01,
        )
    assert rec["attempts"] == 3 and rec["raw"].startswith(" The father met a doctor")
    assert rec["completion_tokens"] == 7 and rec["t_end"] >= rec["t_start"]
    assert llm.requests[-1]["stop"] == ["\n"] and llm.requests[-1]["max_tokens"] == cfg.max_tokens_step1


def test_unreachable_endpoint_is_one_error_naming_the_url():
    with FakeLLM() as llm:
        url = llm.url
    with pytest.raises(EndpointUnreachable, match=f"{url}: no answer after 3 attempts"):
        complete(make_client(url, 2.0), endpoint(url), "S1|a|b", {}, max_retries=2, backoff_s=0.01)


def test_a_4xx_is_not_retried():
    with FakeLLM(statuses=[404]) as llm, pytest.raises(RequestRejected, match="status 404"):
        complete(make_client(llm.url, 5.0), endpoint(llm.url), "S1|a|b", {}, max_retries=3, backoff_s=0.01)
    assert len(llm.requests) == 1


def test_malformed_body_is_retried_then_one_error_not_an_answer():
    with FakeLLM(raw_body=b"{not json") as llm, pytest.raises(MalformedResponse, match="not JSON"):
        complete(make_client(llm.url, 5.0), endpoint(llm.url), "S1|a|b", {}, max_retries=1, backoff_s=0.01)
    assert len(llm.requests) == 2


def test_chat_api_sends_messages():
    cfg = config()
    with FakeLLM() as llm:
        prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": "S1|king|pilot"}]
        rec = complete(
            make_client(llm.url, 5.0), endpoint(llm.url, "chat"), prompt, gen.decoding(cfg, "chat", 1)
        )
    assert (
        rec["raw"].startswith(" The king met a pilot") and llm.requests[0]["messages"][0]["role"] == "system"
    )


# ---------------------------------------------------------------- runs, journal, resume


def run(cfg, url, cells, journal, concurrency=3):
    return gen.generate(endpoint(url), cfg, SWAP, cells, journal, concurrency, "test")


def test_generate_validates_and_resumes_without_asking_twice(tmp_path):
    cfg, cells = config(), gen.sample_cells(WORDS, 6, seed=1)
    path = tmp_path / "journal.jsonl"
    with FakeLLM() as llm:
        assert gen.missing(cfg, "gemma-3-270m", SWAP, cells, Journal(path)) == cells
        stats = run(cfg, llm.url, cells, Journal(path))
        assert stats["new_requests"] == 12 and len(llm.requests) == 12
        assert gen.missing(cfg, "gemma-3-270m", SWAP, cells, Journal(path)) == []
        again = run(cfg, llm.url, cells, Journal(path))
        assert again["new_requests"] == 0 and len(llm.requests) == 12
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(path), SWAP)
    assert len(pairs) == 6 and not rejects
    assert all(p["s_f"].count("\n") == 0 and not p["repaired"] for p in pairs)
    screened = res.screen(pairs, 0.5)
    assert all(0.0 <= p["toxicity"] <= 1.0 and p["toxic"] is False for p in screened)
    assert list(res.pair_record(screened[0])) == list(res.PAIR_FIELDS)


def test_crash_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    cfg, cells = config(), gen.sample_cells(WORDS, 6, seed=1)
    path = tmp_path / "journal.jsonl"
    with FakeLLM(fail_after=5) as llm, pytest.raises(EndpointUnreachable, match=llm.url):
        run(cfg, llm.url, cells, Journal(path))
    assert len(path.read_text().splitlines()) == 5  # every answered request was journalled
    with path.open("a") as f:
        f.write('{"key": "torn write')  # the process died in the middle of a line
    journal = Journal(path)
    assert len(journal) == 5 and journal.problems and ":6: corrupt JSONL line" in journal.problems[0]
    with FakeLLM() as llm:
        stats = run(cfg, llm.url, cells, journal)
    assert stats["new_requests"] == 7 == len(llm.requests)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        final = Journal(path)
    keys = [
        json.loads(ln)["key"]
        for ln in path.read_text().splitlines()
        if ln.startswith('{"key": "') and ln.endswith("}")
    ]
    assert len(final) == 12 == len(keys) == len(set(keys))


def test_bad_outputs_become_rejects_with_reasons(tmp_path):
    bad = {"father": "", "mother": "", "he": "???", "she": "???"}  # empty, and no words at all

    def answer(prompt):
        kind, a, b = prompt.split("|")
        if kind == "S1":
            return bad.get(a, f"The {a} met a {b}.")
        return " " + a  # step 2 copies the sentence: it fails, the deterministic repair fixes it

    cfg, cells = config(), gen.sample_cells(WORDS, 6, seed=1)
    with FakeLLM(answer=answer) as llm:
        run(cfg, llm.url, cells, Journal(tmp_path / "j.jsonl"))
        n_step2 = sum("S2|" in r["prompt"] for r in llm.requests)
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), SWAP)
    expected = Counter({0: "step1_empty", 1: "step1_length"}.get(c.attr_index, "repaired") for c in cells)
    assert Counter(r["reason"] for r in rejects) + Counter(repaired=len(pairs)) == expected
    assert n_step2 == expected["repaired"]  # no step 2 is asked for an unusable step-1 sentence
    assert all(p["repaired"] for p in pairs) and all(
        r["detail"] and r["step1_raw"] is not None for r in rejects
    )
    table = res.outcome_table("gemma-3-270m", cells, pairs, rejects)
    assert set(table[table.status == "repaired"].reason) == {"step2_attribute_missing"}  # why step 2 failed
    prov = res.provenance(cfg, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), pairs, rejects)
    assert prov["endpoints"] == [llm.url] and set(prov["responses"]) == {c.id for c in cells}
    assert prov["templates"]["step1_completion_prompt"]["text"] == "S1|{attribute}|{target}"
    no_repair = config(repair=False)
    pairs2, rejects2 = res.assemble(no_repair, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), SWAP)
    assert not pairs2 and sum(r["reason"].startswith("step2_") for r in rejects2) == len(pairs)


def test_duplicate_pairs_are_rejected(tmp_path):
    cfg = config()
    cells = gen.sample_cells(WORDS, 6, seed=1)
    dup = [
        cells[0],
        gen.Cell(
            99,
            "p00099-dup",
            cells[0].attr_index,
            cells[0].male_word,
            cells[0].female_word,
            cells[0].target,
            cells[0].start,
        ),
    ]
    with FakeLLM() as llm:
        run(cfg, llm.url, dup, Journal(tmp_path / "j.jsonl"))
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", dup, Journal(tmp_path / "j.jsonl"), SWAP)
    assert len(pairs) == 1 and [r["reason"] for r in rejects] == ["duplicate"]


def test_base_url_from_params_or_environment_starts_no_server(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with gen.open_endpoint(config(), "smollm2-135m-instruct") as ep:
        assert ep.base_url == "http://127.0.0.1:9/v1" and ep.api == "chat"
    with gen.open_endpoint(config(base_url="http://example.invalid/v1"), "gemma-3-270m") as ep:
        assert ep.base_url == "http://example.invalid/v1" and ep.model == "models/base/gemma-3-270m"
