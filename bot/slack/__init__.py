"""Slack adapters: listeners per surface, pure Block Kit builders, the outbox dispatcher, the app runner."""
