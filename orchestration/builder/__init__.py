"""The Orchestration Builder: build, check, dry-run and activate an orchestration on one page.

``/admin/orchestration/orchestration/<pk>/builder/`` (DESIGN §11) shows a
version's path as a canvas: the start at the left, stages as columns of step
cards, decisions as diamonds with their outcomes. Every change is one htmx
request that edits the draft's rows (``edits``), runs the activation
validator (``orchestration.validation``) and answers with the new canvas and
its checks (``views``). Forms for the property panel are in ``forms``, the
problems pinned to elements and the names in scope in ``checks``, the
side-by-side comparison of two versions in ``diff``. ``admin`` hooks the
URLs into the orchestration ModelAdmin.
"""
