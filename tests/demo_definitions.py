"""Import the demo definition files (demo/definitions/*.yaml) in a test, with the users and groups they name."""
from pathlib import Path

from django.contrib.auth.models import Group, User

from orchestration.definition_files import import_document

DEFINITIONS = Path(__file__).resolve().parent.parent / "demo" / "definitions"
DEMO_FILES = sorted(DEFINITIONS.glob("*.yaml"))


def import_demo_definitions():
    """Import and activate every demo file; returns the orchestration api_names, by file."""
    import yaml

    for username in ("dave", "erin"):
        User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    for name in ("sales_managers", "it", "facilities", "sales"):
        Group.objects.get_or_create(name=name)
    names = {}
    for path in DEMO_FILES:
        text = path.read_text()
        import_document(text, activate=True)
        names[path.name] = [o["api_name"] for o in (yaml.safe_load(text).get("orchestrations") or [])]
    return names
