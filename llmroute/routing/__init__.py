"""The routing core: configuration, the engine's plan, balancing, breakers, health and the
attempt loop that turns a validated request into an answer and its ledger rows.

The drop-in surface (`llmroute.router`, `llmroute.resources`, `llmroute.stream`) sits above it and
the adapters (`llmroute.providers`) below it. The public names are exported from `llmroute`.
"""
