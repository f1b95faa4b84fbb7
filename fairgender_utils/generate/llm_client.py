"""The LLM interface: the openai client with retries, and a JSONL journal that makes runs resumable.

Every request goes through :func:`complete`, for chat models (``/v1/chat/completions``) and base
models (``/v1/completions``) alike. Transport errors, timeouts, 429 and 5xx answers are retried with
exponential backoff; after the last retry one :class:`EndpointUnreachable` names the URL. Any other
refusal (4xx) raises :class:`RequestRejected` at once, since retrying cannot fix a wrong model name.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import openai

from fairgender_utils.io import append_jsonl, read_jsonl
from fairgender_utils.paths import repo_path

Api = Literal["chat", "completions"]


class EndpointUnreachable(RuntimeError):
    """No answer from the endpoint after all retries."""


class RequestRejected(RuntimeError):
    """The endpoint refused a request (4xx other than 429)."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask: base URL, the model name the server expects, and the API flavour."""

    base_url: str
    model: str
    api: Api
    key: str = ""  # the generator key of params/generate.yaml


def make_client(base_url: str, timeout_s: float, api_key_env: str = "OPENAI_API_KEY") -> openai.OpenAI:
    """An openai client for ``base_url``; retries are done by :func:`complete`, not by the client."""
    return openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed",
                         timeout=timeout_s, max_retries=0)


_RETRY = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


Prompt = str | list[dict[str, str]]  # completions text, or chat messages


def _request(client: openai.OpenAI, ep: Endpoint, prompt: Prompt, params: Mapping[str, Any]):
    if ep.api == "chat":
        r = client.chat.completions.create(model=ep.model, messages=prompt, **params)  # type: ignore[arg-type]
        choice = r.choices[0] if r.choices else None
        text = (choice.message.content if choice and choice.message else None) or ""
    else:
        r = client.completions.create(model=ep.model, prompt=prompt, **params)  # type: ignore[arg-type]
        choice = r.choices[0] if r.choices else None
        text = (choice.text if choice else None) or ""
    usage = r.usage
    return {"raw": text, "finish_reason": getattr(choice, "finish_reason", None),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None}


def complete(client: openai.OpenAI, ep: Endpoint, prompt: Prompt, params: Mapping[str, Any],
             max_retries: int = 4, backoff_s: float = 1.0) -> dict[str, Any]:
    """One response as a record: raw text, finish reason, token counts, attempts and timestamps."""
    t_start = time.time()
    for attempt in range(max_retries + 1):
        try:
            out = _request(client, ep, prompt, params)
            break
        except _RETRY as err:
            if attempt == max_retries:
                raise EndpointUnreachable(f"{ep.base_url}: no answer after {max_retries + 1} attempts "
                                          f"({type(err).__name__}: {err})") from None
            time.sleep(backoff_s * 2 ** attempt)
        except openai.APIStatusError as err:
            if err.status_code >= 500:  # a 5xx the client does not map to InternalServerError
                if attempt == max_retries:
                    raise EndpointUnreachable(f"{ep.base_url}: status {err.status_code} after "
                                              f"{max_retries + 1} attempts") from None
                time.sleep(backoff_s * 2 ** attempt)
                continue
            raise RequestRejected(f"{ep.base_url} rejected the request for model {ep.model!r}: "
                                  f"status {err.status_code}: {err.message}") from None
        except (openai.APIResponseValidationError, ValueError, TypeError) as err:  # a malformed answer
            out = {"raw": "", "finish_reason": None, "prompt_tokens": None, "completion_tokens": None,
                   "error": f"malformed response: {type(err).__name__}: {err}"}
            break
    t_end = time.time()
    return {**out, "attempts": attempt + 1, "t_start": t_start, "t_end": t_end,
            "latency_s": round(t_end - t_start, 4)}


class Journal:
    """Append-only JSONL of responses keyed by ``record["key"]``; thread-safe; reopening resumes.

    Corrupt lines (a crash in the middle of a write) are reported with their line number in
    ``problems`` and skipped; every other line is kept.
    """

    def __init__(self, path: str | Path):
        self.path = repo_path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self._lock = threading.Lock()
        if self.path.exists():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for rec in read_jsonl(self.path, strict=False):
                    if "key" in rec:
                        self.records.setdefault(rec["key"], rec)
            self.problems = [str(w.message) for w in caught]
            self._end_with_newline()

    def _end_with_newline(self) -> None:
        """After a torn write the file may not end in a newline: add one so the next record stays intact."""
        with self.path.open("rb+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                f.write(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        """Write one record (fsynced) unless its key is already there."""
        with self._lock:
            if record["key"] in self.records:
                return
            append_jsonl(self.path, record)
            self.records[record["key"]] = record
