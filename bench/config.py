"""How big each section's measurements are (quick or full), and what sections share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.procs import Children

CACHE_DIR = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class Config:
    """Counts and durations. `quick` is a smoke test (< 2 min); full is the real thing."""

    quick: bool
    # Resource calls: seconds measured (after a warm-up) per load point.
    load_duration: float
    load_warmup: float
    # Ours and its baseline alternate this many times per point (the duration is split).
    load_rounds: int
    concurrencies: tuple[int, ...]
    # Streaming: tokens of the reply, and repetitions (the median is reported; on a noisy
    # 2-core machine a median of 15 moved by about 1 ms from one run to the next, as much as
    # the margin the time to first token is judged by).
    stream_tokens: int
    stream_reps: int
    # Concurrency: streams at once, tokens each, upstream pace.
    concurrent_streams: int
    concurrent_tokens: int
    pace_ms: int
    # Scale of data: messages in the big thread and in the small one.
    scale_messages: int
    scale_small: int
    scale_duration: float
    # Start-up: repetitions (the median is reported).
    startup_reps: int
    # Event log: streamed runs, and tokens each.
    event_log_runs: int
    event_log_tokens: int
    # Retrieval: files ingested (of each kind, text and PDF) and characters of text in each;
    # chunks in the store of each latency point; seconds measured per point (ours and the
    # bare query each), in this many alternating rounds (a slow query at 100,000 chunks
    # takes long enough for the machine's noise to land on one side only); queries of the
    # quality set (each with its one relevant document).
    retrieval_ingest_files: int
    retrieval_ingest_chars: int
    retrieval_store_chunks: tuple[int, ...]
    retrieval_duration: float
    retrieval_rounds: int
    retrieval_queries: int
    # Storage refresh: files, spread over this many projects.
    storage_files: int
    storage_projects: int

    @classmethod
    def full(cls) -> Config:
        return cls(
            quick=False,
            load_duration=2.5,
            load_warmup=0.3,
            load_rounds=2,
            concurrencies=(1, 16, 64),
            stream_tokens=1000,
            stream_reps=31,
            concurrent_streams=1000,
            concurrent_tokens=200,
            pace_ms=20,
            scale_messages=1_000_000,
            scale_small=100,
            scale_duration=2.5,
            startup_reps=5,
            event_log_runs=50,
            event_log_tokens=4000,
            retrieval_ingest_files=16,
            retrieval_ingest_chars=256 * 1024,
            retrieval_store_chunks=(10_000, 100_000),
            retrieval_duration=16.0,
            retrieval_rounds=4,
            retrieval_queries=2000,
            storage_files=1_000_000,
            storage_projects=1000,
        )

    @classmethod
    def quick_run(cls) -> Config:
        return cls(
            quick=True,
            load_duration=0.3,
            load_warmup=0.1,
            load_rounds=1,
            concurrencies=(1, 16, 64),
            stream_tokens=1000,
            stream_reps=2,
            concurrent_streams=100,
            concurrent_tokens=50,
            pace_ms=20,
            scale_messages=20_000,
            scale_small=100,
            scale_duration=0.3,
            startup_reps=1,
            event_log_runs=10,
            event_log_tokens=1000,
            retrieval_ingest_files=4,
            retrieval_ingest_chars=64 * 1024,
            retrieval_store_chunks=(1_000, 10_000),
            retrieval_duration=1.0,
            retrieval_rounds=1,
            retrieval_queries=200,
            storage_files=20_000,
            storage_projects=100,
        )


@dataclass(frozen=True)
class Context:
    """What a section gets: the sizes, a scratch directory, and the database to use."""

    config: Config
    work_dir: Path
    # None: a fresh SQLite file per section under `work_dir`.
    database_url: str | None = None
    cache_dir: Path = CACHE_DIR
    # Where py-spy writes the server's samples (`--profile`); None: no profiling.
    profile_dir: Path | None = None

    def database_for(self, section: str) -> str:
        """The database a section's server uses: `--database-url`, else a fresh SQLite file."""
        if self.database_url is not None:
            return self.database_url
        directory = self.work_dir / section
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{directory / 'compat.db'}"

    def children(self, label: str) -> Children:
        """The child processes of one section (`label` names its profiles)."""
        return Children(self.work_dir, self.profile_dir, label)
