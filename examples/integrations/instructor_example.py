"""instructor on a router: `instructor.from_openai(router)`. Runs offline on the emulator.

pip install llmroute instructor
"""

import asyncio

import instructor
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator

emu = Emulator()  # stands in for the providers: in production, leave out base_url and the http clients


def deployments(asynchronous: bool = False) -> list[llmroute.Deployment]:
    http = (
        {"async_http_client": emu.async_http_client()} if asynchronous else {"http_client": emu.http_client()}
    )
    return [
        llmroute.Deployment(
            "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key="sk-test", **http
        ),
        llmroute.Deployment(
            "deepseek", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), api_key="sk-test", **http
        ),
    ]


class User(BaseModel):
    name: str
    age: int


router = llmroute.Router(deployments(), fallbacks=["deepseek-v3.2"])
client = instructor.from_openai(router)  # the one line
user = client.chat.completions.create(
    model="gpt-5.4", response_model=User, messages=[{"role": "user", "content": "Jason is 25 years old"}]
)
print(type(user).__name__, user)
print(router.ledger.total())


async def main() -> None:
    arouter = llmroute.AsyncRouter(deployments(asynchronous=True))
    aclient = instructor.from_openai(arouter)
    user = await aclient.chat.completions.create(
        model="gpt-5.4", response_model=User, messages=[{"role": "user", "content": "Jason is 25 years old"}]
    )
    print("async:", user, len(arouter.ledger.rows()), "ledger row(s)")
    await arouter.close()


asyncio.run(main())
