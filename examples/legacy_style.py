"""Code written for openai<1.0 (`openai.ChatCompletion.create`) runs by changing the import.

`openai` itself removed the module-level API; llmroute serves it from a router built from the
environment (OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_*, DEEPSEEK_*) or from LLMROUTE_CONFIG.
"""

import os

import llmroute as openai  # was: import openai (before 1.0)
from llmroute.testing import Emulator

with Emulator().serve() as server:
    os.environ["OPENAI_API_KEY"] = "sk-test-not-a-real-key"
    os.environ["OPENAI_BASE_URL"] = server.base_url("openai")

    response = openai.ChatCompletion.create(
        model="gpt-5.4",
        messages=[{"role": "user", "content": "Write a haiku about caches."}],
        request_timeout=30,
    )
    print(response["choices"][0]["message"]["content"])
    print("tokens:", response["usage"]["total_tokens"], "cost:", response.route.cost)
