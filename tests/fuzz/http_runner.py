"""Sends fuzzed HTTP requests to the server's HTTP face and judges the answers.

Any 2xx or 4xx a client can act on is fine; what must never come back is a 5xx, or a 4xx whose
body is not a `google.rpc.Status` in JSON with a code, a message and details (the ErrorInfo that
names the reason, and a BadRequest naming the field where there is one). Answers are counted by
HTTP status in the report shared with the gRPC fuzzer (as `http <status>`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from server.http.bindings import Binding
from tests.fuzz.http_strategies import HttpRequest
from tests.fuzz.runner import Report

STREAM_READ_SECONDS = 1.5


@dataclass
class HttpAnswer:
    status: int
    body: bytes
    content_type: str

    def problem(self) -> str | None:
        """Why this answer is not acceptable, or None."""
        if self.status >= 500:
            return f"HTTP {self.status}"
        if self.status < 400:
            return None
        if not self.content_type.startswith("application/json"):
            return f"HTTP {self.status} with content type {self.content_type!r}"
        try:
            status = json.loads(self.body)
        except ValueError:
            return f"HTTP {self.status} with a body that is not JSON"
        return _status_problem(status)


def _status_problem(status: Any) -> str | None:
    if not isinstance(status, dict) or set(status) != {"code", "message", "details"}:
        return f"not a google.rpc.Status: {str(status)[:300]}"
    if not isinstance(status["code"], int) or status["code"] <= 0 or not status["message"]:
        return f"a status without a code or message: {str(status)[:300]}"
    types = [d.get("@type", "") for d in status["details"] if isinstance(d, dict)]
    if not any(t.endswith("google.rpc.ErrorInfo") for t in types):
        return f"a status without ErrorInfo: {str(status)[:300]}"
    return None


class HttpFuzzer:
    def __init__(self, base_url: str, report: Report) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30, read=30))
        self.report = report

    def close(self) -> None:
        self._client.close()

    def send(self, binding: Binding, request: HttpRequest) -> HttpAnswer:
        url = httpx.URL(
            str(self._client.base_url).rstrip("/"),
            raw_path=(request.path + ("?" + request.query if request.query else "")).encode("latin-1"),
        )
        built = self._client.build_request(request.verb, url, headers=list(request.headers), content=request.body)
        try:
            answer = self._answer(binding, built)
        except httpx.RemoteProtocolError:
            # A kept-alive connection the server closed after its last answer (it does when a
            # refused request's body was left unread) and the pool reused before noticing: the
            # request never reached the server, so it is sent again on a fresh connection.
            answer = self._answer(binding, built)
        self.report.add(f"HTTP {binding.verb} {binding.template}", f"http {answer.status}")
        return answer

    def _answer(self, binding: Binding, built: httpx.Request) -> HttpAnswer:
        if binding.streaming:
            return self._stream(built)
        response = self._client.send(built)
        return HttpAnswer(response.status_code, response.content, response.headers.get("content-type", ""))

    def _stream(self, built: httpx.Request) -> HttpAnswer:
        # A watch of a live job streams until the job ends: the answer's start (or its refusal)
        # is what is judged, then the client hangs up.
        built.extensions["timeout"] = httpx.Timeout(30, read=STREAM_READ_SECONDS).as_dict()
        response = self._client.send(built, stream=True)
        try:
            body = b""
            if response.status_code >= 400:
                body = response.read()
            else:
                try:
                    for chunk in response.iter_raw():
                        body = chunk
                        break
                except httpx.ReadTimeout:
                    pass
            return HttpAnswer(response.status_code, body, response.headers.get("content-type", ""))
        finally:
            response.close()
