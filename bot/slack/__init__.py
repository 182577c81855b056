"""Slack adapters: listeners per surface, pure Block Kit builders, the notifier, the app runner."""
