"""Fleet mode: one set of budgets, rate limits and in-flight limits across processes and machines.

```python
router = llmroute.Router(deployments, budgets=budgets, state="redis://10.0.0.5:6379/0")
```
`state=` moves the router's budgets (`RedisBudgets`), client-side limits (`RedisLoadStore`) and
cooldown/breaker state (`RedisCooldownStore`) to Redis; every process given the same URL (and
`prefix`) shares them. Redis being down never fails a call: the stores fall back to in-process state
behind a breaker (`RedisLink`) and catch up when it is back. `PostgresStore`
(`llmroute.fleet.postgres`) keeps the ledger of a whole fleet in one database.
See docs/fleet.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._link import RedisLink, Unavailable

if TYPE_CHECKING:
    from ..money.budget import Budgets
    from ..routing.balance import LoadStore
    from ..routing.cooldown import Cooldowns

__all__ = ["RedisLink", "Unavailable", "shared"]


def shared(
    state: str | RedisLink,
    *,
    budgets: Budgets | None,
    load: LoadStore | None,
    cooldowns: Cooldowns | None = None,
) -> tuple[Budgets | None, LoadStore, Cooldowns]:
    """What `Router(state=...)` does: budgets, load state and cooldown/breaker state moved to Redis
    (`state` is a URL or a `RedisLink`). A `load` store already given is kept, and so are budgets
    already on Redis and cooldowns whose store is not the in-memory one."""
    from ..routing.cooldown import Cooldowns, MemoryStore
    from .budgets import RedisBudgets
    from .cooldowns import RedisCooldownStore
    from .limits import RedisLoadStore

    link = state if isinstance(state, RedisLink) else RedisLink(state)
    if budgets is not None and not isinstance(budgets, RedisBudgets):
        budgets = RedisBudgets.from_budgets(link, budgets)
    if cooldowns is None:
        cooldowns = Cooldowns(RedisCooldownStore(link))
    elif isinstance(cooldowns.store, MemoryStore):
        cooldowns.store = RedisCooldownStore(link, clock=cooldowns.clock)
    return budgets, load if load is not None else RedisLoadStore(link), cooldowns


def __getattr__(name: str) -> Any:
    if name == "RedisBudgets":
        from .budgets import RedisBudgets

        return RedisBudgets
    if name == "RedisCooldownStore":
        from .cooldowns import RedisCooldownStore

        return RedisCooldownStore
    if name == "RedisLoadStore":
        from .limits import RedisLoadStore

        return RedisLoadStore
    raise AttributeError(name)
