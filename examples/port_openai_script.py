"""Porting an OpenAI SDK script: the only change is how the client is built.

Before:
    client = openai.OpenAI()
After:
    client = llmroute.Router.from_env()     # or Router([...deployments...]) / Router.from_config(path)

Everything below the client line is the SDK's documented usage, unchanged. Here the environment points
the router at the built-in emulator, so the script runs offline with no real key.
"""

import os

import openai

import llmroute
from llmroute.testing import Emulator

emu = Emulator()
with emu.serve() as server:  # a real local HTTP server speaking OpenAI's wire format
    os.environ["OPENAI_API_KEY"] = "sk-test-not-a-real-key"
    os.environ["OPENAI_BASE_URL"] = server.base_url("openai")

    client = llmroute.Router.from_env()  # was: client = openai.OpenAI()

    completion = client.chat.completions.create(
        model="gpt-5.4",
        messages=[
            {"role": "developer", "content": "Talk like a pirate."},
            {"role": "user", "content": "How do I check if a Python object is an instance of a class?"},
        ],
    )
    print(completion.choices[0].message.content)

    stream = client.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "Say this is a test"}], stream=True
    )
    for chunk in stream:
        print(chunk.choices[0].delta.content or "", end="")
    print()

    try:
        client.chat.completions.create(
            model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], temperature=7
        )
    except (openai.APIError, ValueError) as e:  # bad input fails before any network call
        print("rejected:", e)
    client.close()
