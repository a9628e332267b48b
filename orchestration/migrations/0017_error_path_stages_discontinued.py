"""A stage left by its error path is `discontinued` (DESIGN §10), no longer `error`: bring earlier rows in line.

A stage stays `error` only where its run stopped: the run is in error and no
later stage visit exists. Any other stage in `error` was left by its
`on_error` path (the run went on), and is made `discontinued`, as the engine
now closes such a stage; otherwise a cancel would close it a second time and
the monitor would offer to retry its step.
"""
from django.db import migrations
from django.db.models import Exists, OuterRef, Q


def left_by_their_error_path(StageRun):
    later = StageRun.objects.filter(run_id=OuterRef("run_id"), id__gt=OuterRef("id"))
    return StageRun.objects.filter(status="error").filter(Q(Exists(later)) | ~Q(run__status="error"))


def forwards(apps, schema_editor):
    StageRun = apps.get_model("orchestration", "StageRun")
    left_by_their_error_path(StageRun).update(status="discontinued")


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0016_open_steps_help_text")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
