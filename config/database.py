"""Connection options Baton sets for PostgreSQL (``config/settings.py``, and the tests' private databases)."""
import environ


def postgres_options(env=None):
    """``OPTIONS`` for a PostgreSQL ``DATABASES`` entry, from ``PG_SERVER_SIDE_BINDING`` and ``PG_PREPARE_THRESHOLD``.

    Server-side binding, and prepared statements after ``PG_PREPARE_THRESHOLD``
    runs of the same SQL on a connection (default 5): the engine's statements
    are the same few texts run over and over, and planning them each time was
    a third of their cost (``docs/performance.md``, fifth look). Django's own
    default prepares nothing, to keep poolers working: behind PgBouncer in
    transaction mode older than 1.21 (or without ``max_prepared_statements``)
    set ``PG_PREPARE_THRESHOLD=none`` (``docs/operations.md``).
    """
    env = env or environ.Env()
    threshold = env.str("PG_PREPARE_THRESHOLD", default="5").strip().lower()
    if threshold in ("none", "off", ""):
        prepare = None
    else:
        try:
            prepare = int(threshold)
        except ValueError:
            raise environ.ImproperlyConfigured(
                f"PG_PREPARE_THRESHOLD must be a whole number or 'none', not {threshold!r}") from None
    return {"server_side_binding": env.bool("PG_SERVER_SIDE_BINDING", default=True), "prepare_threshold": prepare}
