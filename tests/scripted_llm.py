"""A scripted OpenAI-compatible HTTP server on loopback, for the pipeline smoke test.

It answers ``/v1/completions`` and ``/v1/chat/completions`` deterministically: a prompt whose last line is
``WORDS <attribute> | <target>`` gets a sentence using both words; ``SWAP <sentence> | a -> b, c -> d``
gets the sentence with those words swapped. It stands in for an LLM so that the whole pipeline runs on
tiny models in seconds; the generation stage talks to it through the real openai client over HTTP.
"""

from __future__ import annotations

import json
import re
import threading
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
        if self.path.endswith("/chat/completions"):
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
