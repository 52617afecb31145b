"""``rdmt serve``: the dashboard, a read-only web application over the store.

:mod:`.queries` reads the store (fixed SQL templates; every value from the browser is validated, then
quoted; every query bounded by a time range and a row limit; no DDL, no insert), :mod:`.plots` draws
with Bokeh, :mod:`.app` is the Starlette application (pages, CSV downloads, report files confined to
their directories, optional bearer-token or proxy-header protection). Starlette, uvicorn and Bokeh are
imported only here and by the ``serve`` command, never by ``rdmt_core.config`` or ``rdmt_core.monitors``.
"""
