"""`python -m llmroute.testing`: the same as `llmroute emulator` (see `llmroute.testing._cli`)."""

from ._cli import main

raise SystemExit(main())
