"""Fleet mode: one set of budgets, rate limits and in-flight limits across processes and machines.

```python
router = llmroute.Router(deployments, budgets=budgets, state="redis://10.0.0.5:6379/0")
```
`state=` moves the router's budgets (`RedisBudgets`), client-side limits (`RedisLoadStore`),
cooldown/breaker state (`RedisCooldownStore`) and latency statistics (`RedisHealthStore`) to Redis;
every process given the same URL (and `prefix`) shares them. A routed call costs one round trip to
Redis (`RedisLink`). Redis being down never fails a call: the stores fall back to in-process state
behind a breaker and catch up when it is back. `PostgresStore` (`llmroute.fleet.postgres`) keeps the
ledger of a whole fleet in one database.
See docs/fleet.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._link import RedisLink, Unavailable

if TYPE_CHECKING:
    from ..money.budget import Budgets
    from ..routing.balance import LoadStore
    from ..routing.cooldown import Cooldowns
    from ..routing.health import Health

__all__ = ["RedisLink", "Unavailable", "shared"]


def shared(
    state: str | RedisLink,
    *,
    budgets: Budgets | None,
    load: LoadStore | None,
    cooldowns: Cooldowns | None = None,
    health: Health | None = None,
) -> tuple[Budgets | None, LoadStore, Cooldowns, Health]:
    """What `Router(state=...)` does: budgets, load state, cooldown/breaker state and latency
    statistics moved to Redis (`state` is a URL or a `RedisLink`). A `load` store already given is
    kept, and so are budgets already on Redis, and cooldowns and health whose store is not the
    in-memory one. When the budgets, the load store and the breakers share one link, an admission
    reserves the budget and reads the breaker in its one round trip."""
    from ..routing.cooldown import Cooldowns, MemoryStore
    from ..routing.health import Health, MemoryHealthStore
    from .budgets import RedisBudgets
    from .cooldowns import RedisCooldownStore
    from .health import RedisHealthStore
    from .limits import RedisLoadStore

    link = state if isinstance(state, RedisLink) else RedisLink(state)
    if budgets is not None and not isinstance(budgets, RedisBudgets):
        budgets = RedisBudgets.from_budgets(link, budgets)
    if cooldowns is None:
        cooldowns = Cooldowns(RedisCooldownStore(link))
    elif isinstance(cooldowns.store, MemoryStore):
        cooldowns.store = RedisCooldownStore(link, clock=cooldowns.clock)
    if health is None:
        health = Health(store=RedisHealthStore(link))
    elif isinstance(health.store, MemoryHealthStore):
        health.store = RedisHealthStore(link)
    if load is None:
        load = RedisLoadStore(link)
    if isinstance(load, RedisLoadStore):
        if isinstance(budgets, RedisBudgets) and budgets.link is load.link:
            load.budgets = budgets
        if isinstance(cooldowns.store, RedisCooldownStore) and cooldowns.store.link is load.link:
            load.breakers = cooldowns.store
    return budgets, load, cooldowns, health


def __getattr__(name: str) -> Any:
    if name == "RedisBudgets":
        from .budgets import RedisBudgets

        return RedisBudgets
    if name == "RedisCooldownStore":
        from .cooldowns import RedisCooldownStore

        return RedisCooldownStore
    if name == "RedisHealthStore":
        from .health import RedisHealthStore

        return RedisHealthStore
    if name == "RedisLoadStore":
        from .limits import RedisLoadStore

        return RedisLoadStore
    raise AttributeError(name)
