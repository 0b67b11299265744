"""The importable surface of bunko: build, update, query and evaluate an index.

:class:`Shelf` keeps the embedding model, the tokenizer and the opened index
between calls, so a long-lived process pays for them once. The module-level
functions are one-shot conveniences over it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bunko.config import SHELF_FILE, Settings
from bunko.errors import CorpusError, IndexMissingError
from bunko.index.snapshot import Snapshot
from bunko.index.store import IndexStore
from bunko.retrieval.query import QueryRequest, Retriever, embedder_for
from bunko.types import (
    AddReport,
    EvalReport,
    IndexReport,
    Mode,
    QueryResult,
    RemoveReport,
    StatusReport,
)

if TYPE_CHECKING:
    from bunko.shelfops import ShowResult
    from bunko.text import Tokenizer

log = logging.getLogger("bunko")

ProgressFn = Callable[[str, int, int], None]
"""progress(stage, done, total): called as long work advances."""


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


class Shelf:
    """A corpus and its index, with the model, tokenizer and index cached."""

    def __init__(self, settings: Settings | None = None, progress: ProgressFn | None = None):
        self.settings = settings or Settings.resolve()
        self.store = IndexStore(self.settings.index)
        self.progress = progress or _no_progress
        self._tokenizer: Tokenizer | None = None
        self._loaded: Snapshot | None = None
        self._loaded_from: Path | None = None
        self._retriever: Retriever | None = None

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        *,
        model: str | None = None,
        progress: ProgressFn | None = None,
    ) -> Shelf:
        """The shelf in folder ``home`` (its ``corpus/`` and ``index/``).

        Without ``home``, the shelf is found as the command line finds it:
        ``BUNKO_HOME``, else the nearest folder from the current one upwards that
        holds ``corpus/`` or ``bunko.toml`` (``BUNKO_CORPUS``/``BUNKO_INDEX`` win).
        Nothing is read until a method needs it.
        """
        if home is None:
            return cls(Settings.resolve(model=model), progress=progress)
        root = Path(home)
        return cls(
            Settings.resolve(corpus=root / "corpus", index=root / "index", model=model),
            progress=progress,
        )

    # -- shared pieces -------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from bunko.text import Tokenizer

            self._tokenizer = Tokenizer(mode="surface")
        return self._tokenizer

    def loaded(self) -> Snapshot:
        """The live index, reopened when another process has committed a new one."""
        current = self.store.current()
        if current is None:
            raise IndexMissingError(
                f"there is no index in {self.settings.index}; run `bunko index` to build one"
            )
        if self._loaded is None or self._loaded_from != current:
            if self._loaded is not None:
                self._loaded.close()
            self._loaded = self.store.load()
            self._loaded_from = self._loaded.folder
        return self._loaded

    # -- index ---------------------------------------------------------------

    def index(
        self, rebuild: bool = False, optimize: bool = False, *, wait: bool = True
    ) -> IndexReport:
        """Bring the index up to date with the corpus, embedding only what changed.

        Args:
            rebuild: ignore the existing index and build from scratch (vectors of
                unchanged chunk texts are still reused when the model is the same).
                Only a rebuild may switch the index to another corpus folder.
            optimize: merge every segment into one, dropping deleted rows.
            wait: wait for another writer to finish (else raise IndexLockedError).

        Returns:
            What was added, updated, removed, left unchanged and skipped.

        Raises:
            CorpusError: the corpus folder is missing or has no articles, or the
                index was built from another corpus folder.
            IndexWriteError: the index could not be written; the old one is intact.
            ModelLoadError: the model could not be loaded.
        """
        if not self.settings.corpus.is_dir():  # an error before the lock (no index folder made)
            from bunko.ingest import list_corpus

            list_corpus(self.settings.corpus)  # raises CorpusError, naming the problem
        with self.store.lock(wait=wait):
            return self._index_locked(rebuild, optimize)

    def _index_locked(self, rebuild: bool = False, optimize: bool = False) -> IndexReport:
        """:meth:`index` with the writer lock already held."""
        from bunko import pipeline
        from bunko.corpus.leftovers import clean_leftovers

        clean_leftovers(self.settings.corpus, self.settings.index)
        if not rebuild:
            self._check_live_corpus()
        return pipeline.run(
            self.settings, self.store, rebuild, self.tokenizer, self.progress, optimize
        )

    # -- query ---------------------------------------------------------------

    def query(
        self,
        question: str | QueryRequest,
        k: int = 5,
        mode: Mode = "hybrid",
        explain: bool = False,
        *,
        sources: Sequence[str] | None = None,
        min_confidence: float | None = None,
        update: bool = True,
    ) -> QueryResult:
        """Answer a question with the ``k`` most relevant cited passages.

        Takes a :class:`~bunko.retrieval.query.QueryRequest`, or builds one from the
        other arguments (see it for their meaning and limits). Builds the index first
        when there is none yet, and (unless ``update`` is False) brings it up to date
        when corpus files were added, changed or removed since the last update; then
        the request runs down :class:`~bunko.retrieval.query.Retriever`.

        Raises:
            UsageError: a bad request (see ``QueryRequest``), or a question longer
                than the model's window.
            CorpusError: the corpus folder is missing, or the index belongs to another.
            SourceError: a ``sources`` glob points outside the corpus;
                SourceNotFoundError when it matches no indexed article.
            ModelMismatchError: the index was built with another model.
            IndexCorruptError: an index file is damaged.
        """
        if isinstance(question, QueryRequest):
            request = question
        else:
            request = QueryRequest(
                question, k=k, mode=mode, sources=tuple(sources or ()),
                min_confidence=min_confidence, explain=explain, update=update,
            )  # fmt: skip
        if self.store.current() is None:
            log.warning("no index yet in %s: building it first", self.settings.index)
            self.index()
        elif request.update:
            self._refresh()
        else:
            self._check_corpus(self.loaded())
        return self.retriever().answer(request)

    def retriever(self) -> Retriever:
        """The query pipeline over the live index (one per snapshot, reused)."""
        loaded = self.loaded()
        if self._retriever is None or self._retriever.snapshot is not loaded:
            embedder = embedder_for(
                loaded, self.settings.index, self.settings.model, self.settings.engine
            )
            self._retriever = Retriever(loaded, embedder, self.tokenizer, self.settings.corpus)
        return self._retriever

    def _check_corpus(self, loaded: Snapshot) -> None:
        from bunko.freshness import check_corpus

        check_corpus(self.settings.corpus, self.settings.index, loaded.meta)

    def _check_live_corpus(self) -> None:
        """Refuse to update an index built from another corpus folder (a missing,
        damaged or old-format index is the pipeline's to rebuild)."""
        from bunko.errors import IndexCorruptError

        try:
            live = self.store.load()
        except (IndexMissingError, IndexCorruptError):
            return
        try:
            self._check_corpus(live)
        finally:
            if live is not self._loaded:
                live.close()

    def _refresh(self) -> None:
        """Index what changed in the corpus since the last update, saying so on stderr.

        A read-only or locked index is not an error here: the query answers from
        what the index holds, with a warning.
        """
        from bunko.corpus.changes import skip_memory
        from bunko.errors import IndexLockedError, IndexWriteError
        from bunko.freshness import corpus_changes

        loaded = self.loaded()
        self._check_corpus(loaded)
        changes = corpus_changes(
            self.settings.corpus, loaded.documents(), skipped=skip_memory(loaded.meta)
        )
        if not changes:
            return
        log.warning("the corpus changed since the last update: %s; updating the index",
                    changes.summary())  # fmt: skip
        try:
            self.index(wait=False)
        except IndexLockedError:
            log.warning("another bunko process is updating %s; answering from the index as it "
                        "is", self.settings.index)  # fmt: skip
        except IndexWriteError as exc:
            log.warning("could not update the index (%s); answering from the index as it is", exc)

    # -- add, status, eval ---------------------------------------------------

    def add(self, files: Sequence[str | Path], force: bool = False) -> AddReport:
        """Copy articles (files, or folders recursively) into the corpus, then update the index.

        Each file is first read the way indexing reads it; a named file that could
        not be indexed refuses the whole add, and nothing is copied. A named file
        lands as a plain name at the top of the corpus; a folder keeps its name and
        sub-folders under the corpus, and its unreadable files are skipped with the
        reason (see :mod:`bunko.shelfops`). Nothing is ever written outside the corpus.

        Raises:
            AddError: a file is missing, not a supported kind, cannot be indexed,
                or would overwrite a different article of the same name without
                ``force``.
        """
        corpus = self.settings.corpus
        if not corpus.is_dir():
            from bunko.config import init_shelf

            if not corpus.parent.joinpath(SHELF_FILE).is_file():
                raise CorpusError(
                    f"the corpus folder {corpus} does not exist; run `bunko init "
                    f"{corpus.parent}` to make a shelf there, or create the folder"
                ).with_cli_hint(self._where_hint())
            init_shelf(corpus.parent)  # a shelf marked by bunko.toml gets its corpus/ here
        from bunko import shelfops

        # Checked and placed under the writer lock, so two adds of one name cannot both
        # pass the check; and placed without replacing, so nothing else can lose one.
        with self.store.lock():
            plan = shelfops.plan_add(files, corpus, force=force)
            shelfops.copy_into(plan, corpus, replace=force)
            report = self._index_locked()
        copied = tuple(rel for _, rel in plan.copy)
        return AddReport(copied, plan.identical, report, plan.skipped)

    def remove(self, sources: Sequence[str]) -> RemoveReport:
        """Delete articles from the corpus, then update the index.

        Args:
            sources: corpus-relative names or globs (``2024/*``); a plain folder
                name selects everything under it.

        Raises:
            SourceError: a name points outside the corpus or matches nothing, or
                every article would go. Nothing is deleted then.
        """
        corpus = self.settings.corpus
        from bunko import shelfops

        plan = shelfops.plan_remove(sources, corpus)
        removed = shelfops.delete(plan, corpus)
        return RemoveReport(tuple(removed), self.index())

    def show(self, target: str) -> ShowResult:
        """An article's text with citation line numbers: ``SOURCE`` or ``SOURCE:START[-END]``.

        Raises:
            SourceError: no such article, or the name points outside the corpus.
            SkipFile: the article cannot be read.
        """
        from bunko import shelfops

        return shelfops.show(target, self.settings.corpus)

    def _where_hint(self) -> str:
        return f"{self.settings.found}; pass --corpus DIR, set BUNKO_HOME, or run inside a shelf"

    def status(self, read_new: bool = True) -> StatusReport:
        """What the index holds, and which corpus files it has not caught up with
        (``read_new``: see :func:`bunko.corpus.changes.status_report`)."""
        from bunko.corpus.changes import status_report

        loaded = self.loaded() if self.store.current() is not None else None
        return status_report(self.settings.corpus, self.settings.index, loaded, read_new)

    def evaluate(self, path: str | Path, k: int = 10, mode: Mode = "hybrid") -> EvalReport:
        """hit@1/3/5/10 and MRR@10 per language on a JSONL file of questions with
        evidence, without updating the index (see :mod:`bunko.retrieval.evaluation`).

        Raises:
            EvalError: the file is missing or a line is malformed.
        """
        from bunko.retrieval.evaluation import evaluate

        return evaluate(self.query, path, self.loaded().model, k, mode, self.progress)


# -- one-shot conveniences -----------------------------------------------------


def index(
    settings: Settings | None = None, rebuild: bool = False, optimize: bool = False
) -> IndexReport:
    """Build or update the index for ``settings`` (see :meth:`Shelf.index`)."""
    return Shelf(settings).index(rebuild=rebuild, optimize=optimize)


def query(
    question: str, settings: Settings | None = None, k: int = 5, mode: Mode = "hybrid"
) -> QueryResult:
    """Answer one question (see :meth:`Shelf.query`)."""
    return Shelf(settings).query(question, k=k, mode=mode)


def add(
    files: Sequence[str | Path], settings: Settings | None = None, force: bool = False
) -> AddReport:
    """Copy articles into the corpus and update the index (see :meth:`Shelf.add`)."""
    return Shelf(settings).add(files, force=force)


def evaluate(
    path: str | Path, settings: Settings | None = None, k: int = 10, mode: Mode = "hybrid"
) -> EvalReport:
    """Evaluate retrieval on a JSONL file (see :meth:`Shelf.evaluate`)."""
    return Shelf(settings).evaluate(path, k=k, mode=mode)
