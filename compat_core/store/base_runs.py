"""The runs of threads in `Store`, and their steps."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence

from compat_core.store.base_types import Lease, Page, PageQuery, VectorStoreWrites
from compat_core.v1 import messages_pb2, runs_pb2, threads_pb2


class Runs(ABC):
    """Runs and run steps."""

    @abstractmethod
    async def create_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
        lease: Lease | None = None,
        reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
        vector_stores: VectorStoreWrites | None = None,
        active_runs_limit: int = 0,
    ) -> bool:
        """Start a run, in one transaction.

        With an `active_runs_limit` (0: none), first counts the active runs of the current
        project (queued, in progress, requires action, cancelling) and raises
        ActiveRunsLimited if it has as many already; creations of one project so pass this
        count one after the other, across every core sharing the database.
        Inserts `thread` first when given (create-thread-and-run, its first messages are in
        `messages`), with `vector_stores` as `create_thread` writes them; then checks the run's
        thread exists (False if not) and has no active run (raises ThreadBusy); then, for an
        existing thread, writes `vector_stores` as `create_message` does, and inserts
        `messages` (a run's additional messages) at the end of the thread and the run, with
        `lease` (else an unowned one any core may claim).
        `reply`, a message of the run and the step that creates it, is inserted last: the reply
        of a run that starts as it is created.
        """

    @abstractmethod
    async def get_run(self, thread_id: str, run_id: str) -> runs_pb2.Run | None:
        """The run if it belongs to that thread, else None."""

    @abstractmethod
    async def find_run(self, run_id: str) -> runs_pb2.Run | None:
        """The run by ID alone, else None."""

    @abstractmethod
    async def list_runs(self, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
        """A page of a thread's runs; None if no thread."""

    @abstractmethod
    async def update_run(
        self,
        thread_id: str,
        run_id: str,
        mutate: Callable[[runs_pb2.Run], None],
        lease: Lease | None = None,
    ) -> runs_pb2.Run | None:
        """As `update_assistant`, for a run of a thread.

        If `mutate` makes an idle run execute again (tool outputs, a cancel while it waited
        for them), the run gets `lease`, else an unowned one; a held lease stays its holder's.
        """

    @abstractmethod
    async def save_progress(
        self,
        run: runs_pb2.Run | None = None,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
        guard: Callable[[runs_pb2.Run], None] | None = None,
        holder: str | None = None,
    ) -> None:
        """Insert or replace (by ID) a run, steps and messages in one transaction.

        `guard`, when given, is called with the run as stored (locked) before anything is
        written; whatever it raises aborts the whole save. It makes "end this run and its open
        step, unless the run moved meanwhile" a single atomic change. `holder`, when given,
        must hold the run's lease, else the save raises LeaseLost and writes nothing.

        The run engine calls this before it announces each transition, so what a client is
        told has always been stored. A replaced object keeps its place in its list.
        """

    @abstractmethod
    async def delete_run_output(self, step_ids: Sequence[str], message_ids: Sequence[str]) -> None:
        """Delete steps and messages a run wrote but must write again (resumption)."""

    @abstractmethod
    async def runs_with_status(
        self, statuses: Collection[int], limit: int = 1000
    ) -> list[runs_pb2.Run]:
        """Runs in any of `statuses`, oldest first (restart recovery, expiry sweeps)."""

    @abstractmethod
    async def list_steps(
        self, thread_id: str, run_id: str, query: PageQuery
    ) -> Page[runs_pb2.RunStep] | None:
        """A page of a run's steps; None if no such run in that thread."""

    @abstractmethod
    async def get_step(self, thread_id: str, run_id: str, step_id: str) -> runs_pb2.RunStep | None:
        """One step of a run of a thread, else None."""

    @abstractmethod
    async def run_steps(self, run_id: str) -> list[runs_pb2.RunStep]:
        """Every step of a run, oldest first."""

    @abstractmethod
    async def thread_messages(self, thread_id: str) -> list[messages_pb2.Message]:
        """Every message of a thread, oldest first (what the model reads)."""
