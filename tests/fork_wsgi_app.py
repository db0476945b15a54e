"""The WSGI app of tests/test_fork.py's gunicorn test (`gunicorn --preload fork_wsgi_app:app`).

Its router is built at import, in the gunicorn master, which makes one call (a keep-alive
connection open, a row in the store) before it forks the workers that serve the requests. The
emulator's URL, the canary key and the SQLite file come from the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import llmroute
from llmroute.money.store import SQLiteStore

USER = [{"role": "user", "content": "hello"}]

store = SQLiteStore(os.environ["FORK_TEST_DB"])
router = llmroute.Router(
    [
        llmroute.Deployment(
            "gpt",
            model="gpt-5.4",
            base_url=os.environ["FORK_TEST_BASE_URL"],
            api_key=os.environ["FORK_TEST_KEY"],
        )
    ],
    ledger=llmroute.Ledger(store=store),
)
MASTER_CALL = router.chat.completions.create(model="gpt-5.4", messages=USER, timeout=10).route.call_id
MASTER_PID = os.getpid()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER, timeout=10)
    body = json.dumps(
        {"call_id": reply.route.call_id, "pid": os.getpid(), "master": MASTER_PID, "master_call": MASTER_CALL}
    ).encode()
    start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
    return [body]
