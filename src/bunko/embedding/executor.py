"""Where passages are embedded: in this process, or by actors on a Ray cluster.

:func:`bunko.embedding.cache.vectors_for` hands the texts that need embedding
(vectors of unchanged chunks are reused by hash before this point, and never
leave the writer's process) to an executor, which returns their vectors in order.
The one writer then commits them as for a local run: the same lock, generation
swap and crash safety, because nothing here touches the index.

The Ray executor starts ``workers`` actors that each build their embedder once,
in their own process, from a zero-argument factory (a picklable
``functools.partial(get_embedder, model)``), never from a pickled model. Batches
of passages, sorted by length so that each is evenly sized, go to whichever actor
is free (at most two in flight each, so an actor never waits for its next batch).
An actor that dies is restarted by Ray and its unfinished batches are retried
(``max_restarts``/``max_task_retries``); when the retries run out the run fails
with :class:`~bunko.errors.ClusterError` and the previous index is left as it was.

Plain actors, not Ray Data ``map_batches``: the work is a list of strings in and
one float32 matrix out, in order, to a single process. Ray Data would add pyarrow
blocks, a streaming scheduler that reserves resources for its own operators, and
its own retry policy, to do what about 60 lines do here; the actor pool keeps the
ordering, the retry count and the error message under bunko's control.

``ray`` is imported only when an executor for ``--ray`` embeds something.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bunko.errors import ClusterError
from bunko.types import EmbeddingReport

if TYPE_CHECKING:
    from bunko.config import RaySettings
    from bunko.embedding.base import Embedder, Vectors

log = logging.getLogger("bunko")

EmbedderFactory = Callable[[], "Embedder"]

# Seconds to wait for every actor to start and load its model. Actors that ask
# for resources the cluster does not have would otherwise wait forever.
READY_TIMEOUT_S = 600.0
# Batches queued on one actor at a time: one running, one waiting.
IN_FLIGHT_PER_WORKER = 2


class Executor(Protocol):
    """Embeds passages somewhere and says how it went."""

    kind: Literal["local", "ray"]

    def embed_passages(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        tokens: int = 0,
    ) -> Vectors:
        """Vectors of ``texts`` in order (``tokens``: how many tokens they hold, for the report)."""
        ...

    def report(self) -> EmbeddingReport:
        """Workers used and throughput so far."""
        ...

    def close(self) -> None:
        """Release workers (and a Ray started for this run)."""
        ...


class LocalExecutor:
    """The embedder of this process, with all its threads."""

    kind: Literal["local", "ray"] = "local"

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._tokens = 0
        self._seconds = 0.0
        self._used = False

    def embed_passages(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        tokens: int = 0,
    ) -> Vectors:
        t0 = time.perf_counter()
        vecs = self._embedder.embed_passages(texts, progress=progress)
        self._seconds += time.perf_counter() - t0
        self._tokens += tokens
        self._used = self._used or bool(texts)
        return vecs

    def report(self) -> EmbeddingReport:
        return EmbeddingReport(
            executor="local",
            workers=1 if self._used else 0,
            tokens=self._tokens,
            seconds=self._seconds,
        )

    def close(self) -> None:
        pass


def make_executor(
    ray: RaySettings | None, embedder: Embedder, factory: EmbedderFactory
) -> Executor:
    """The executor the settings ask for; Ray is neither imported nor started here."""
    if ray is None:
        return LocalExecutor(embedder)
    # Every actor embeds with the onnx candidate this process chose (issue 24), so one
    # index never mixes the vectors of two candidates (cosine 0.995 apart, not equal).
    choice = getattr(embedder, "choice", None) if hasattr(embedder, "measured_choice") else None
    variant = str(choice["chosen"]) if isinstance(choice, dict) else None
    return RayExecutor(ray, factory, variant)


class RayExecutor:
    """Embeds on Ray actors; connects (or starts a local Ray) on first use."""

    kind: Literal["local", "ray"] = "ray"

    def __init__(
        self, settings: RaySettings, factory: EmbedderFactory, variant: str | None = None
    ) -> None:
        self.settings = settings
        self._factory = factory
        self._variant = variant
        self._ray: Any = None
        self._owns_ray = False
        self._stdout: contextlib.ExitStack | None = None
        self._actors: list[Any] = []
        self._tokens = 0
        self._seconds = 0.0
        self._startup = 0.0

    # -- connection and actors ---------------------------------------------------

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError as exc:
            raise ClusterError(
                "embedding on Ray needs the ray package: pip install 'bunko[ray]'"
            ) from exc
        # Ray's driver prints the cluster's error messages ("(raylet) A worker died
        # ...") on stdout, which is for results (`--json`): send them to stderr
        # while this executor is connected.
        self._stdout = contextlib.ExitStack()
        self._stdout.enter_context(contextlib.redirect_stdout(sys.stderr))
        if not ray.is_initialized():  # else: the caller's own Ray connection is used
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.ERROR,
                "log_to_driver": False,
            }
            address = self.settings.address
            try:
                if address in ("auto", "local"):
                    # A private Ray for this run, on loopback only, stopped at the end.
                    ray.init(
                        address="local",
                        num_cpus=self.settings.cpus or _cpu_count(),
                        _node_ip_address="127.0.0.1",
                        **options,
                    )
                else:
                    _check_reachable(address)
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
                if address in ("auto", "local"):
                    raise ClusterError(f"could not start a local Ray: {_first_line(exc)}") from exc
                auth = ""
                if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                    # Ray >= 2.5x clusters ask for a token, and Ray sends it to an
                    # explicit address only when told to.
                    auth = (
                        "; if the cluster uses token authentication, set RAY_AUTH_MODE=token "
                        "and give this machine the cluster's token (~/.ray/auth_token or "
                        "RAY_AUTH_TOKEN)"
                    )
                raise ClusterError(
                    f"could not join the Ray cluster at {address}: {_first_line(exc)}. Check "
                    "the address that `ray start --head` printed (and that this machine can "
                    f"reach it){auth}, or use --ray auto for a local Ray"
                ) from exc
            self._owns_ray = True
        self._ray = ray
        return ray

    def _worker_count(self, ray: Any, n_batches: int) -> int:
        s = self.settings
        resources = ray.cluster_resources()
        cpus = float(resources.get("CPU", 0))
        gpus = float(resources.get("GPU", 0))
        if s.gpus > 0 and gpus < s.gpus:
            raise ClusterError(
                f"each Ray worker asks for {s.gpus:g} GPU(s) but the cluster has {gpus:g}; "
                "drop --ray-gpus or join a cluster with GPUs"
            )
        if cpus < s.cpus_per_worker:
            raise ClusterError(
                f"each Ray worker asks for {s.cpus_per_worker} CPU(s) but the cluster has {cpus:g}"
            )
        n = s.workers
        if n is None:
            n = max(1, int(cpus // s.cpus_per_worker))
            if s.gpus > 0:
                n = max(1, min(n, int(gpus // s.gpus)))
        return max(1, min(n, n_batches))

    def _start_actors(self, ray: Any, n: int) -> list[Any]:
        s = self.settings
        remote = ray.remote(EmbedWorker).options(
            num_cpus=s.cpus_per_worker,
            num_gpus=s.gpus,
            max_restarts=s.retries,
            max_task_retries=s.retries,
        )
        device = "cuda" if s.gpus > 0 else None
        from bunko.config import ray_fault

        fault = ray_fault()
        actors = [
            remote.remote(self._factory, s.cpus_per_worker, device, fault, self._variant)
            for _ in range(n)
        ]
        self._actors = actors
        try:
            ray.get([a.ready.remote() for a in actors], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            raise ClusterError(
                f"the {n} Ray worker(s) did not start within {READY_TIMEOUT_S:.0f} s: "
                f"does the cluster have {s.cpus_per_worker} free CPU(s)"
                + (f" and {s.gpus:g} GPU(s)" if s.gpus else "")
                + " for each, and bunko installed on every node?"
            ) from exc
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a Ray worker could not load the model: {_cause(exc)}") from exc
        return actors

    # -- embedding -------------------------------------------------------------

    def embed_passages(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        tokens: int = 0,
    ) -> Vectors:
        import numpy as np

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        t0 = time.perf_counter()
        ray = self._connect()
        # Sorted by length, so that the passages of one batch are of about one size.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = max(1, self.settings.batch)
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        actors = self._actors or self._start_actors(ray, self._worker_count(ray, len(batches)))
        t1 = time.perf_counter()
        self._startup += t1 - t0

        out: Any = None
        queue = deque(range(len(batches)))
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (batch, actor)
        busy = [0] * len(actors)
        done = 0
        while queue or running:
            for a in range(len(actors)):
                while queue and busy[a] < IN_FLIGHT_PER_WORKER:
                    b = queue.popleft()
                    ref = actors[a].embed.remote([texts[i] for i in batches[b]])
                    running[ref] = (b, a)
                    busy[a] += 1
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                b, a = running.pop(ref)
                busy[a] -= 1
                vecs = self._result(ray, ref)
                if out is None:
                    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                out[batches[b]] = vecs
                done += len(batches[b])
                if progress is not None:
                    progress(done)
        self._seconds += time.perf_counter() - t1
        self._tokens += tokens
        return out  # type: ignore[no-any-return]

    def _result(self, ray: Any, ref: Any) -> Any:
        import numpy as np

        try:
            return np.asarray(ray.get(ref), dtype=np.float32)
        except ray.exceptions.RayTaskError as exc:
            raise ClusterError(f"a Ray worker failed while embedding: {_cause(exc)}") from exc
        except ray.exceptions.RayError as exc:
            log.info("Ray: %s", exc)
            retries = self.settings.retries
            raise ClusterError(
                "a Ray worker died while embedding"
                + (f" and was restarted {retries} time(s)" if retries else "")
                + f" ({type(exc).__name__}); the index is unchanged. Check the workers' "
                "memory and logs (ray logs), or raise BUNKO_RAY_RETRIES"
            ) from exc

    def report(self) -> EmbeddingReport:
        return EmbeddingReport(
            executor="ray",
            workers=len(self._actors),
            tokens=self._tokens,
            seconds=self._seconds,
            startup_s=self._startup,
        )

    def close(self) -> None:
        ray, self._ray = self._ray, None
        try:
            if ray is not None and self._owns_ray:
                ray.shutdown()  # stops the actors with it, without a word per task
            elif ray is not None:  # the caller's own Ray: end only our actors
                for actor in self._actors:
                    try:
                        ray.kill(actor)
                    except ray.exceptions.RayError as exc:  # already gone
                        log.debug("Ray: %s", exc)
        finally:
            if self._stdout is not None:
                self._stdout.close()
                self._stdout = None


class EmbedWorker:
    """The body of a Ray actor: one embedder, built once in the actor's process.

    ``threads`` becomes BUNKO_THREADS (the embedder's batch threads) before the
    embedder is built, so that actors sharing a node do not oversubscribe it;
    ``device`` becomes BUNKO_DEVICE (sentence-transformers models run there).
    ``fault`` is a test hook (BUNKO_RAY_FAULT, see :func:`_maybe_die`).
    """

    def __init__(
        self,
        factory: EmbedderFactory,
        threads: int,
        device: str | None,
        fault: str | None,
        variant: str | None = None,
    ) -> None:
        os.environ["BUNKO_THREADS"] = str(max(1, threads))
        if device:
            os.environ["BUNKO_DEVICE"] = device
        if variant:  # the driver's onnx candidate (see make_executor)
            os.environ["BUNKO_ONNX_VARIANT"] = variant
        self._embedder = factory()
        self._fault = fault
        self._batches = 0

    def ready(self) -> int:
        return os.getpid()

    def embed(self, texts: list[str]) -> Vectors:
        self._batches += 1
        _maybe_die(self._fault, self._batches)
        return self._embedder.embed_passages(texts)


def _maybe_die(fault: str | None, batch: int) -> None:
    """Test hook: BUNKO_RAY_FAULT=N[:MARKER] kills the actor process on its Nth batch.

    With MARKER (a file path), only the first actor to get there dies, once per run:
    it creates the file first, and an actor that finds it goes on.
    """
    if not fault:
        return
    nth, _, marker = fault.partition(":")
    if not nth.isdigit() or batch != int(nth):
        return
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os._exit(1)


# Seconds to wait for a TCP connection to a cluster's address before giving up.
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """Fail fast on an address nothing listens on (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port; Ray will say what it makes of it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port} ({exc.strerror or exc})") from exc


def _cause(exc: BaseException) -> str:
    """The error raised inside the worker (Ray wraps it), without Ray's traceback."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    return _first_line(cause if isinstance(cause, BaseException) else exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
