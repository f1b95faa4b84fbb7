"""A scripted OpenAI-compatible HTTP server on loopback, for the pipeline smoke test.

It answers ``/v1/completions`` and ``/v1/chat/completions`` deterministically: a prompt whose last line is
``WORDS <attribute> | <target>`` gets a sentence using both words; ``SWAP <sentence> | a -> b, c -> d``
gets the sentence with those words swapped. It stands in for an LLM so that the whole pipeline runs on
tiny models in seconds; the generation stage talks to it through the real openai client over HTTP. A
request with ``stream`` gets the reply as server-sent events (:func:`send_sse`, also used by the tests'
other fake endpoints).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STEP1 = "WORDS {attribute} | {target}"
STEP2 = "SWAP {sentence} | {mapping}"
SENTENCES = ("The {a} talked about {t} at dinner yesterday.", "Our {a} read a long book on {t} last week.",
             "Every {a} I know enjoys {t} on weekends.")


def answer(prompt: str) -> str:
    last = prompt.strip().splitlines()[-1]
    if last.startswith("WORDS "):
        a, t = (s.strip() for s in last[6:].split("|", 1))
        return " " + SENTENCES[(len(a) + len(t)) % len(SENTENCES)].format(a=a, t=t)
    if last.startswith("SWAP "):
        sentence, mapping = last[5:].rsplit("|", 1)
        swaps = dict(tuple(w.strip() for w in pair.split("->")) for pair in mapping.split(",") if "->" in pair)
        return " " + re.sub(r"[A-Za-z]+", lambda m: swaps.get(m.group(0), m.group(0)), sentence.strip())
    return " ?"


def pieces(text: str) -> list[str]:
    """The reply cut like a tokenizer's stream: each word with its leading space, a newline on its own."""
    return re.findall(r"\n|[^\S\n]*[^\s]+|[^\S\n]+", text)


def send_sse(handler: BaseHTTPRequestHandler, body: dict, text: str, chat: bool, delay_s: float = 0.0) -> int:
    """Stream ``text`` as OpenAI server-sent events (one chunk per piece, then a finish chunk and
    ``[DONE]``), ``delay_s`` apart; return how many pieces were sent before the client hung up."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(piece: str | None, finish: str | None) -> bytes:
        choice = ({"index": 0, "delta": {"content": piece} if piece is not None else {}, "finish_reason": finish}
                  if chat else {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None})
        obj = {"id": "x", "object": kind, "created": 0, "model": body["model"], "choices": [choice]}
        return f"data: {json.dumps(obj)}\n\n".encode()

    sent = 0
    try:
        if chat:  # a chat stream opens with the role alone, as OpenAI's and transformers' servers send it
            role = {"id": "x", "object": kind, "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
            handler.wfile.write(f"data: {json.dumps(role)}\n\n".encode())
        for piece in pieces(text):
            handler.wfile.write(chunk(piece, None))
            handler.wfile.flush()
            sent += 1
            time.sleep(delay_s)
        handler.wfile.write(chunk(None, "stop") + b"data: [DONE]\n\n")
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, obj: dict, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") in ("/health", "/v1/models"):
            self._send({"status": "ok", "object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._send({"error": "not found"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        chat = self.path.endswith("/chat/completions")
        if req.get("stream") and self.path.endswith("/completions"):
            prompt = req["messages"][-1]["content"] if chat else req["prompt"]
            text = answer(prompt).strip() if chat else answer(prompt)
            send_sse(self, req, text + "\n", chat)
        elif chat:
            text = answer(req["messages"][-1]["content"]).strip()
            self._send({"id": "x", "object": "chat.completion", "created": 0, "model": req["model"], "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}]})
        elif self.path.endswith("/completions"):
            self._send({"id": "x", "object": "text_completion", "created": 0, "model": req["model"], "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop", "text": answer(req["prompt"])}]})
        else:
            self._send({"error": "not found"}, 404)


def serve(handler) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``handler`` on a free loopback port; return the server and its ``/v1`` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def start() -> tuple[ThreadingHTTPServer, str]:
    """The scripted LLM above on a free loopback port."""
    return serve(_Handler)


class Loopback:
    """Base of the tests' fake endpoints: ``_serve(Handler)`` sets ``server`` and ``url``; the ``with``
    block shuts the server down."""

    def _serve(self, handler) -> None:
        self.server, self.url = serve(handler)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
