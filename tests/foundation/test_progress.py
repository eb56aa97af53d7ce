"""Progress display: plain timed lines off a terminal (driven by a fake clock), rich bars on one."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mirage_bench.errors import ConfigError
from mirage_bench.progress import INTERVAL_ENV, Lines, _beat, configured_interval, no_progress, progress_bars, step


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def written() -> list[str]:
    return []


@pytest.fixture
def make_lines(clock, written):
    """Lines(interval) on the fake clock, writing into ``written``."""
    return lambda interval: Lines(written.append, interval=interval, clock=clock)


def test_a_running_task_gets_one_line_per_interval_with_done_total_rate_and_eta(clock, written, make_lines):
    lines = make_lines(10)
    advance = lines("decode", 1000)
    clock.now = 4
    advance(100)
    lines.tick()
    assert written == []  # nothing is due before one interval
    clock.now = 10
    lines.tick()
    assert written == ["decode: 100/1,000 (10%) after 0:00:10, 10/s, ETA 0:01:30"]
    lines.tick()
    assert len(written) == 1  # one line per interval, however often it ticks
    clock.now = 23  # a late tick is not caught up with several lines, and the grid stays at 10 s steps
    advance(130)
    lines.tick()
    clock.now = 29.9
    lines.tick()
    clock.now = 30
    lines.tick()
    assert written[1:] == ["decode: 230/1,000 (23%) after 0:00:23, 10/s, ETA 0:01:17",
                           "decode: 230/1,000 (23%) after 0:00:30, 7.67/s, ETA 0:01:40"]


def test_a_task_writes_its_final_line_when_done_and_nothing_after(clock, written, make_lines):
    lines = make_lines(5)
    advance = lines("index", 3)
    clock.now = 2
    advance(1)
    advance(2)
    assert written == ["index: done 3/3 in 0:00:02 (1.50/s)"]
    clock.now = 60
    lines.tick()
    lines.close()
    assert len(written) == 1


def test_close_ends_open_tasks_saying_where_they_stopped(clock, written, make_lines):
    lines = make_lines(5)
    lines("train", 10)(4)
    lines("nothing to score", 0)
    clock.now = 120
    lines.close()
    assert written == ["train: stopped at 4/10 in 0:02:00 (30.0 s each)"]


def test_the_heartbeat_writes_lines_while_nothing_advances(clock, written, make_lines):
    """A step whose first item takes minutes still shows it is alive, every interval."""
    lines = make_lines(10)
    lines("load model", 1)

    class Stop:  # waits by moving the fake clock; stops after 35 s
        def wait(self, timeout: float) -> bool:
            clock.now += timeout
            return clock.now > 35

    _beat(lines, Stop(), clock)
    assert written == [f"load model: running for 0:00:{s}" for s in (10, 20, 30)]


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert configured_interval() == 5.0
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert configured_interval() == 2.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(ConfigError, match=INTERVAL_ENV):
            configured_interval()


def test_off_a_terminal_the_lines_go_to_the_console_and_end_with_the_block_even_on_error(clock):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with pytest.raises(RuntimeError), progress_bars(console, interval=1000, clock=clock) as progress:
        progress("scan", 4)(4)
        progress("decode", 10)(3)
        raise RuntimeError("a failing step")
    assert out.getvalue().splitlines() == ["scan: done 4/4 in 0:00:00 (instant)", "decode: stopped at 3/10 in 0:00:00 (instant)"]


def test_on_a_terminal_progress_is_a_rich_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress_bars(console) as progress:
        progress("decode", 10)(10)
    text = out.getvalue()
    assert "decode" in text and "10/10" in text and "done" not in text


def test_no_progress_shows_nothing(capsys):
    no_progress("anything", 5)(5)
    assert capsys.readouterr() == ("", "")


def test_a_step_that_cannot_count_says_how_long_it_runs_and_took(clock, written, make_lines):
    lines = make_lines(5)
    with step(lines, "list the files"):
        clock.now = 6
        lines.tick()
        clock.now = 7
    assert written == ["list the files: running for 0:00:06", "list the files: done in 0:00:07"]
    with pytest.raises(OSError), step(lines, "walk a broken disk"):
        raise OSError("gone")
    lines.close()
    assert written[2:] == ["walk a broken disk: stopped in 0:00:00"]


def test_subset_metrics_counts_the_subsets_it_has_done():
    import numpy as np
    import pandas as pd

    from mirage_bench.metrics import SUBSET_KEYS, subset_metrics

    rng = np.random.default_rng(0)
    rows = [{**{k: "x" for k in SUBSET_KEYS}, "seed": 0, "generator": g, "image_id": f"{g}{i}", "label": i % 2,
             "p_fake": rng.random(), "threshold": 0.5} for g in ("a", "b", "c") for i in range(8)]
    tasks: list[tuple[str, int, list[int]]] = []

    def progress(description: str, total: int):
        tasks.append((description, total, []))
        return tasks[-1][2].append

    table = subset_metrics(pd.DataFrame(rows), ["auroc"], n_boot=10, progress=progress)
    assert len(table) == 3
    assert tasks == [("metrics of 3 subsets, 10 bootstrap resamples each", 3, [1, 1, 1])]
