"""The LLM interface: the openai client with retries, and a JSONL journal that makes runs resumable.

Every request goes through :func:`complete`, for chat models (``/v1/chat/completions``) and base
models (``/v1/completions``) alike. Transport errors, timeouts, 408, 409, 429, 5xx answers and malformed
replies (a body that is not JSON, not an object, has no usable ``choices`` or no text) are retried with
exponential backoff; after the last retry one :class:`EndpointUnreachable` or :class:`MalformedResponse`
names the URL and what came back. A malformed reply is never journalled as an answer. Any other refusal
(4xx) raises :class:`RequestRejected` at once, since retrying cannot fix a wrong model name. URLs are
written without their credentials (:mod:`fairgender_utils.generate.endpoint_url`).

With ``stream`` the client reads server-sent events and closes the stream at the first newline after some
text, which cancels the request on a server that ignores ``stop``; ``finish_reason`` is then ``newline``
and ``completion_tokens`` counts the text pieces received (one per token; the server's count never comes).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import openai

from fairgender_utils.generate.endpoint_url import connection_parts, hide, public_url, redact_logs
from fairgender_utils.io import append_jsonl, numbered_jsonl
from fairgender_utils.paths import repo_path

Api = Literal["chat", "completions"]


class EndpointError(RuntimeError):
    """The endpoint gave no usable answer; the message names the URL (without credentials)."""


class EndpointUnreachable(EndpointError):
    """No answer from the endpoint after all retries."""


class MalformedResponse(EndpointError):
    """The endpoint answered, but not with a completion, after all retries."""


class RequestRejected(EndpointError):
    """The endpoint refused a request (4xx other than 408, 409 and 429)."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask: base URL, the model name the server expects, and the API flavour."""

    base_url: str = field(repr=False)  # may hold credentials: written only as ``public_url``
    model: str
    api: Api
    key: str = ""  # the generator key of params/generate.yaml

    @property
    def public_url(self) -> str:
        return public_url(self.base_url)


def make_client(base_url: str, read_timeout_s: float, api_key_env: str = "OPENAI_API_KEY",
                connect_timeout_s: float | None = None) -> openai.OpenAI:
    """An openai client for ``base_url``; retries are done by :func:`complete`, not by the client.

    ``read_timeout_s`` bounds the wait for a reply, ``connect_timeout_s`` (default: the same) the wait
    for a connection.

    Credentials in the URL travel beside it (basic auth, query parameters), so that the URL the HTTP
    stack logs holds none; they are also filtered out of its log records.
    """
    parts = connection_parts(base_url)
    redact_logs(parts.secrets)
    http = openai.DefaultHttpxClient(auth=parts.auth) if parts.auth else None
    return openai.OpenAI(base_url=parts.base_url, api_key=os.environ.get(api_key_env) or "not-needed",
                         default_query=parts.query or None, http_client=http, max_retries=0,
                         timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s or read_timeout_s))


_RETRY_STATUS = {408, 409, 429}
Prompt = str | list[dict[str, str]]  # completions text, or chat messages


class _Malformed(ValueError):
    """A reply with status 200 that is not a completion."""


def _snippet(body: bytes, n: int = 80) -> str:
    text = body[:n].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(body) > n else "")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_reply(body: bytes, content_type: str, api: Api) -> dict[str, Any]:
    """The answer of a 200 reply, checked: raise :class:`_Malformed` saying what came back instead."""
    what = f"{len(body)} bytes of {content_type or 'no content type'}"
    if not body.strip():
        raise _Malformed(f"an empty body ({what})")
    try:
        obj = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Malformed(f"a body that is not UTF-8 ({what}: {_snippet(body)})") from None
    except ValueError:
        raise _Malformed(f"a body that is not JSON ({what}: {_snippet(body)})") from None
    if not isinstance(obj, dict):
        raise _Malformed(f"a JSON {type(obj).__name__}, not an object ({_snippet(body)})")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        err = obj.get("error")
        extra = f"; error: {json.dumps(err)[:200]}" if err else ""
        raise _Malformed(f"no choices ({'missing' if choices is None else repr(choices)[:40]}{extra})")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _Malformed(f"choices[0] is a {type(choice).__name__}, not an object")
    if api == "chat":
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        where = "choices[0].message.content"
    else:
        text, where = choice.get("text"), "choices[0].text"
    if not isinstance(text, str):
        raise _Malformed(f"{where} is {json.dumps(text)[:40]}, not a string ({_snippet(body)})")
    finish = choice.get("finish_reason")
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
    return {"raw": text, "finish_reason": finish if isinstance(finish, str) else None,
            "prompt_tokens": _int_or_none(usage.get("prompt_tokens")),
            "completion_tokens": _int_or_none(usage.get("completion_tokens"))}


def _request(client: openai.OpenAI, ep: Endpoint, prompt: Prompt,
             params: Mapping[str, Any]) -> dict[str, Any]:
    """One request; the reply body is checked here, not by the client (which accepts any shape)."""
    if ep.api == "chat":
        create = client.chat.completions.with_raw_response.create
        r = create(model=ep.model, messages=prompt, **params)  # type: ignore[arg-type]
    else:
        create = client.completions.with_raw_response.create
        r = create(model=ep.model, prompt=prompt, **params)  # type: ignore[arg-type]
    http = r.http_response
    return parse_reply(http.content, http.headers.get("content-type", ""), ep.api)


def _stream_reply(client: openai.OpenAI, ep: Endpoint, prompt: Prompt, params: Mapping[str, Any],
                  prefix: str) -> dict[str, Any]:
    """One streamed request, read until the first newline after some text (``prefix`` counts as text)."""
    create = client.chat.completions.create if ep.api == "chat" else client.completions.create
    stream = create(model=ep.model, stream=True, **{"messages" if ep.api == "chat" else "prompt": prompt},
                    **params)  # type: ignore[call-overload]
    text, pieces, finish = "", 0, None
    with stream:
        for chunk in stream:
            choices = getattr(chunk, "choices", None) or []
            if not choices:
                continue
            choice = choices[0]
            delta = getattr(choice, "delta", None)
            piece = getattr(delta, "content", None) if ep.api == "chat" else getattr(choice, "text", None)
            if piece is not None and not isinstance(piece, str):  # a chunk may carry no text (a role, a finish)
                raise _Malformed(f"a stream chunk whose text is not a string ({str(chunk)[:80]})")
            if piece:
                text, pieces = text + piece, pieces + 1
            finish = choice.finish_reason or finish
            if "\n" in (prefix + text).lstrip():
                finish = "newline"
                break  # leaving the block closes the stream; the server cancels the request
    return {"raw": text, "finish_reason": finish, "prompt_tokens": None, "completion_tokens": pieces}


def _wait(seconds: float, stop: threading.Event | None) -> bool:
    """Sleep ``seconds``; True when ``stop`` was set meanwhile (another request failed for good)."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


def complete(client: openai.OpenAI, ep: Endpoint, prompt: Prompt, params: Mapping[str, Any],
             max_retries: int = 3, backoff_s: float = 1.0, stop: threading.Event | None = None,
             stream: bool = False, prefix: str = "") -> dict[str, Any]:
    """One response as a record: raw text, finish reason, token counts, attempts and timestamps.

    ``stream``: read the reply as it is written and stop at the first newline after some text
    (``prefix``, a pre-fill the prompt ends with, counts as text).

    Worst case before the error: ``max_retries + 1`` attempts of at most the client's timeouts each,
    plus ``backoff_s`` x (2^max_retries - 1) of waiting.
    """
    t_start, url = time.time(), ep.public_url
    secrets, last = connection_parts(ep.base_url).secrets, ""
    for attempt in range(max_retries + 1):
        malformed = False
        try:
            out = (_stream_reply(client, ep, prompt, params, prefix) if stream
                   else _request(client, ep, prompt, params))
            break
        except openai.APIStatusError as err:
            last = f"status {err.status_code}: {str(err.message)[:200]}"
            if err.status_code < 500 and err.status_code not in _RETRY_STATUS:
                raise RequestRejected(f"{url} rejected the request for model {ep.model!r}: "
                                      f"{hide(last, secrets)}") from None
        except (openai.APIConnectionError, httpx.HTTPError) as err:  # also timeouts, a stream cut short
            last = f"{type(err).__name__}: {err}"
        except _Malformed as err:
            last, malformed = f"malformed reply: {err}", True
        except (openai.APIError, json.JSONDecodeError) as err:  # an error event or bad JSON inside a stream
            last, malformed = f"malformed reply: {type(err).__name__}: {str(err)[:200]}", True
        last = hide(last, secrets)  # a server may echo the credentials back
        if attempt == max_retries or _wait(backoff_s * 2 ** attempt, stop):
            n = f"{attempt + 1} attempt{'s' if attempt else ''}"
            if malformed:
                raise MalformedResponse(f"{url}: no usable answer after {n} (model {ep.model!r}); "
                                        f"last: {last}")
            raise EndpointUnreachable(f"{url}: no answer after {n} (model {ep.model!r}); last: {last}")
    t_end = time.time()
    return {**out, "attempts": attempt + 1, "t_start": t_start, "t_end": t_end,
            "latency_s": round(t_end - t_start, 4)}


_NUMBER = (int, float)
# Journal fields that later steps read, and their types (None: may be null).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "key": (str,), "cell_id": (str,), "step": (int,), "generator": (str,), "settings": (str,),
    "phase": (str,), "run_id": (str,), "concurrency": (int,), "raw": (str,),
    "finish_reason": (str, type(None)), "completion_tokens": (int, type(None)), "attempts": (int,),
    "t_start": _NUMBER, "t_end": _NUMBER, "latency_s": _NUMBER,
}


def record_problem(rec: Mapping[str, Any]) -> str | None:
    """Why a journal record cannot be used (None: it can)."""
    for name, types in RECORD_FIELDS.items():
        if name not in rec:
            return f"no '{name}'"
        value = rec[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"'{name}' is {json.dumps(value)[:40]}, not {' or '.join(t.__name__ for t in types)}"
    if rec.get("error"):
        return f"a malformed reply recorded as an answer ({str(rec['error'])[:80]}); it is asked again"
    return None


class Journal:
    """Append-only JSONL of responses keyed by ``record["key"]``; thread-safe; reopening resumes.

    Lines that cannot be used - corrupt JSON after a crash in the middle of a write, not UTF-8, a
    missing or mistyped field, a malformed reply saved by an older version - are reported with their
    line number in ``problems`` and skipped (they stay in the file); every other line is kept.
    """

    def __init__(self, path: str | Path):
        self.path = repo_path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self._lock = threading.Lock()
        if self.path.exists():
            skipped: list[tuple[Any, str]] = []
            for lineno, rec, problem in numbered_jsonl(self.path):
                problem = problem or record_problem(rec)  # type: ignore[arg-type]
                if problem is None:
                    self.records.setdefault(rec["key"], rec)  # type: ignore[index]
                else:
                    key = rec.get("key") if isinstance(rec, dict) else None
                    skipped.append((key, f"{self.path}:{lineno}: {problem}; skipped, the rest kept"))
            # a line that a later line of the same key replaced is no longer worth a word
            self.problems = [msg for key, msg in skipped
                             if not (isinstance(key, str) and key in self.records)]
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
