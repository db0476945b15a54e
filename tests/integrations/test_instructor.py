"""instructor.from_openai(router): structured outputs through routed calls."""

from __future__ import annotations

import pytest

instructor = pytest.importorskip("instructor")

from pydantic import BaseModel  # noqa: E402

import llmroute  # noqa: E402
from llmroute.testing import Emulator, Fault  # noqa: E402
from tests.integrations.conftest import run_example  # noqa: E402

PROMPT = [{"role": "user", "content": "Jason is 25 years old"}]


class User(BaseModel):
    name: str
    age: int


def _deployments(emu: Emulator, *, asynchronous: bool = False) -> list[llmroute.Deployment]:
    http = (
        {"async_http_client": emu.async_http_client()} if asynchronous else {"http_client": emu.http_client()}
    )
    return [
        llmroute.Deployment("gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key="sk-t", **http),
        llmroute.Deployment(
            "deepseek", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), api_key="sk-t", **http
        ),
    ]


def test_from_openai_falls_back_and_records(emu: Emulator) -> None:
    emu.inject(Fault.server_error(), provider="openai", model="gpt-5.4")
    router = llmroute.Router(_deployments(emu), fallbacks=["deepseek-v3.2"], max_retries=0)
    client = instructor.from_openai(router)
    user = client.chat.completions.create(model="gpt-5.4", response_model=User, messages=PROMPT)
    assert isinstance(user, User)
    rows = router.ledger.rows()
    assert [(r.deployment, r.outcome) for r in rows] == [("gpt", "error"), ("deepseek", "ok")]
    assert emu.requests[-1].body["tools"][0]["function"]["name"] == "User"


async def test_from_openai_async(emu: Emulator) -> None:
    arouter = llmroute.AsyncRouter(_deployments(emu, asynchronous=True))
    client = instructor.from_openai(arouter)
    assert isinstance(client, instructor.AsyncInstructor)
    user = await client.chat.completions.create(model="gpt-5.4", response_model=User, messages=PROMPT)
    assert isinstance(user, User)
    assert len(arouter.ledger.rows()) == 1
    await arouter.close()


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("instructor_example.py", capsys)
    assert out.startswith("User ")
