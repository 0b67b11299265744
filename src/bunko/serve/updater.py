"""Index updates for a running server, in the background: requests never wait for the writer.

A server used to bring the index up to date inside the request that noticed a
change, holding the shelf's lock: a 50 MB article dropped into the corpus kept one
request indexing for minutes while ``/api/status``, the page and every other
request queued behind it.

Now a request only notices (one ``stat`` per file, as ``bunko query`` does), and
:class:`BackgroundUpdater` runs at most one update at a time on its own thread
and its own :class:`~bunko.api.Shelf`. Until it commits, answers come from the
last committed index, flagged ``stale`` with the pending changes; the next
request after the commit reopens the new index (``Shelf.loaded``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from bunko.errors import BunkoError

if TYPE_CHECKING:
    from bunko.api import Shelf
    from bunko.corpus.changes import CorpusChanges

log = logging.getLogger("bunko")


def pending_list(changes: CorpusChanges) -> tuple[str, ...]:
    """``("new: a.md", "changed: b.txt", "removed: c.md")``: what an update will do."""
    return (
        *(f"new: {s}" for s in changes.new),
        *(f"changed: {s}" for s in changes.changed),
        *(f"removed: {s}" for s in changes.removed),
    )


class BackgroundUpdater:
    """One background index update at a time for a server's shelf.

    :meth:`poll` is called with the serving shelf (under the server's lock); it
    checks the corpus against the index the shelf has open and, when something
    changed and no update is running, starts one. It never waits for one.
    """

    def __init__(self, shelf: Shelf) -> None:
        self._settings = shelf.settings
        self._guard = threading.Lock()  # guards the fields below only; held for microseconds
        self._thread: threading.Thread | None = None
        self._pending: tuple[str, ...] = ()
        self._failed: CorpusChanges | None = None  # not retried until the changes differ

    @property
    def running(self) -> bool:
        with self._guard:
            return self._thread is not None and self._thread.is_alive()

    def poll(self, shelf: Shelf) -> tuple[str, ...]:
        """The changes the open index does not hold yet (empty when up to date);
        starts an update for them unless one is running.

        Raises:
            CorpusError, IndexCorruptError, ...: as ``Shelf.query`` would.
        """
        from bunko.freshness import corpus_changes

        loaded = shelf.loaded()
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return self._pending
        memory = loaded.meta.get("skipped")
        changes = corpus_changes(
            self._settings.corpus,
            loaded.documents(),
            skipped=memory if isinstance(memory, dict) else None,
        )
        if not changes:
            return ()
        pending = pending_list(changes)
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return self._pending
            if changes == self._failed:
                return pending
            self._pending = pending
            self._thread = threading.Thread(
                target=self._update, args=(changes,), name="bunko-update", daemon=True
            )
            self._thread.start()
        log.warning(
            "the corpus changed since the last update: %s; updating the index in the background",
            changes.summary(),
        )
        return pending

    def _update(self, changes: CorpusChanges) -> None:
        from bunko.api import Shelf

        # Its own Shelf: the serving one is not shared across threads. The daemon
        # thread may be cut off at exit; a commit is crash-safe (the old index stays).
        try:
            Shelf(self._settings).index(wait=False)
            with self._guard:
                self._failed = None
        except BunkoError as exc:
            log.warning("could not update the index (%s); answering from the index as it is", exc)
            with self._guard:
                self._failed = changes

    def join(self, timeout: float | None = None) -> None:
        """Wait for a running update (tests, and a server that wants to finish one)."""
        with self._guard:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
