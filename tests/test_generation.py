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
from tests.scripted_llm import Loopback, send_sse

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
        step1_prefill=False,
        step2_prefill=False,
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

    def __init__(self, answer=good_answer, statuses=(), fail_after=None, raw_body=None, delay_s=0.0):
        self.answer, self.statuses, self.fail_after, self.raw_body = (
            answer,
            list(statuses),
            fail_after,
            raw_body,
        )
        self.delay_s, self.sent_pieces = delay_s, []
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
                if body.get("stream"):
                    return outer.sent_pieces.append(send_sse(self, body, text, chat, outer.delay_s))
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


def params_config(**overrides) -> GenerateConfig:
    """The params file's own prompts and example banks."""
    values = {**yaml.safe_load((REPO_ROOT / "params/generate.yaml").read_text()), **overrides}
    return GenerateConfig.from_params(values, "p", check_paths=False)


def test_prompts_for_both_apis():
    cfg = params_config()
    text = gen.build_prompt(cfg, "completions", 1, attribute="uncle", target="pilot")
    assert text.endswith("\nWords: uncle, pilot | Sentence:") and text.count("\n") == 1 + cfg.fewshot_k_step1
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
        set(tpl) == {"step1_completion_prompt", "step2_completion_prompt", "step1_examples", "step2_examples"}
        and len(tpl["step1_completion_prompt"]["sha256"]) == 64
    )
    assert gen.settings_hash(cfg, "gemma-3-270m") != gen.settings_hash(
        cfg.model_copy(update={"temperature": 0.7}), "gemma-3-270m"
    )


def _example_lines(prompt: str) -> list[str]:
    return prompt.split("\n")[1:-1]  # between the instruction and the query line


def test_few_shot_examples_rotate_per_request_seeded_or_stay_fixed():
    cfg = params_config(fewshot_k_step1=4, fewshot_k_step2=3)
    bank = [f"Words: {a}, {t} | Sentence: {s}" for a, t, s in cfg.step1_examples]
    draws = [_example_lines(gen.build_prompt(cfg, "completions", 1, "p00001-x", k, attribute="uncle",
                                             target="pilot")) for k in range(6)]
    assert all(len(d) == 4 == len(set(d)) and set(d) <= set(bank) for d in draws)
    assert len({tuple(d) for d in draws}) == 6  # every candidate its own draw
    assert len({d[-1] for d in draws}) > 1  # no fixed last example
    again = gen.build_prompt(cfg, "completions", 1, "p00001-x", 3, attribute="uncle", target="pilot")
    assert _example_lines(again) == draws[3]  # seeded: the same request is the same prompt
    other_seed = gen.build_prompt(cfg.model_copy(update={"seed": 7}), "completions", 1, "p00001-x", 3,
                                  attribute="uncle", target="pilot")
    assert _example_lines(other_seed) != draws[3]
    fixed = cfg.model_copy(update={"fewshot_rotate": False, "fewshot_k_step1": 5})
    for k in range(3):
        assert _example_lines(gen.build_prompt(fixed, "completions", 1, "p00001-x", k, attribute="uncle",
                                               target="pilot")) == bank[:5]
    step2 = _example_lines(gen.build_prompt(cfg, "completions", 2, "p00001-x", 0, sentence="My uncle is a pilot.",
                                            mapping="uncle -> aunt"))
    bank2 = [f"Sentence: {a} | Swap: {b} | Rewritten: {c}" for a, b, c in cfg.step2_examples]
    assert len(step2) == 3 and set(step2) <= set(bank2)


@pytest.mark.parametrize("attribute, prefill", [("czar", " The czar"), ("grandfathers", " The grandfathers"),
                                                ("he", " He"), ("her", " Her"), ("mr.", " Mr."), ("him", ""),
                                                ("himself", ""), ("fathered", ""), ("ballet dancer", " The ballet dancer")])
def test_step1_prefill(attribute, prefill):
    from fairgender_utils.generate.prompts import step1_prefill

    cfg = params_config(step1_prefill=True)
    assert step1_prefill(cfg, "completions", attribute) == prefill
    assert step1_prefill(cfg, "chat", attribute) == "" == step1_prefill(cfg.model_copy(update={"step1_prefill": False}),
                                                                     "completions", attribute)
    prompt = gen.build_prompt(cfg, "completions", 1, "c", 0, prefill, attribute=attribute, target="pilot")
    assert prompt.endswith(f"Words: {attribute}, pilot | Sentence:{prefill}")


@pytest.mark.parametrize("sentence, mapping, prefill", [
    ("She said her son is a pilot.", [("She", "He"), ("her", "his")], " He"),
    ("My mother is a pilot.", [("mother", "father")], " My father"),
    ("The pilot thanked the queen and her son.", [("queen", "king"), ("her", "his")], " The pilot thanked the king"),
    ("The pilot is kind.", [], ""),
])
def test_step2_prefill_stops_at_the_first_swapped_word(sentence, mapping, prefill):
    from fairgender_utils.generate.prompts import step2_prefill

    cfg = params_config(step2_prefill=True)
    assert step2_prefill(cfg, "completions", sentence, mapping) == prefill
    assert step2_prefill(cfg.model_copy(update={"step2_prefill": False}), "completions", sentence, mapping) == ""


def test_splits_by_target_word():
    targets = [f"t{i}" for i in range(10)]
    split = gen.assign_splits(targets, [0.6, 0.2, 0.2], seed=1)
    assert set(split) == set(targets) and Counter(split.values()) == {"train": 6, "dev": 2, "test": 2}
    assert gen.assign_splits(list(reversed(targets)), [0.6, 0.2, 0.2], seed=1) == split  # order-free, seeded
    assert gen.assign_splits(targets, [0.6, 0.2, 0.2], seed=2) != split
    assert Counter(gen.assign_splits([f"t{i}" for i in range(160)], [0.6, 0.2, 0.2], 42).values()) == {
        "train": 96, "dev": 32, "test": 32}
    with pytest.raises(ConfigError, match="split_shares"):
        config(split_shares=[0.6, 0.3, 0.2])


def test_related_target_words_share_a_split():
    targets = [f"t{i}" for i in range(20)]
    together = [["t0", "t1"], ["t2", "t3", "t4"], ["t4", "t5"]]  # t2..t5 chain into one unit
    for seed in range(10):
        split = gen.assign_splits(targets, [0.6, 0.2, 0.2], seed, together)
        assert len({split[t] for t in ("t0", "t1")}) == 1 and len({split[t] for t in ("t2", "t3", "t4", "t5")}) == 1
        counts = Counter(split.values())
        assert set(split) == set(targets) and abs(counts["train"] - 12) <= 3 and abs(counts["test"] - 4) <= 3
    with pytest.raises(ValueError, match=r"split_together: \['nope'\] not among the target words"):
        gen.assign_splits(targets, [0.6, 0.2, 0.2], 0, [["t0", "nope"]])
    real = params_config()
    split = gen.assign_splits([*sum(real.split_together, []), *targets], real.split_shares, real.split_seed,
                              real.split_together)
    assert all(len({split[w] for w in group}) == 1 for group in real.split_together)


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
    splits = gen.assign_splits(WORDS.targets, [0.6, 0.2, 0.2], 0)
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(path), SWAP, splits)
    assert len(pairs) == 6 and not rejects
    assert all(p["s_f"].count("\n") == 0 and p["step2"] == "llm" for p in pairs)
    assert all(p["split"] == splits[p["target_word"]] and p["target"] == p["target_word"] for p in pairs)
    recs = Journal(path).records.values()
    assert all(r["finish_reason"] == "newline" and r["completion_tokens"] == 7 for r in recs if r["step"] == 1)
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
        return " " + a  # step 2 copies the sentence: it fails, the deterministic swap is the fallback

    cfg, cells = config(candidates=1, step2_candidates=1), gen.sample_cells(WORDS, 6, seed=1)
    with FakeLLM(answer=answer) as llm:
        run(cfg, llm.url, cells, Journal(tmp_path / "j.jsonl"))
        n_step2 = sum("S2|" in r["prompt"] for r in llm.requests)
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), SWAP)
    expected = Counter({0: "step1_empty", 1: "step1_length"}.get(c.attr_index, "swap") for c in cells)
    assert Counter(r["reason"] for r in rejects) + Counter(swap=len(pairs)) == expected
    assert n_step2 == expected["swap"]  # no step 2 is asked for an unusable step-1 sentence
    assert all(p["step2"] == "swap" and p["step2_reason"] == "step2_attribute_missing" for p in pairs)
    assert all(r["detail"] and len(r["raw"]) == 1 for r in rejects)
    table = res.outcome_table("gemma-3-270m", cells, pairs, rejects)
    assert set(table[table.status == "swap"].reason) == {"step2_attribute_missing"}  # why the rewrite failed
    prov = res.provenance(cfg, "gemma-3-270m", Journal(tmp_path / "j.jsonl"), pairs, rejects)
    assert prov["endpoints"] == [llm.url] and set(prov["responses"]) == {c.id for c in cells}
    assert prov["templates"]["step1_completion_prompt"]["text"] == "S1|{attribute}|{target}"
    assert {len(v) for k, v in prov["responses"].items() if k in {p["id"] for p in pairs}} == {2}
    no_swap = config(candidates=1, step2_candidates=1, swap_fallback=False)
    pairs2, rejects2 = res.assemble(no_swap, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), SWAP)
    assert not pairs2 and sum(r["reason"].startswith("step2_") for r in rejects2) == len(pairs)


def test_candidates_first_valid_is_kept_and_llm_and_swap_are_told_apart(tmp_path):
    """Step 1: the first answer to each prompt is unusable, the second good. Step 2: the first rewrite copies
    the sentence, the second is right, except for the king / queen cells, whose rewrites always fail."""
    seen: Counter = Counter()

    def answer(prompt):
        seen[prompt] += 1
        kind, a, b = prompt.split("|")
        if kind == "S1":
            return "There are no such words here." if seen[prompt] == 1 else f" The {a} met a {b} yesterday."
        if seen[prompt] == 1 or "king" in b or "queen" in b:
            return " " + a
        return good_answer(prompt)

    cfg, cells = config(candidates=2, step2_candidates=2), gen.sample_cells(WORDS, 8, seed=1)
    with FakeLLM(answer=answer) as llm:
        run(cfg, llm.url, cells, Journal(tmp_path / "j.jsonl"))
    pairs, rejects = res.assemble(cfg, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), SWAP)
    assert not rejects and len(pairs) == 8
    royal = {p["id"] for p in pairs if p["male_word"] == "king"}
    assert len(royal) == 2 and all(p["step2"] == ("swap" if p["id"] in royal else "llm") for p in pairs)
    assert all(p["step1_tries"] == 2 and p["step2_tries"] == 2 and len(p["keys"]) == 4 for p in pairs)
    assert len(llm.requests) == 8 * 4
    one = res.assemble(config(candidates=1, step2_candidates=2), "gemma-3-270m", cells,
                       Journal(tmp_path / "j.jsonl"), SWAP)
    assert not one[0] and {r["reason"] for r in one[1]} == {"step1_target_missing"}  # one candidate: all fail
    table = res.rates(res.outcome_table("gemma-3-270m", cells, pairs, rejects))
    assert table[["cells", "pairs_llm", "pairs"]].values.tolist() == [[8, 6, 8]]


def test_an_inflected_form_counts_and_is_recorded(tmp_path):
    def answer(prompt):
        kind, a, b = prompt.split("|")
        if kind == "S1":
            return f" Two {a}s met three {b}s yesterday."
        return good_answer(prompt)

    cfg = config(inflect=True, candidates=1)
    words = GenderWords(pairs=(("father", "mother"),), targets=("doctor",), swap_pairs=(("father", "mother"),))
    swap, cells = gen.swap_list(cfg, words), gen.sample_cells(words, 1, seed=0)
    assert (("fathers",), ("mothers",)) in swap.pairs
    with FakeLLM(answer=answer) as llm:
        gen.generate(endpoint(llm.url), cfg, swap, cells, Journal(tmp_path / "j.jsonl"), 1, "t")
    [p], _ = res.assemble(cfg, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), swap)
    assert (p["target"], p["target_word"], p["form_m"], p["form_f"]) == ("doctors", "doctor", "fathers", "mothers")
    assert (p["s_m"], p["s_f"]) == ("Two fathers met three doctors yesterday.", "Two mothers met three doctors yesterday.")
    exact = config(inflect=False, candidates=1)
    _, [r] = res.assemble(exact, "gemma-3-270m", cells, Journal(tmp_path / "j.jsonl"), gen.swap_list(exact, words))
    assert r["reason"] == "step1_target_missing"


def test_a_stream_is_closed_at_the_first_newline(tmp_path):
    """The reply goes on for 40 more pieces after its first line; the client stops reading at the newline
    and hangs up, the server sees the closed connection long before its reply is through."""
    import time

    tail = "".join(f" more{i}" for i in range(40))

    def answer(prompt):
        return "\n The father met a doctor.\nWords: a, b | Sentence:" + tail

    with FakeLLM(answer=answer, delay_s=0.05) as llm:
        t0 = time.perf_counter()
        rec = complete(make_client(llm.url, 5.0), endpoint(llm.url), "S1|father|doctor",
                       {"max_tokens": 40}, stream=True)
        took = time.perf_counter() - t0
        time.sleep(0.5)
        sent = llm.sent_pieces[0]
    assert rec["raw"] == "\n The father met a doctor.\n" and rec["finish_reason"] == "newline"
    assert rec["completion_tokens"] == 7  # the leading newline, five words, the newline
    assert took < 1.5 and sent < 20  # 48 pieces x 0.05 s if it had read to the end
    with FakeLLM(answer=lambda p: " met a doctor.\nmore" + tail) as llm:
        pre = complete(make_client(llm.url, 5.0), endpoint(llm.url), "S1|father|doctor", {}, stream=True,
                       prefix=" The father")
    assert pre["raw"] == " met a doctor.\n"
    with FakeLLM(answer=lambda p: "\n" + tail) as llm:  # no line ends after text: the whole reply
        whole = complete(make_client(llm.url, 5.0), endpoint(llm.url, "chat"),
                         [{"role": "user", "content": "x"}], {}, stream=True)
    assert whole["raw"] == "\n" + tail and whole["finish_reason"] == "stop"


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
