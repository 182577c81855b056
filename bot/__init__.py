"""Access-request Slack bot: domain, persistence, services and Slack adapters."""

__version__ = "0.1.0"
