"""Fleet mode: one set of budgets, rate limits and in-flight limits across processes and machines.

```python
router = llmroute.Router(deployments, budgets=budgets, state="redis://10.0.0.5:6379/0")
```
`state=` moves the router's budgets (`RedisBudgets`) and client-side limits (`RedisLoadStore`) to
Redis; every process given the same URL (and `prefix`) shares them. Redis being down never fails a
call: the stores fall back to in-process state behind a breaker (`RedisLink`) and catch up when it is
back. `PostgresStore` (`llmroute.fleet.postgres`) keeps the ledger of a whole fleet in one database.
See docs/fleet.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._link import RedisLink, Unavailable

if TYPE_CHECKING:
    from ..balance import LoadStore
    from ..budget import Budgets

__all__ = ["RedisLink", "Unavailable", "shared"]


def shared(
    state: str | RedisLink, *, budgets: Budgets | None, load: LoadStore | None
) -> tuple[Budgets | None, LoadStore]:
    """What `Router(state=...)` does: budgets and load state moved to Redis (`state` is a URL or a
    `RedisLink`). A `load` store already given is kept; budgets already on Redis are kept."""
    from .budgets import RedisBudgets
    from .limits import RedisLoadStore

    link = state if isinstance(state, RedisLink) else RedisLink(state)
    if budgets is not None and not isinstance(budgets, RedisBudgets):
        budgets = RedisBudgets.from_budgets(link, budgets)
    return budgets, load if load is not None else RedisLoadStore(link)


def __getattr__(name: str) -> Any:
    if name == "RedisBudgets":
        from .budgets import RedisBudgets

        return RedisBudgets
    if name == "RedisLoadStore":
        from .limits import RedisLoadStore

        return RedisLoadStore
    raise AttributeError(name)
