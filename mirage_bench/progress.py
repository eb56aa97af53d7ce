"""Progress of long steps, shown in one place: rich bars on a terminal, plain timed lines everywhere else.

Library steps that can take more than a few seconds take a ``progress`` callable (:data:`Progress`):
``progress(description, total)`` starts a task of ``total`` units and returns ``advance(n)``. The library never
prints progress itself: a command opens :func:`progress_bars` around its work and passes what it yields, and code
that shows nothing passes :func:`no_progress`.

Why plain lines: a console that is not a terminal (a pipe, a log file, a cluster job) shows a rich bar only when it
ends, so such a console gets one line per unfinished task every ``interval`` seconds (done/total, rate, ETA) from a
heartbeat thread, which also covers a step that advances rarely, and one final line per task; lines a log keeps.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from mirage_bench.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

Advance = Callable[[int], None]  # advance(n): n more units of the task are done
Progress = Callable[[str, int], Advance]  # (description, total) -> advance
Clock = Callable[[], float]

#: Environment variable that sets the seconds between plain progress lines.
INTERVAL_ENV = "MIRAGE_BENCH_PROGRESS_INTERVAL"
#: Seconds between plain progress lines: half the 10 s within which a log must show that a step is alive.
DEFAULT_INTERVAL = 5.0


def _ignore(n: int) -> None:
    return None


def no_progress(description: str, total: int) -> Advance:
    """A :data:`Progress` that shows nothing (the default of every library function that takes one)."""
    return _ignore


@contextlib.contextmanager
def step(progress: Progress, description: str) -> Iterator[None]:
    """One task of one unit around a block that cannot count its work (a layout's walk, building a table): its
    lines still show that the block is alive and how long it took."""
    advance = progress(description, 1)
    yield
    advance(1)


def configured_interval() -> float:
    """Seconds between plain lines: ``$MIRAGE_BENCH_PROGRESS_INTERVAL`` if set, else :data:`DEFAULT_INTERVAL`."""
    text = os.environ.get(INTERVAL_ENV)
    if text is None:
        return DEFAULT_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{INTERVAL_ENV}={text!r} is not a number of seconds > 0; set it to e.g. 10, or unset it "
                          f"for the default ({DEFAULT_INTERVAL:g} s)")
    return seconds


@dataclass
class _Task:
    description: str
    total: int
    started: float
    due: float  # when its next line is due
    done: int = 0
    finished: bool = False


class Lines:
    """A :data:`Progress` that writes plain lines: one per unfinished task each ``interval`` seconds (when
    :meth:`tick` runs at or after its time; :func:`progress_bars` runs it from a thread) and a final one per task.

    ``clock`` is injected so that tests drive it without sleeping. Tasks may be advanced from any thread."""

    def __init__(self, write: Callable[[str], None], interval: float = DEFAULT_INTERVAL, clock: Clock = time.monotonic):
        if not interval > 0:
            raise ConfigError(f"progress interval must be > 0 seconds, got {interval}")
        self._write, self._interval, self._clock = write, interval, clock
        self._tasks: list[_Task] = []  # the open ones
        self._lock = threading.Lock()

    def __call__(self, description: str, total: int) -> Advance:
        now = self._clock()
        task = _Task(description, total, now, now + self._interval, finished=total == 0)  # nothing to do: no line
        with self._lock:
            if not task.finished:
                self._tasks.append(task)

        def advance(n: int) -> None:
            with self._lock:
                task.done += n
                if task.done >= task.total and not task.finished:
                    self._finish(task, self._clock())

        return advance

    def tick(self) -> None:
        """Write a line for each unfinished task whose line is due (missed times are skipped, not caught up)."""
        with self._lock:
            now = self._clock()
            for task in self._tasks:
                if now >= task.due:
                    self._write(_running_line(task, now))
                    task.due += self._interval * (1 + (now - task.due) // self._interval)

    def next_due(self) -> float | None:
        """When the earliest line of an unfinished task is due (by ``clock``), or None when none is running."""
        with self._lock:
            return min((t.due for t in self._tasks), default=None)

    def close(self) -> None:
        """The final line of every task still open (stopped early, by an error or a caller that over-counted)."""
        with self._lock:
            now = self._clock()
            for task in list(self._tasks):
                self._finish(task, now)

    def _finish(self, task: _Task, now: float) -> None:
        """Its final line; it leaves the open tasks (a long run starts thousands)."""
        task.finished = True
        self._tasks.remove(task)
        self._write(_final_line(task, now))


def _running_line(task: _Task, now: float) -> str:
    elapsed = now - task.started
    if task.total == 1:  # a step: only its time says anything
        return f"{task.description}: running for {_clock_time(elapsed)}"
    rate = task.done / elapsed if elapsed > 0 else 0.0
    eta = _clock_time((task.total - task.done) / rate) if rate > 0 else "unknown"
    share = 100 * task.done / task.total
    return (f"{task.description}: {task.done:,}/{task.total:,} ({share:.0f}%) after {_clock_time(elapsed)}, "
            f"{_rate(rate)}, ETA {eta}")


def _final_line(task: _Task, now: float) -> str:
    elapsed = now - task.started
    if task.total == 1:
        return f"{task.description}: {'done' if task.done else 'stopped'} in {_clock_time(elapsed)}"
    rate = _rate(task.done / elapsed) if elapsed > 0 else "instant"
    verb = "done" if task.done >= task.total else "stopped at"
    return f"{task.description}: {verb} {task.done:,}/{task.total:,} in {_clock_time(elapsed)} ({rate})"


def _rate(per_second: float) -> str:
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    if per_second >= 0.1:
        return f"{per_second:.2f}/s"
    return f"{1 / per_second:,.1f} s each" if per_second > 0 else "none done yet"


def _clock_time(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@contextlib.contextmanager
def progress_bars(console: "Console", interval: float | None = None, clock: Clock = time.monotonic) -> Iterator[Progress]:
    """Yield the :data:`Progress` for ``console``: rich bars on a terminal (or notebook), else :class:`Lines`
    written to it every ``interval`` seconds (default :func:`configured_interval`) until the block ends."""
    if console.is_terminal or console.is_jupyter:
        with _bars(console) as start:
            yield start
        return
    lines = Lines(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
                  configured_interval() if interval is None else interval, clock)
    stop = threading.Event()
    heartbeat = threading.Thread(target=_beat, args=(lines, stop, clock), name="mirage-bench-progress", daemon=True)
    heartbeat.start()
    try:
        yield lines
    finally:
        stop.set()
        heartbeat.join()
        lines.close()


def _beat(lines: Lines, stop: threading.Event, clock: Clock) -> None:
    """Tick ``lines`` at each due time until ``stop``; waits a second at most so that new tasks are seen."""
    while True:
        due = lines.next_due()
        if stop.wait(1.0 if due is None else min(1.0, max(0.0, due - clock()))):
            return
        lines.tick()


@contextlib.contextmanager
def _bars(console: "Console") -> Iterator[Progress]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress as RichProgress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with RichProgress(*columns, console=console) as bar:
        def start(description: str, total: int) -> Advance:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield start
