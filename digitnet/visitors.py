"""Every visitor's workspace by session id: made on a visitor's first request, freed when they leave.

Leaving is Gradio's unload event (``Visitors.leave``: the waiting run leaves the queue, a running
one stops, everything the visitor had is forgotten). Workspaces are also freed when nobody uses
them (``sweep``: minutes for a session without a heartbeat, hours for an open tab) and, least
recently used first, when together they hold more than the server's budget (``enforce_budget``).
``digitnet.ui.guard`` reports the heartbeat connections.
"""

from __future__ import annotations

import threading
import time

from .predict import CACHE, ModelCache
from .scheduler import Scheduler
from .workspace import Workspace

# Leaving is normally Gradio's unload event (the tab's heartbeat ends). A caller with no
# heartbeat (plain HTTP calls, a session id made up for a few queue calls) never leaves, so
# its workspace is freed after a few minutes without a request. A session that holds a heartbeat
# (an open tab, a gradio_client Client) keeps its workspace while it is idle for hours (a tab
# left open over lunch keeps its weights), unless the server's budget needs the memory.
EMPTY_IDLE_SECONDS = 10 * 60
NO_HEARTBEAT_IDLE_SECONDS = 10 * 60
IDLE_SECONDS = 6 * 3600
SWEEP_EVERY = 100  # look for idle workspaces every this many new visitors...
SWEEP_SECONDS = 60.0  # ...and at least this often while requests come
BUDGET_CHECK_SECONDS = 1.0  # how often a request may add up every workspace's memory


class Visitors:
    """Session id -> Workspace, created on a visitor's first request and freed when they leave.

    Besides the unload event (``leave``), workspaces are freed when idle (``sweep``: minutes for a
    session without a heartbeat, hours for one with) and, least recently used first, when all of them
    together hold more than ``budget_bytes`` (``enforce_budget``: sessions without a heartbeat first).
    A workspace whose run waits or runs is never freed, nor is the one making the request.
    """

    def __init__(self, scheduler: Scheduler, shipped: ModelCache = CACHE,
                 budget_bytes: int | None = None) -> None:
        self.scheduler = scheduler
        self.shipped = shipped
        self.budget_bytes = budget_bytes  # None: no server-wide budget
        self._lock = threading.Lock()
        self._workspaces: dict[str, Workspace] = {}
        self._heartbeats: dict[str, int] = {}  # session -> open heartbeat connections
        self._created = 0
        self._last_sweep = time.monotonic()
        self._last_budget = 0.0
        self.evicted = 0  # workspaces freed for the server's budget (benchmarks, tests)

    def get(self, session: str) -> Workspace:
        """The workspace of ``session``, new if this is its first request (which may free idle ones)."""
        now = time.monotonic()
        with self._lock:
            ws = self._workspaces.get(session)
            if ws is None:
                ws = self._workspaces[session] = Workspace(session, self.scheduler, self.shipped)
                self._created += 1
                sweep = self._created % SWEEP_EVERY == 0
            else:
                sweep = False
            sweep = sweep or now - self._last_sweep > SWEEP_SECONDS
            budget = self.budget_bytes is not None and now - self._last_budget > BUDGET_CHECK_SECONDS
            if sweep:
                self._last_sweep = now
            if budget:
                self._last_budget = now
            ws.last_seen = now
        if sweep:
            self.sweep()
        if budget:
            self.enforce_budget(keep=session)
        return ws

    # ---- heartbeats (digitnet.ui.guard sees the connections) ------------------------------------------

    def heartbeat(self, session: str, connected: bool) -> None:
        """A heartbeat connection of ``session`` opened (True) or closed (False)."""
        with self._lock:
            count = self._heartbeats.get(session, 0) + (1 if connected else -1)
            if count > 0:
                self._heartbeats[session] = count
            else:
                self._heartbeats.pop(session, None)

    def has_heartbeat(self, session: str) -> bool:
        """Whether ``session`` holds a heartbeat connection now (an open tab or client)."""
        with self._lock:
            return session in self._heartbeats

    # ---- freeing ----------------------------------------------------------------------------------

    def idle_limit(self, session: str, ws: Workspace) -> float:
        """How long ``session``'s workspace may go without a request before ``sweep`` frees it."""
        if ws.holds_nothing():
            return EMPTY_IDLE_SECONDS
        return IDLE_SECONDS if self.has_heartbeat(session) else NO_HEARTBEAT_IDLE_SECONDS

    def sweep(self, now: float | None = None) -> int:
        """Free the workspaces idle for longer than they may be (see ``idle_limit``); how many were freed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            candidates = list(self._workspaces.items())
        freed = 0
        for session, ws in candidates:
            idle = ws.idle_for(now)
            if idle is not None and idle > self.idle_limit(session, ws):
                freed += self.leave(session)
        return freed

    def memory_bytes(self) -> int:
        """What every visitor's workspace holds (as counted at their last change)."""
        with self._lock:
            return sum(ws.held_bytes for ws in self._workspaces.values())

    def enforce_budget(self, keep: str | None = None) -> int:
        """Free idle workspaces (not ``keep``'s), those without a heartbeat first, least recently used first,
        while all together hold more than ``budget_bytes``; how many were freed."""
        if self.budget_bytes is None:
            return 0
        with self._lock:
            total = sum(ws.held_bytes for ws in self._workspaces.values())
            if total <= self.budget_bytes:
                return 0
            # Sessions without a heartbeat (raw calls) first, then open tabs; least recently used first.
            oldest = sorted(self._workspaces.items(),
                            key=lambda item: (item[0] in self._heartbeats, item[1].last_seen))
        freed = 0
        for session, ws in oldest:
            if total <= self.budget_bytes:
                break
            if session == keep or ws.active() is not None or not ws.held_bytes:
                continue
            total -= ws.held_bytes
            freed += self.leave(session)
        self.evicted += freed
        return freed

    def peek(self, session: str) -> Workspace | None:
        """The workspace of ``session`` if it has one (no new one is made)."""
        with self._lock:
            return self._workspaces.get(session)

    def leave(self, session: str) -> bool:
        """Free everything ``session`` had; True if it had a workspace."""
        with self._lock:
            ws = self._workspaces.pop(session, None)
        if ws is None:
            return False
        ws.close()
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._workspaces)
