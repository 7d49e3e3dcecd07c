"""The chat demo: a one-page WebSocket chat served by uvicorn, rooms are groups.

app.py holds the ASGI application (make_app, a factory uvicorn imports in each worker
process), chat.html the page, serve.py what `chanlayers demo` runs.
"""
