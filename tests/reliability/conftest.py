from tests.slack.conftest import world

__all__ = ["world"]
