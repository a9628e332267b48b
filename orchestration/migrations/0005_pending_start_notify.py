"""On PostgreSQL, a new PendingStart notifies the channel ``baton_pending_start`` (with its id) when it commits.

Workers started with ``BATON_RECORD_STARTS=worker`` listen on it
(``orchestration/listener.py``) and start the run at once; the saving
request pays for no message. NOTIFY is transactional: nothing is sent for a
save that rolls back. Other databases have no trigger (workers get a Celery
message instead).
"""
from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION baton_pending_start_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('baton_pending_start', NEW.id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER baton_pending_start_notify AFTER INSERT ON orchestration_pendingstart
    FOR EACH ROW EXECUTE FUNCTION baton_pending_start_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS baton_pending_start_notify ON orchestration_pendingstart;
DROP FUNCTION IF EXISTS baton_pending_start_notify();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0004_stagerun_open_steps")]
    operations = [migrations.RunPython(create, drop)]
