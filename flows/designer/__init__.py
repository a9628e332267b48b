"""The flow designer: build a flow version on one admin page.

``/admin/flows/flow/<pk>/builder/`` (DESIGN.md §11). The flow being built is
held as its definition-file mapping (``flows.spec.flow_to_dict``): every
change in the designer, and the YAML view, edits that mapping, which is
checked with the definition file's own shape checks and then stored with
``flows.spec.replace_flow_content``. So the designer, the YAML view and
``import_definitions`` keep exactly the same things and name problems in the
same words.

* ``edits`` — the changes (add a screen, move a field, set a property...),
  pure functions on the mapping; each refusal names its place.
* ``checks`` — the validator's problems pinned to the part they are about.
* ``views`` — the htmx endpoints, wired in by ``FlowAdmin.get_urls``.
"""
