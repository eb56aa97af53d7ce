"""A weights download shows its progress in MiB of the size the server announces, or as one step without one."""

from __future__ import annotations

import io
from email.message import Message
from pathlib import Path

import pytest

from mirage_bench.zoo import fetch


class Response(io.BytesIO):
    """An HTTP response that returns at most ``piece`` bytes a read, as a socket may."""

    def __init__(self, data: bytes, announce: bool, piece: int) -> None:
        super().__init__(data)
        self.headers = Message()
        if announce:
            self.headers["Content-Length"] = str(len(data))
        self.piece = piece

    def read(self, size: int = -1) -> bytes:
        return super().read(min(size, self.piece))


@pytest.mark.parametrize("announce, shown", [(True, [("get w.pth (MiB)", 3, 3)]), (False, [("get w.pth", 1, 1)])])
def test_a_download_counts_whole_mib_then_the_last_partial_one(tmp_path: Path, monkeypatch, announce, shown) -> None:
    data = bytes(range(256)) * (10 * 1024)  # 2.5 MiB
    monkeypatch.setattr(fetch, "urlopen", lambda request: Response(data, announce, piece=300_000))
    tasks: list[tuple[str, int, list[int]]] = []

    def progress(description: str, total: int):
        tasks.append((description, total, []))
        return tasks[-1][2].append

    fetch._stream("https://example.org/w.pth", tmp_path / "w.pth", progress, "get w.pth")
    assert (tmp_path / "w.pth").read_bytes() == data
    assert [(d, t, sum(a)) for d, t, a in tasks] == shown
    assert all(n >= 0 for _, _, advances in tasks for n in advances)
