"""Records a run is about: ``flows.records``, under the name orchestration's code and hosts have used.

The rules (``BATON_FLOW_MODELS``, secret fields, references) live in
``flows/records.py`` so that flows can read records without importing this
app; every public name is re-exported here unchanged.
"""
from flows.records import (  # noqa: F401
    ALWAYS_SECRET,
    RecordError,
    allowed_models,
    check_flow_models,
    exposed_attnames,
    exposed_fields,
    forget_settings,
    get_model,
    is_secret,
    load_record,
    model_label,
    record_map,
    record_reference,
    record_values,
    resolve_record_ref,
    setting_key,
)
