"""The command parser is total: any string gets a command or a specific error, never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack import parser as p

pieces = st.sampled_from(
    [
        "<@UALICE>",
        "<@UBOB|bob>",
        "<@W012>",
        "<#C1|general>",
        "<!here>",
        "<!channel>",
        "<!subteam^S1|@ops>",
        "<mailto:a@b.c|a@b.c>",
        "<https://x.y|z>",
        "<",
        ">",
        "@bob",
        " ",
        "for 4h ",
        "list",
        "status",
        "cancel",
        "help",
        "AR-23456789",
        "\x00",
        "\n",
        "&",
    ]
)
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=25).map("".join),
)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_any_text_gets_a_command_or_a_specific_error(text: str) -> None:
    result = p.parse(text)
    match result:
        case p.Invalid(message):
            assert message.strip()
            assert "<" not in message and ">" not in message  # anything quoted back is escaped
        case p.Create(resource, approver_ids, justification, duration):
            assert resource and justification and len(approver_ids) == 2 == len(set(approver_ids))
            assert all(p.USER.fullmatch(f"<@{a}>") for a in approver_ids)
            assert duration is None or duration > 0
            assert "\x00" not in resource + justification
        case p.ShowStatus(rid) | p.Cancel(rid) | p.Export(rid):
            assert p.REQUEST_ID.match(rid)
        case p.ListRequests(which, page):
            assert which in p.LIST_FILTERS and page >= 1
        case p.Help() | p.OpenForm() | p.Outbox():
            pass
        case _:
            raise AssertionError(f"unexpected {result!r}")


@settings(max_examples=2_000, deadline=None)
@given(st.text(max_size=20))
def test_durations_parse_or_refuse(text: str) -> None:
    minutes = p.parse_duration(text)
    assert minutes is None or minutes > 0
