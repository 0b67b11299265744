"""bunko's one error hierarchy.

Library code raises these with messages that tell a person what to do next.
The CLI catches only :class:`BunkoError`, prints ``Error: <message>`` to stderr
and exits 1; anything else is a bug and is allowed to show.
"""

from __future__ import annotations


class BunkoError(Exception):
    """Base class for every error bunko reports to a user.

    The message speaks to any caller, library or command line. ``cli_hint`` is an
    extra sentence that only makes sense at the command line (it names a flag);
    the CLI adds it after the message.
    """

    cli_hint: str | None = None

    def with_cli_hint(self, hint: str) -> BunkoError:
        """Attach a command-line-only hint and return the error, for ``raise ... from``."""
        self.cli_hint = hint
        return self


class CorpusError(BunkoError):
    """The corpus folder is missing, empty or unusable."""


class SkipFile(BunkoError):
    """One corpus file cannot be read; it is skipped with a warning, the rest go on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexMissingError(BunkoError):
    """There is no index where one was expected."""


class IndexCorruptError(BunkoError):
    """An index file is missing, truncated or inconsistent."""


class ModelMismatchError(BunkoError):
    """The index was built with a different embedding model than the one asked for."""


class ModelLoadError(BunkoError):
    """An embedding model could not be found or loaded."""


class ClusterError(BunkoError):
    """Ray could not be started or joined, or its workers failed; the index is unchanged."""


class IndexLockedError(BunkoError):
    """Another process is updating the index."""


class IndexWriteError(BunkoError):
    """Writing the index failed (disk full, read-only folder, ...); the previous index is intact."""


class AddError(BunkoError):
    """`bunko add` refused a file."""


class SourceError(BunkoError):
    """A corpus source name or glob (`bunko show`, `bunko remove`) was refused or matched
    nothing: it points outside the corpus, or no such article exists."""


class EvalError(BunkoError):
    """An evaluation file is missing or malformed."""


class ServeError(BunkoError):
    """`bunko serve` or `bunko mcp --http` could not start (the port is taken, the address
    cannot be bound)."""


class UsageError(BunkoError):
    """A bad argument (empty question, k < 1, unknown mode). The CLI exits 2 for these."""
