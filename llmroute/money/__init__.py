"""The money wing: the ledger, budgets, prices, reports, what-if replays, estimates and stores.

It knows targets, requests and usage (the shared vocabulary) and nothing of adapters, SDKs or the
router (tests/test_layering.py checks it). The public names are exported from `llmroute`.
"""
