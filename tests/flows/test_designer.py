"""The flow designer's endpoints (flows/designer): permission, each change, refusals that name their
place and leave the draft as it was, the checks, the YAML view, the preview and the expression check."""
import pytest
from django.contrib.auth.models import Permission

from flows.models import Flow, ScreenField
from flows.spec import flow_from_dict, flow_to_dict

pytestmark = pytest.mark.django_db

INTAKE = {
    "api_name": "intake", "label": "Intake", "type": "screen",
    "outputs": [{"name": "kind"}],
    "screens": [
        {"name": "first", "label": "First", "fields": [
            {"name": "kind", "type": "choice", "label": "Kind", "required": True, "choices": ["laptop", "phone"]},
            {"name": "model", "label": "Model", "visible_if": "kind == 'laptop'"},
        ]},
        {"name": "second", "label": "Second", "fields": [{"name": "note", "type": "textarea"}]},
    ],
}


def draft(data=INTAKE):
    return flow_from_dict(data)


def url(flow, tail=""):
    return f"/admin/flows/flow/{flow.pk}/builder/{tail}"


def edit(client, flow, **values):
    return client.post(url(flow, "edit/"), values, HTTP_HX_REQUEST="true")


def stored(flow):
    return flow_to_dict(Flow.objects.get(pk=flow.pk))


def body(response):
    return response.content.decode()


def text_of(page):
    """The page's text as read: tags dropped, entities decoded."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", page))


# --------------------------------------------------------------------------- the page and permission

@pytest.mark.parametrize("sel", ["s" + "9" * 5000, "s0f" + "9" * 5000, "in" + "9" * 5000, "e" + "9" * 5000, "s9999999"])
def test_a_selection_that_names_nothing_opens_the_flows_panel_not_a_500(admin_client, sel):
    flow = draft()
    response = admin_client.get(url(flow), {"sel": sel})
    assert response.status_code == 200
    assert 'id="flow-designer"' in body(response)


def test_the_designer_shows_screens_fields_checks_and_the_preview(admin_client):
    flow = draft()
    response = admin_client.get(url(flow))
    assert response.status_code == 200
    page = body(response)
    assert 'id="flow-designer"' in page and "vendor/sortablejs/Sortable.min.js" in page
    for text in ("First", "Second", "kind", "model", "if kind == &#x27;laptop&#x27;"):
        assert text in page
    # The preview is the Work Guide's form: the choice field is a select with a blank first option.
    assert 'name="preview-kind"' in page and "Choose…" in page
    # visible_if: "model" shows only for a laptop, so the unanswered preview leaves it out.
    assert 'name="preview-model"' not in page
    assert "No problems: this version can be activated" in page


def test_the_change_page_and_the_list_link_to_the_designer(admin_client):
    flow = draft()
    assert url(flow) in body(admin_client.get(f"/admin/flows/flow/{flow.pk}/change/"))
    assert url(flow) in body(admin_client.get("/admin/flows/flow/"))


@pytest.mark.parametrize("tail,method", [
    ("", "get"), ("edit/", "post"), ("yaml/", "post"), ("preview/", "post"), ("expression/", "post"),
    ("activate/", "post"), ("new-version/", "post"),
])
def test_every_endpoint_needs_the_change_permission(client, django_user_model, tail, method):
    flow = draft()
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_flow"))
    client.force_login(user)
    before = stored(flow)
    response = getattr(client, method)(url(flow, tail), {"op": "add_screen"})
    assert response.status_code == 403
    assert stored(flow) == before
    assert Flow.objects.count() == 1


def test_anonymous_users_are_sent_to_the_login(client):
    flow = draft()
    response = client.get(url(flow))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_unknown_flow_is_not_found(admin_client):
    assert admin_client.get("/admin/flows/flow/999999/builder/").status_code == 404
    assert admin_client.get("/admin/flows/flow/nope/builder/").status_code in (302, 404)


# --------------------------------------------------------------------------- changes

def test_adding_a_screen_and_a_field_stores_them_and_selects_the_field(admin_client):
    flow = draft()
    response = edit(admin_client, flow, op="add_screen")
    assert response.status_code == 200
    assert [s["name"] for s in stored(flow)["screens"]] == ["first", "second", "screen_3"]
    response = edit(admin_client, flow, op="add_field", screen="2", type="number", at="0")
    assert response.status_code == 200
    assert stored(flow)["screens"][2]["fields"] == [{"name": "number_field", "type": "number", "label": "Number field"}]
    assert 'data-selection="s2f0"' in body(response)
    assert Flow.objects.get(pk=flow.pk).pk == flow.pk  # the same draft row, changed in place


def test_a_field_moves_within_its_screen_and_to_another_screen(admin_client):
    flow = draft()
    assert edit(admin_client, flow, op="move_field", screen="0", field="1", to="0").status_code == 200
    assert [f["name"] for f in stored(flow)["screens"][0]["fields"]] == ["model", "kind"]
    assert edit(admin_client, flow, op="move_field", screen="0", field="0", to_screen="1", to="1").status_code == 200
    data = stored(flow)
    assert [f["name"] for f in data["screens"][0]["fields"]] == ["kind"]
    assert [f["name"] for f in data["screens"][1]["fields"]] == ["note", "model"]


def test_screens_reorder(admin_client):
    flow = draft()
    assert edit(admin_client, flow, op="move_screen", screen="1", to="0").status_code == 200
    assert [s["name"] for s in stored(flow)["screens"]] == ["second", "first"]


def test_field_properties_keep_only_what_the_type_uses(admin_client):
    flow = draft()
    response = edit(admin_client, flow, op="field", screen="0", field="1", name="model", type="choice",
                    label="Model", help_text="Pick one", required="on", default="", visible_if="kind == 'laptop'",
                    choices="mac | MacBook\nthinkpad", text="ignored for a choice field")
    assert response.status_code == 200
    field = stored(flow)["screens"][0]["fields"][1]
    assert field == {"name": "model", "type": "choice", "label": "Model", "help_text": "Pick one", "required": True,
                     "visible_if": "kind == 'laptop'", "choices": [{"value": "mac", "label": "MacBook"}, "thinkpad"]}
    # The panel of a choice field offers choices; a display field's panel offers text instead.
    assert 'name="choices"' in body(response) and 'name="text"' not in body(response)
    response = edit(admin_client, flow, op="field", screen="0", field="1", name="model", type="display",
                    text="Hello {!kind}", choices="a", required="on")
    assert stored(flow)["screens"][0]["fields"][1] == {"name": "model", "type": "display", "text": "Hello {!kind}"}
    assert 'name="text"' in body(response) and 'name="choices"' not in body(response)
    assert 'name="required"' not in body(response)


def test_screen_validate_and_variables_are_edited(admin_client):
    flow = draft()
    assert edit(admin_client, flow, op="screen", screen="0", name="first", label="First",
                validate="kind != ''", validate_message="Pick a kind").status_code == 200
    assert stored(flow)["screens"][0]["validate"] == {"condition": "kind != ''", "message": "Pick a kind"}
    assert edit(admin_client, flow, op="add_variable", direction="input").status_code == 200
    assert edit(admin_client, flow, op="variable", direction="input", index="0", name="budget", type="number",
                required="on", default="1500").status_code == 200
    assert stored(flow)["inputs"] == [{"name": "budget", "type": "number", "required": True, "default": 1500}]


def test_a_new_input_row_has_no_default_not_null(admin_client):
    flow = draft()
    response = edit(admin_client, flow, op="add_variable", direction="input")
    assert stored(flow)["inputs"] == [{"name": "input_1"}]
    assert 'name="default" value=""' in body(response)


def test_deleting_parts(admin_client):
    flow = draft()
    assert edit(admin_client, flow, op="delete_field", screen="1", field="0").status_code == 200
    assert edit(admin_client, flow, op="delete_screen", screen="1").status_code == 200
    assert [s["name"] for s in stored(flow)["screens"]] == ["first"]
    assert not ScreenField.objects.filter(name="note").exists()


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("values,words", [
    ({"op": "field", "screen": "0", "field": "1", "name": "my model", "type": "text"},
     "intake › screen first › field my model › name: 'my model' does not match the expected form"),
    ({"op": "field", "screen": "0", "field": "1", "name": "kind", "type": "text"},
     "intake › screen first › field kind › name: field 'kind' is defined twice in flow intake"),
    ({"op": "field", "screen": "0", "field": "1", "name": "model", "type": "slider"},
     "intake › screen first › field model › type: 'slider' is not a field type"),
    ({"op": "field", "screen": "0", "field": "0", "name": "kind", "type": "choice", "choices": " | Laptop"},
     "intake › screen first › field kind › choices: line 1"),
    ({"op": "field", "screen": "7", "field": "0", "name": "x"}, "screen: there is no screen at position 7"),
    ({"op": "field", "screen": "zero", "field": "0"}, "screen: 'zero' does not name a screen"),
    ({"op": "variable", "direction": "output", "index": "0", "name": "kind", "type": "text", "value": ""},
     None),
    ({"op": "add_variable", "direction": "sideways"}, "'sideways' is not a direction"),
    ({"op": "variable", "direction": "output", "index": "0", "name": "kind", "type": "money"},
     "intake › outputs.kind.type: 'money' is not one of"),
    ({"op": "screen", "screen": "0", "name": "second"}, "intake › screen second › name: screen 'second' is defined twice in flow intake"),
    ({"op": "screen", "screen": "0", "name": "first", "validate_message": "Only a message"},
     "intake › screen first › validate.condition: a validate message needs a condition"),
    ({"op": "add_field", "screen": "0", "type": "slider"}, "'slider' is not a field type"),
    ({"op": "explode"}, "'explode' is not a change the designer knows"),
])
def test_bad_changes_are_refused_naming_the_place_and_change_nothing(admin_client, values, words):
    flow = draft()
    before = stored(flow)
    response = edit(admin_client, flow, **values)
    if words is None:  # a change that is fine (control for the parametrisation)
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert "Not changed." in body(response)
    assert words in body(response).replace("&#x27;", "'")
    assert stored(flow) == before


def test_a_variables_default_must_be_a_json_literal(admin_client):
    flow = draft({**INTAKE, "inputs": [{"name": "budget", "type": "number"}]})
    response = edit(admin_client, flow, op="variable", direction="input", index="0", name="budget", type="number",
                    default="fifteen")
    assert response.status_code == 400
    assert "intake › inputs.budget.default: &#x27;fifteen&#x27; is not a JSON literal" in body(response)
    assert stored(flow)["inputs"] == [{"name": "budget", "type": "number"}]


def test_an_active_version_is_read_only_and_offers_a_new_version(admin_client):
    from orchestration import lifecycle

    flow = draft()
    lifecycle.activate(flow)
    page = body(admin_client.get(url(flow)))
    assert "is active and read-only" in page and 'id="fd-new-version"' in page
    assert 'id="fd-add-screen"' not in page and 'id="fd-activate"' not in page
    before = stored(flow)
    response = edit(admin_client, flow, op="add_screen")
    assert response.status_code == 400
    assert "intake v1: is active and cannot be changed" in body(response)
    assert stored(flow) == before
    response = admin_client.post(url(flow, "new-version/"))
    new = Flow.objects.get(api_name="intake", version=2)
    assert response.status_code == 302 and response["Location"] == url(new)
    assert new.status == "draft"


def test_get_on_a_change_endpoint_changes_nothing(admin_client):
    flow = draft()
    before = stored(flow)
    assert admin_client.get(url(flow, "edit/"), {"op": "add_screen"}).status_code == 403
    assert stored(flow) == before


# --------------------------------------------------------------------------- checks

def test_problems_are_listed_with_their_place_and_pinned_to_their_part(admin_client):
    flow = draft()
    response = edit(admin_client, flow, op="field", screen="0", field="1", name="model", type="text",
                    visible_if="kind ==")
    assert response.status_code == 200  # a draft may hold a broken expression; the checks say so
    page = body(response)
    assert "1 problem — activation waits until they are fixed" in page
    assert "intake › screen first › field model › visible_if" in page
    assert "hx-vals='{\"then_sel\": \"s0f1\"}'" in page  # the list entry jumps to the field
    assert 'id="fd-activate" disabled' in page
    assert 'class="fd-panel-problems"' in page  # the selected field's panel shows its problem too
    # Fixing it clears the check and enables activation.
    page = body(edit(admin_client, flow, op="field", screen="0", field="1", name="model", type="text",
                     visible_if="kind == 'laptop'"))
    assert "No problems: this version can be activated" in page
    assert 'id="fd-activate">' in page


def test_activate_from_the_designer(admin_client):
    flow = draft()
    response = admin_client.post(url(flow, "activate/"))
    assert response.status_code == 302 and response["Location"] == url(flow)
    assert Flow.objects.get(pk=flow.pk).status == "active"


def test_activation_is_refused_with_the_problems_and_nothing_changes(admin_client):
    flow = draft({**INTAKE, "screens": [{"name": "first", "fields": [{"name": "kind", "type": "choice"}]}]})
    response = admin_client.post(url(flow, "activate/"), follow=True)
    assert Flow.objects.get(pk=flow.pk).status == "draft"
    assert "intake › screen first › field kind › choices: a choice field needs choices" in body(response)


# --------------------------------------------------------------------------- autolaunched flows

def test_an_autolaunched_flows_elements_are_edited_in_a_list(admin_client):
    flow = draft({"api_name": "totals", "type": "autolaunched", "inputs": [{"name": "amount", "type": "number"}],
                  "outputs": [{"name": "total", "type": "number"}]})
    assert edit(admin_client, flow, op="add_element", type="assign").status_code == 200
    response = edit(admin_client, flow, op="element", index="0", type="assign", name="", **{
        "set-name-0": "total", "set-expr-0": "amount * 2", "set-name-1": "", "set-expr-1": ""})
    assert response.status_code == 200
    assert stored(flow)["elements"] == [{"type": "assign", "set": {"total": "amount * 2"}}]
    assert "No problems" in body(response)
    assert edit(admin_client, flow, op="add_element", type="decision", at="0").status_code == 200
    response = edit(admin_client, flow, op="element", index="0", type="decision", name="check", **{
        "outcomes-name-0": "big", "outcomes-condition-0": "amount > 10", "outcomes-goto-0": "end",
        "default": ""})
    assert stored(flow)["elements"][0] == {"type": "decision", "name": "check", "outcomes": [
        {"name": "big", "condition": "amount > 10", "goto": "end"}]}
    assert edit(admin_client, flow, op="move_element", index="0", to="1").status_code == 200
    assert [e["type"] for e in stored(flow)["elements"]] == ["assign", "decision"]
    # An element's panel shows only the settings of its type.
    page = body(admin_client.get(url(flow), {"sel": "e0"}))
    assert 'name="set-name-0"' in page and 'name="outcomes-goto-0"' not in page and 'name="url"' not in page


def test_an_element_setting_of_the_wrong_kind_is_refused_with_its_place(admin_client):
    flow = draft({"api_name": "fetch", "type": "autolaunched", "elements": [
        {"type": "get_records", "model": "auth.User", "into": "users"}]})
    before = stored(flow)
    response = edit(admin_client, flow, op="element", index="0", type="get_records", model="auth.User",
                    into="users", limit="many")
    assert response.status_code == 400
    assert "fetch › elements[0].limit: &#x27;many&#x27; is not a whole number" in body(response)
    assert stored(flow) == before


# --------------------------------------------------------------------------- YAML view

def test_the_yaml_view_shows_the_import_format(admin_client):
    flow = draft()
    page = body(admin_client.get(url(flow), {"view": "yaml"}))
    assert 'id="fd-yaml-text"' in page
    assert "flows:\n- api_name: intake" in page


def test_switching_to_yaml_applies_the_panels_pending_change(admin_client):
    flow = draft()
    response = edit(admin_client, flow, op="field", screen="0", field="1", name="model", type="text",
                    label="Laptop model", view="yaml")
    assert response.status_code == 200
    assert "label: Laptop model" in body(response)
    assert stored(flow)["screens"][0]["fields"][1]["label"] == "Laptop model"


def test_applying_yaml_replaces_the_draft_and_switches_back(admin_client):
    flow = draft()
    data = stored(flow)
    data["screens"][1]["fields"].append({"name": "extra", "type": "email"})
    from orchestration.definition_files import dump_yaml

    response = admin_client.post(url(flow, "yaml/"), {"yaml": dump_yaml({"flows": [data]}), "then": "designer"},
                                  HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'data-view="designer"' in body(response)
    assert stored(flow) == data
    assert Flow.objects.filter(api_name="intake").count() == 1


@pytest.mark.parametrize("text,words", [
    ("flows:\n- api_name: intake\n  type: screen\n  screens: [\n", "line 5, column 1: not valid YAML"),
    ("flows:\n- api_name: intake\n  type: screen\n  screens:\n  - name: a\n    fields:\n    - name: x\n      type: slider\n",
     "flows[0].screens[0].fields[0].type (line 8): 'slider' is not one of"),
    ("flows:\n- api_name: other\n  type: screen\n", "flows[0].api_name: is 'other'"),
    ("flows:\n- api_name: intake\n  type: screen\n- api_name: intake2\n  type: screen\n",
     "this view holds exactly one flow (intake), found 2"),
    ("queues:\n- name: q\n", "queues: this view holds one flow"),
    ("- just a list\n", "the document must be a mapping"),
])
def test_bad_yaml_is_refused_with_line_numbers_kept_in_the_box_and_stores_nothing(admin_client, text, words):
    flow = draft()
    before = stored(flow)
    response = admin_client.post(url(flow, "yaml/"), {"yaml": text, "then": "designer"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    page = body(response)
    assert words in text_of(page)
    assert 'data-view="yaml"' in page  # stays in the YAML view ...
    assert text.split("\n")[0] in page  # ... with the text as typed
    assert stored(flow) == before


def test_validator_problems_of_applied_yaml_show_their_line(admin_client):
    flow = draft()
    text = ("flows:\n- api_name: intake\n  type: screen\n  screens:\n  - name: a\n    fields:\n"
            "    - name: x\n      visible_if: 'x =='\n")
    response = admin_client.post(url(flow, "yaml/"), {"yaml": text}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "line 7 · intake › screen a › field x › visible_if: " in text_of(body(response))


# --------------------------------------------------------------------------- preview and expressions

def test_the_preview_reacts_to_what_is_typed(admin_client):
    flow = draft()
    response = admin_client.post(url(flow, "preview/"), {"preview_screen": "0", "preview-kind": "laptop"},
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'name="preview-model"' in body(response)
    response = admin_client.post(url(flow, "preview/"), {"preview_screen": "0", "check": "1"}, HTTP_HX_REQUEST="true")
    assert "This field is required." in body(response)


def test_the_preview_of_a_broken_screen_explains_instead_of_failing(admin_client):
    flow = draft({**INTAKE, "screens": [{"name": "a", "fields": [{"name": "x", "type": "choice"}]}]})
    response = admin_client.post(url(flow, "preview/"), {"preview_screen": "9"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200


@pytest.mark.parametrize("source,words", [
    ("kind == 'laptop'", "✓ compiles; reads kind"),
    ("kind ==", "intake › screen first › field model › visible_if"),
    ("colour == 'red'", "colour — not in scope"),
    ("", ""),
])
def test_expression_boxes_are_checked_as_typed(admin_client, source, words):
    flow = draft()
    response = admin_client.post(url(flow, "expression/"), {
        "check": "visible_if", "visible_if": source, "place": "intake › screen first › field model › visible_if"})
    assert response.status_code == 200
    assert words in body(response)
    if not source:
        assert body(response).strip() == ""


def test_a_merge_text_box_checks_each_merge_field(admin_client):
    flow = draft()
    response = admin_client.post(url(flow, "expression/"), {"check": "text", "text": "Hi {!kind} {!1 +}", "merge": "1",
                                                             "place": "here"})
    assert "here" in body(response) and "✓" not in body(response)


DEAL_REVIEW = {
    "api_name": "deal_check", "label": "Deal check", "type": "screen",
    "inputs": [{"name": "name", "type": "text", "required": True}, {"name": "discount", "type": "number"},
               {"name": "tags", "type": "list"}],
    "outputs": [{"name": "approved_discount", "type": "number"}],
    "screens": [{"name": "deal", "label": "The deal", "fields": [
        {"name": "summary", "type": "display",
         "text": "{!name}: {!discount > 20.0 ? 'above the guideline' : 'within the guideline'}"},
        {"name": "approved_discount", "type": "number", "label": "Discount you approve"},
    ]}],
}


def test_the_preview_draws_merge_text_with_sample_inputs_not_a_null_error(admin_client):
    """Drawn with no inputs, "discount > 20.0" failed on null ("No such overload") and that error was
    the preview's first line, while the checks found no problem."""
    flow = draft(DEAL_REVIEW)
    page = text_of(body(admin_client.get(url(flow))))
    assert "No such overload" not in page
    assert "name: within the guideline" in page  # text's sample is its name, a number's 0
    assert 'Shown with sample inputs: name = "name", discount = 0, tags = [].' in " ".join(page.split())
    response = admin_client.post(url(flow, "preview/"), {"preview_screen": "0", "check": "1"}, HTTP_HX_REQUEST="true")
    assert "No such overload" not in body(response) and "This screen's values pass its checks." in body(response)


def test_merge_text_that_fails_even_with_sample_inputs_is_a_muted_note_after_the_fields(admin_client):
    data = {**DEAL_REVIEW, "screens": [{"name": "deal", "label": "The deal", "fields": [
        {"name": "summary", "type": "display", "text": "Total {!discount + 'x'}"},
        {"name": "approved_discount", "type": "number", "label": "Discount you approve"},
    ]}]}
    html = body(admin_client.post(url(draft(data), "preview/"), {"preview_screen": "0"}, HTTP_HX_REQUEST="true"))
    note = html.index('id="fd-preview-samples"')
    assert html.index('name="preview-approved_discount"') < note  # the fields come first
    assert "With these inputs some text cannot be drawn:" in html[note:]
    assert "[" not in text_of(html[:note]).replace("[]", "")  # no bracketed error in the screen's own text
