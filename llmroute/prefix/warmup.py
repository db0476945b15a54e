"""Optional warm-up: write a long static prefix into a provider's cache before a batch fans out.

A batch of concurrent calls that share a prefix starts cold: every call is sent before the first
one has been cached, so each pays the full input price (and, on Anthropic, each writes the prefix
at 1.25x). One cheap call first (the same stable prefix, a one-word turn, `max_tokens=1`) writes
it once; the batch then reads it at the cache price. With `CacheAffinity` in the router's policy the
batch then goes to the deployment the warm-up made warm.

```python
warm_up(router, layout, model="claude-sonnet-4.6", provider="anthropic", affinity=affinity)
await asyncio.gather(*(arouter.chat.completions.create(...) for diff in diffs))
```

It costs one call: the prefix written once (what the first call of the batch would have paid) plus
a handful of tokens. It is skipped (returns None) when the stable part is below the model's minimum
cacheable length, or when `affinity` already knows a deployment warm for the prefix. Sequential
workloads do not need it: their first call warms the cache for the next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .layout import PromptLayout, min_cache_tokens

if TYPE_CHECKING:
    from ..policies.affinity import CacheAffinity
    from ..response import RoutedChatCompletion
    from ..router import AsyncRouter, Router

__all__ = ["WARM_UP_TURN", "awarm_up", "warm_up", "warm_up_kwargs"]

WARM_UP_TURN = "Reply with OK."


def warm_up_kwargs(
    layout: PromptLayout,
    *,
    model: str,
    provider: str | None = None,
    affinity: CacheAffinity | None = None,
) -> dict[str, Any] | None:
    """The `create()` arguments of the warm-up call, or None when it is not worth sending."""
    if layout.stable_tokens(model) < min_cache_tokens(model, provider):
        return None
    if affinity is not None and affinity.hit_shares(layout.fingerprint):
        return None
    kwargs = layout.render([], WARM_UP_TURN, provider=provider, model=model, cache_conversation=False)
    return {"model": model, "max_tokens": 1, **kwargs}


def warm_up(
    router: Router,
    layout: PromptLayout,
    *,
    model: str,
    provider: str | None = None,
    affinity: CacheAffinity | None = None,
) -> RoutedChatCompletion | None:
    """Send the warm-up call through `router` (its policy and gates apply as to any call); None when
    skipped (see the module docstring)."""
    kwargs = warm_up_kwargs(layout, model=model, provider=provider, affinity=affinity)
    if kwargs is None:
        return None
    reply: RoutedChatCompletion = router.chat.completions.create(**kwargs)
    return reply


async def awarm_up(
    router: AsyncRouter,
    layout: PromptLayout,
    *,
    model: str,
    provider: str | None = None,
    affinity: CacheAffinity | None = None,
) -> RoutedChatCompletion | None:
    """`warm_up` for an `AsyncRouter`."""
    kwargs = warm_up_kwargs(layout, model=model, provider=provider, affinity=affinity)
    if kwargs is None:
        return None
    reply: RoutedChatCompletion = await router.chat.completions.create(**kwargs)
    return reply
