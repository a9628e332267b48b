"""The run monitor, a room of its own: ``views`` (pages and operator actions) and ``urls`` (namespace ``monitor``).

It reads the engine's models and the Work Guide's items and acts only
through the engine's public transitions and ``workguide.services``; nothing
outside it imports it but the URL configuration (``orchestration.urls``).
Its figures come from ``stats``; its templates are ``orchestration/templates/monitor/``.
"""
