"""An async application (a web handler, a worker) using AsyncRouter: many calls at once."""

import asyncio

import llmroute
from llmroute.testing import Emulator


async def main() -> None:
    emu = Emulator()
    router = llmroute.AsyncRouter(
        [
            llmroute.Deployment(
                "gpt",
                model="gpt-5.4",
                api_key="sk-test",
                base_url=emu.base_url("openai"),
                async_http_client=emu.async_http_client(),
            ),
            llmroute.Deployment(
                "deepseek",
                model="deepseek-v3.2",
                api_key="sk-test",
                base_url=emu.base_url("deepseek"),
                async_http_client=emu.async_http_client(),
            ),
        ],
        fallbacks=["deepseek-v3.2"],
    )

    async def answer(question: str) -> str:
        with llmroute.hints(task="chat", user="user-42"):  # hints for code that can't change its call
            reply = await router.chat.completions.create(
                model="gpt-5.4", messages=[{"role": "user", "content": question}]
            )
        return reply.choices[0].message.content or ""

    answers = await asyncio.gather(*(answer(f"Question {i}?") for i in range(50)))
    print(len(answers), "answers;", router.ledger.total().calls, "calls in the ledger")
    by_user = router.ledger.group_by("user")
    print("spend for user-42:", by_user["user-42"].cost)
    await router.close()


asyncio.run(main())
