"""Block Kit JSON the bot builds without checking each object through slack_sdk.models is what slack_sdk builds
and accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.models.views import View

from bot.domain.model import AccessRequest
from bot.domain.values import Approver, Policy
from bot.service_layer.results import RequestView
from bot.service_layer.services import new_request_id
from bot.slack import blocks as b
from bot.slack import forms


def _view(n: int, request_id: str | None = None) -> RequestView:
    request = AccessRequest.create(
        id=request_id or new_request_id(),
        requester_id=f"UREQ{n}",
        resource=f"db-{n} <!channel> & more",
        justification="incident <#C1> " * 40,
        approvers=[Approver("UALICE"), Approver("UBOB")],
        now=datetime.now(UTC),
        policy=Policy(),
    )
    return RequestView.of(request)


def test_decision_buttons_are_what_slack_sdk_builds_for_each_request() -> None:
    for n in range(200):
        view = _view(n)
        for block_id in ("decide", f"decide-{view.id}"):
            assert b.decision_buttons(view, block_id=block_id) == b._buttons(view.id, block_id).to_dict()


def test_the_app_home_is_a_view_slack_sdk_accepts_as_it_is() -> None:
    todo, mine = [_view(n) for n in range(forms.HOME_TODO_LIMIT + 1)], [_view(n) for n in range(20)]
    home = forms.home(todo=todo, mine=mine, mine_total=40, notice="You chose to approve <@UX>'s request.")
    # slack_sdk reads the JSON back into its objects, checks every one and writes it out again: unchanged.
    assert View(**home).to_dict() == home
    values = [e["value"] for block in home["blocks"] if block["type"] == "actions" for e in block["elements"]]
    assert values == [v.id for v in todo[: forms.HOME_TODO_LIMIT] for _ in ("approve", "deny")]
