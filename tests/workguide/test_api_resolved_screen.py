"""Issue 17, point 8: the work-item API draws the current screen without CEL (display text resolved, defaults
evaluated, visibility), and previews it against typed values."""
import pytest

from orchestration import engine
from tests.api_support import *  # noqa: F401,F403
from tests.api_support import token_client
from tests.engine_builders import orchestration, screen_flow, ui
from workguide.models import WorkItem

pytestmark = pytest.mark.django_db

FIELDS = [
    {"name": "intro", "type": "display", "text": "Amount asked: {!inputs_amount * 2.0}"},
    {"name": "decision", "type": "choice", "label": "Decision", "required": True,
     "choices": [{"value": "approve", "label": "Approve"}, {"value": "rework", "label": "Rework"}]},
    {"name": "comment", "type": "text", "label": "Comment", "visible_if": 'decision == "rework"'},
    {"name": "copies", "type": "number", "label": "Copies", "default": "inputs_amount + 1.0"},
]


@pytest.fixture
def item(users):
    flow = screen_flow("resolved_review", fields=FIELDS, inputs=[{"name": "inputs_amount", "type": "number"}])
    orch = orchestration([{"name": "s", "steps": [ui("review", flow.api_name, {"user": "alice"},
                                                     inputs={"inputs_amount": "21"})]}])
    return WorkItem.objects.get(run=engine.start_run(orch))


def test_detail_gives_the_current_screen_resolved(item, users):
    body = token_client(users.alice).get(f"/api/work-items/{item.pk}/").json()
    screen = body["current_screen"]
    assert (screen["index"], screen["count"], screen["name"]) == (0, 1, "main")
    fields = {f["name"]: f for f in screen["fields"]}
    assert fields["intro"]["text"] == "Amount asked: 42" and fields["intro"]["visible"] is True
    assert fields["decision"]["value"] is None  # a required choice starts blank
    assert fields["comment"]["visible"] is False
    assert fields["copies"]["value"] == 22
    assert body["screens"][0]["fields"][3]["default"] == "inputs_amount + 1.0"  # the expressions stay available


def test_preview_follows_what_is_typed_and_stores_nothing(item, users):
    alice = token_client(users.alice)
    answer = alice.post(f"/api/work-items/{item.pk}/preview/", {"values": {"decision": "rework", "copies": 3}},
                        format="json")
    assert answer.status_code == 200, answer.content
    fields = {f["name"]: f for f in answer.json()["fields"]}
    assert fields["comment"]["visible"] is True and fields["copies"]["value"] == 3
    assert fields["decision"]["value"] == "rework"
    item.refresh_from_db()
    assert item.progress == {} or not item.progress.get("values")
    bad = alice.post(f"/api/work-items/{item.pk}/preview/", {"values": {"copies": {"x": 1}}}, format="json")
    assert bad.status_code == 400 and "copies" in bad.json()["errors"]
    assert token_client(users.bob).post(f"/api/work-items/{item.pk}/preview/", {"values": {}},
                                        format="json").status_code == 404
