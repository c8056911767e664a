"""What every request passes first: a fair share of Gradio's event queue per session, and who holds a heartbeat.

Gradio's queue takes any number of events from one session (260 joins from one ``session_hash``
were accepted in under a second, and other visitors then got HTTP 503 "queue full"), and has no
option to limit them. ``Guard`` is an ASGI middleware in front of Gradio's routes:

- a ``POST .../queue/join`` (or ``.../call/<api>`` with a ``session_hash``) from a session that
  already has ``MAX_PENDING_PER_SESSION`` events waiting or running is answered at once with
  HTTP 429 and a message, and never reaches the queue. Streams (generator events such as the
  Train tab's live view) do not count: they wait on a run, not on the CPU. A browser tab
  stays far below the cap: the pad's events are ``always_last`` (one in flight, the latest
  waiting), and Gradio's page sends one event per change;
- a ``GET .../heartbeat/<session>`` is the connection an open tab (or a ``gradio_client``
  Client) keeps: ``Visitors.heartbeat`` is told when it opens and when it closes, so that
  workspaces of sessions without one are freed after minutes instead of hours.

The app's ``Context`` is found through the Blocks that Gradio's app serves (``demo.ctx``).
``protect(demo)`` makes every ``demo.launch(...)`` install the guard (``python app.py``, the
tests, a Space).
"""

from __future__ import annotations

import functools
import inspect
import json

from starlette.middleware import Middleware

# Events one session may have waiting or running at once (streams aside); the next is refused.
MAX_PENDING_PER_SESSION = 4
MAX_JOIN_BODY_BYTES = 1024 * 1024  # a queue join carries references to uploads and a pad drawing (<= 200 kB)
TOO_MANY = ("This session already has {n} requests waiting or running; wait for their answers before "
            "sending more (at most {cap} at once, so that every visitor gets a fair share).")


def pending_events(queue, session: str) -> int:
    """Events of ``session`` waiting in Gradio's queue or running now, streams (generators) aside."""
    count = 0
    for event_queue in list(queue.event_queue_per_concurrency_id.values()):
        count += sum(1 for e in list(event_queue.queue) if e.session_hash == session and not _stream(e))
    for job in list(queue.active_jobs):
        count += sum(1 for e in job or [] if e.session_hash == session and not _stream(e))
    return count


def _stream(event) -> bool:
    fn = getattr(getattr(event, "fn", None), "fn", None)
    return inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn)


class Guard:
    """ASGI middleware: the per-session cap on queue joins, and heartbeat connections reported to Visitors."""

    def __init__(self, app, max_pending: int = MAX_PENDING_PER_SESSION) -> None:
        self.app = app
        self.max_pending = max_pending

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method")
        if method == "GET" and "/heartbeat/" in path:
            return await self._heartbeat(scope, receive, send, path.rstrip("/").rsplit("/", 1)[-1])
        if method == "POST" and (path.endswith("/queue/join") or "/call/" in path):
            return await self._join(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _heartbeat(self, scope, receive, send, session: str) -> None:
        visitors = _visitors(scope)
        if visitors is None or not session:
            return await self.app(scope, receive, send)
        visitors.heartbeat(session, True)
        try:
            await self.app(scope, receive, send)
        finally:
            visitors.heartbeat(session, False)

    async def _join(self, scope, receive, send) -> None:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_JOIN_BODY_BYTES:
                return await _answer(send, 413, f"A request body is at most {MAX_JOIN_BODY_BYTES // 1024} kB here; "
                                                "upload files and send their references.")
        body = b"".join(chunks)
        session = _session_of(body)
        queue = _queue(scope)
        if session and queue is not None:
            pending = pending_events(queue, session)
            if pending >= self.max_pending:
                return await _answer(send, 429, TOO_MANY.format(n=pending, cap=self.max_pending))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _session_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    session = data.get("session_hash") if isinstance(data, dict) else None
    return session if isinstance(session, str) and session else None


def _blocks(scope):
    app = scope.get("app")
    get_blocks = getattr(app, "get_blocks", None)
    try:
        return get_blocks() if get_blocks is not None else None
    except Exception:  # not launched yet
        return None


def _queue(scope):
    return getattr(_blocks(scope), "_queue", None)


def _visitors(scope):
    return getattr(getattr(_blocks(scope), "ctx", None), "visitors", None)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message, "error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def protect(demo, max_pending: int = MAX_PENDING_PER_SESSION):
    """Make every ``demo.launch(...)`` put ``Guard`` in front of the app (a fresh ``app_kwargs`` each time:
    Gradio changes the dict it is given). Returns ``demo``."""
    launch = demo.launch

    @functools.wraps(launch)
    def guarded_launch(*args, app_kwargs: dict | None = None, **kwargs):
        app_kwargs = dict(app_kwargs or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(Guard, max_pending=max_pending)]
        return launch(*args, app_kwargs=app_kwargs, **kwargs)

    demo.launch = guarded_launch
    return demo
