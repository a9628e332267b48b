"""Definition files: YAML documents holding queues, flows and orchestrations, in three modules:

- ``yaml_lines``: the safe YAML loader that remembers lines (every problem
  names its line), and the writer of the export format;
- ``schema``: the document's shape as a JSON Schema, and the duplicate-name
  check, both in plain words;
- ``import_export``: ``import_document`` (all or nothing, optionally
  activating) and ``export_document`` (the same format out).

Every public name the single ``orchestration/definition_files.py`` module had
is importable from ``orchestration.definition_files`` as before.
"""
from .yaml_lines import (  # noqa: F401
    DocumentRefused,
    LineDict,
    LineList,
    LineLoader,
    MAX_ALIAS_CHARACTERS,
    MAX_ALIAS_NODES,
    MAX_NESTING,
    dump_yaml,
    line_of,
    load_yaml,
    path_text,
    place_at,
)
from .schema import (  # noqa: F401
    DECISION,
    DOCUMENT_SCHEMA,
    ELEMENT,
    FIELD,
    FLOW,
    NAME_MAX_LENGTH,
    ORCHESTRATION,
    OUTCOME,
    PATH_ELEMENT,
    QUEUE,
    SCREEN,
    STAGE,
    START,
    STEP,
    VARIABLE,
    check_duplicates,
    check_shape,
)
from .import_export import (  # noqa: F401
    DefinitionFileError,
    ImportReport,
    export_data,
    export_document,
    import_document,
    import_file,
    parse_document,
)
