"""Canary keys for every provider never appear anywhere: logs at DEBUG, reprs, exception messages and
tracebacks, chained SDK errors, ledger rows, exports, the HTML report, the decision trace — even when
a provider echoes the key back in its error body."""

from __future__ import annotations

import io
import json
import logging
import traceback
from pathlib import Path
from typing import Any

import httpx2
import pytest

import llmroute
from llmroute.money.store import export_csv, export_jsonl
from llmroute.testing import Emulator

CANARIES = {
    "openai": "sk-canary-openai-0f1e2d3c4b5a69788796a5b4",
    "deepseek": "sk-canary-deepseek-a1b2c3d4e5f60718293a4b5c",
    "anthropic": "sk-ant-canary-99887766554433221100ffeeddcc",
}


def echoing_transport(emu: Emulator) -> httpx2.MockTransport:
    """The emulator, except that every third request gets a 401 that echoes the presented key, the
    way a misbehaving gateway might."""
    seen = {"n": 0}

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen["n"] += 1
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "")[7:]
        if seen["n"] % 3 == 0:
            body = {
                "error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}
            }
            if "anthropic" in str(request.url):
                body = {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": f"bad key {key}"},
                }
            return httpx2.Response(401, json=body, request=request)
        return emu.transport.handle_request(request)

    return httpx2.MockTransport(handle)


def texts_of(error: BaseException) -> list[str]:
    out = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for inner in getattr(error, "exceptions", ()):
        out.extend(texts_of(inner))
    body = getattr(error, "body", None)
    out.append(json.dumps(body, default=str))
    return out


def test_canaries_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu = Emulator()
    client = httpx2.Client(transport=echoing_transport(emu))
    router = llmroute.Router(
        [
            llmroute.Deployment(
                "gpt",
                model="gpt-5.4",
                api_key=CANARIES["openai"],
                base_url=emu.base_url("openai"),
                http_client=client,
            ),
            llmroute.Deployment(
                "ds",
                model="deepseek-v3.2",
                api_key=CANARIES["deepseek"],
                base_url=emu.base_url("deepseek"),
                http_client=client,
            ),
            llmroute.Deployment(
                "claude",
                model="claude-sonnet-4.6",
                api_key=CANARIES["anthropic"],
                base_url=emu.base_url("anthropic"),
                http_client=client,
            ),
        ],
        fallbacks=["deepseek-v3.2", "claude-sonnet-4.6"],
        retry=llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(1)),
    )
    texts: list[str] = [repr(router), repr(router.deployments)]
    for i in range(12):
        for model in ("gpt-5.4", "deepseek-v3.2", "claude-sonnet-4.6"):
            try:
                if i % 2:
                    stream = router.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": f"q{i}"}], stream=True
                    )
                    list(stream)
                    texts.append(repr(stream.route))
                else:
                    reply = router.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    texts.extend([repr(reply.route), repr(reply.route.decision), reply.model_dump_json()])
            except Exception as e:  # every failure's text is checked too
                texts.extend(texts_of(e))
    rows = router.ledger.rows()
    assert any(r.error == "AuthenticationFailed" for r in rows), "the echoing provider was exercised"
    texts.extend(repr(r) for r in rows)
    texts.extend(json.dumps(r.as_dict(), default=str) for r in rows)
    buffer = io.StringIO()
    export_jsonl(rows, buffer)
    export_csv(rows, tmp_path / "rows.csv")
    texts.append(buffer.getvalue())
    texts.append((tmp_path / "rows.csv").read_text())
    from llmroute.cli import main

    export_jsonl(rows, tmp_path / "ledger.jsonl")
    assert (
        main(["report", "--jsonl", str(tmp_path / "ledger.jsonl"), "--html", str(tmp_path / "r.html")]) == 0
    )
    texts.append((tmp_path / "r.html").read_text())
    texts.append(caplog.text)
    texts.extend(record.getMessage() for record in caplog.records)
    for text in texts:
        for provider, canary in CANARIES.items():
            assert canary not in text, f"{provider} key leaked"
    router.close()


def test_missing_key_message_names_the_variable_not_a_value(monkeypatch: Any) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "")
    router = llmroute.Router([llmroute.Deployment("ds", model="deepseek-v3.2")])
    with pytest.raises(llmroute.MissingAPIKey, match="DEEPSEEK_API_KEY"):
        router.chat.completions.create(model="deepseek-v3.2", messages=[{"role": "user", "content": "hi"}])
