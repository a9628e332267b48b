"""Example bodies shown in the OpenAPI schema and on the docs page (``api/docs/``)."""

ORCHESTRATION_EXAMPLE = {
    "id": 7, "api_name": "equipment_refresh", "version": 1, "status": "active", "label": "Replace equipment",
    "description": "IT picks replacement equipment for an employee and ships it.",
    "start": {"type": "autolaunched", "model": "", "when": "", "condition": "", "only_when_changed_to_meet": False},
    "inputs": [{"name": "reason", "type": "text", "required": False, "default": "replacement"}],
    "created_at": "2025-01-06T09:00:00Z", "activated_at": "2025-01-06T09:00:00Z",
}
ORCHESTRATION_DETAIL_EXAMPLE = {
    **ORCHESTRATION_EXAMPLE,
    "max_stage_visits": 50,
    "outputs": {},
    "path": [
        {"type": "stage", "name": "choose", "label": "Choose equipment", "next": "", "exit": "all_steps_complete",
         "steps": [{"name": "pick_equipment", "label": "Pick replacement equipment", "type": "interactive",
                    "flow": "onboarding_pick_equipment",
                    "inputs": {"employee_name": 'record.first_name + " " + record.last_name'},
                    "entry": "stage_start", "exit": "step_completes", "assignee": {"queue": "it_support"},
                    "due_in": "3d", "priority": 50}],
         "outcomes": [], "default": ""},
        {"type": "stage", "name": "deliver", "label": "Deliver", "next": "", "exit": "all_steps_complete",
         "steps": [{"name": "ship", "label": "Ship the equipment", "type": "background",
                    "flow": "onboarding_ship_equipment", "inputs": {"employee_id": "record.id"},
                    "entry": "stage_start", "exit": "step_completes", "assignee": None, "due_in": "", "priority": 50}],
         "outcomes": [], "default": ""},
    ],
}

RUN_EXAMPLE = {
    "id": 42, "status": "running", "orchestration": "equipment_refresh", "version": 1, "label": "Replace equipment",
    "record": {"model": "demo.employee", "pk": "1"}, "inputs": {"reason": "broken screen"}, "started_by": "alice",
    "started_at": "2025-01-06T09:30:00Z", "ended_at": None, "current_stage": "choose", "error": "",
    "parent": None, "outputs": {},
}
RUN_DETAIL_EXAMPLE = {
    **RUN_EXAMPLE,
    "stages": [{
        "id": 90, "name": "choose", "visit": 1, "status": "in_progress", "started_at": "2025-01-06T09:30:00Z",
        "ended_at": None,
        "steps": [{"id": 311, "name": "pick_equipment", "type": "interactive", "status": "in_progress",
                   "flow": {"api_name": "onboarding_pick_equipment", "version": 1},
                   "inputs": {"employee_name": "Grace Hopper", "needs_laptop": True}, "outputs": {}, "error": "",
                   "attempts": 0, "work_item": 17, "started_at": "2025-01-06T09:30:00Z", "ended_at": None,
                   "child_runs": []}],
    }],
    "events": [
        {"id": 1001, "at": "2025-01-06T09:30:00Z", "kind": "run_started", "actor": "alice", "stage": "", "step": "",
         "data": {"version": 1, "record": "demo.employee:1", "inputs": {"reason": "broken screen"}}},
        {"id": 1002, "at": "2025-01-06T09:30:00Z", "kind": "work_item_opened", "actor": "alice", "stage": "choose",
         "step": "pick_equipment", "data": {"work_item": 17, "assignee": "queue:it_support"}},
    ],
}
