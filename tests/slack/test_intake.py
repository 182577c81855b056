"""Slack's request bodies, parsed as Slack sends them: forms (slash commands), forms carrying a JSON ``payload``
(clicks, modals) and JSON (events)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body as bolts_parse_body

from bot.slack.intake import FORM, parse_body

texts = st.text(st.characters(codec="utf-8"), max_size=40)
fields = st.dictionaries(texts.filter(lambda k: k != "payload"), texts, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)


@given(fields)
def test_a_form_gives_back_its_fields(form: dict[str, str]) -> None:
    assert parse_body(urlencode(form), FORM) == form


@given(fields.filter(lambda form: "payload" not in urlencode(form)))
def test_a_form_reads_as_bolt_reads_it(form: dict[str, str]) -> None:
    raw = urlencode(form)
    assert parse_body(raw, FORM) == bolts_parse_body(raw, FORM)


@given(st.dictionaries(texts, json_values, max_size=6))
def test_an_interactive_payload_gives_back_its_json(payload: dict[str, object]) -> None:
    raw = urlencode({"payload": json.dumps(payload)})
    assert parse_body(raw, FORM) == payload == bolts_parse_body(raw, FORM)


def test_a_command_that_says_payload_keeps_its_fields() -> None:
    command = {"command": "/access-request", "text": "payload-api <@UALICE> <@UBOB> ship the payload", "user_id": "U1"}
    raw = urlencode(command)
    assert parse_body(raw, FORM) == command
    assert bolts_parse_body(raw, FORM) == {}  # what Bolt made of it: a request no listener takes


def test_an_event_is_json() -> None:
    event = {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_home_opened", "user": "U1"}}
    assert parse_body(json.dumps(event), "application/json") == event


def test_an_empty_body_is_empty() -> None:
    assert parse_body("", FORM) == {}
