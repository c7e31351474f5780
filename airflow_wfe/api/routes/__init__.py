"""The routers of ``/wfe/api/v1``, one module per resource; every write is in :mod:`.actions`."""
