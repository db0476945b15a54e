"""llmroute: route OpenAI-style chat completions across providers."""
