"""Putting a published file on this machine the ecosystem's way, and refusing any file that is not the one named.

https sources are streamed as ``torch.hub.download_url_to_file`` streams them (with :mod:`mirage_bench.progress`
instead of its tqdm bar, which a log file does not keep) into ``torch.hub.get_dir()/checkpoints/mirage-bench/CARD/``
(``TORCH_HOME`` moves it); ``hf-hub:ORG/REPO/PATH`` sources through ``huggingface_hub`` into its cache (``HF_HOME``;
resumable). A download lands in a temporary file beside its final name and is renamed only after its sha256
matched the card, so no load ever reads an unverified or half-written file. A file copied there by
hand (an offline cluster) is used once its sha256 matches.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple
from urllib.request import Request, urlopen

from mirage_bench.detectors.infra.checkpoint import sha256_file
from mirage_bench.errors import WeightsError
from mirage_bench.progress import Progress, no_progress, step
from mirage_bench.store import say
from mirage_bench.zoo.card import PublishedCard

HF_PREFIX = "hf-hub:"
MIB = 1 << 20


class LocalFile(NamedTuple):
    """A published file on this machine, with the sha256 it was verified by."""

    path: Path
    sha256: str


def cache_path(card: PublishedCard) -> Path:
    """Where the card's file is kept: the torch hub cache for URLs, the Hugging Face cache for ``hf-hub:``."""
    if card.weights.url.startswith(HF_PREFIX):
        repo_id, filename = _hf_parts(card.weights.url)
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE

        cached = try_to_load_from_cache(repo_id, filename)
        return Path(cached) if isinstance(cached, str) else Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / "mirage-bench" / card.name / card.weights.filename


def resolve(card: PublishedCard, path: str | Path | None = None, offline: bool = False,
            progress: Progress = no_progress) -> LocalFile:
    """The verified local file of ``card``: ``path`` if given, else the cache, downloaded there when online
    (``progress`` shows an https download in MiB)."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file {path} for published card {card.name!r} does not exist")
        return verified(card, path)
    target = cache_path(card)
    if target.is_file():  # a Hugging Face cache folder (not yet holding the file) is not a file
        return verified(card, target)
    if offline or card.weights.manual:
        raise WeightsError(missing_message(card, target, "--offline was given" if offline else "it is downloaded by hand"))
    return _download(card, target, progress)


def missing_message(card: PublishedCard, target: Path, why: str) -> str:
    """The one message for a file that is not here: the URL, the expected sha256 and the exact path to put it at."""
    w = card.weights
    check = (f"check that its sha256 is {w.sha256}" if w.sha256
             else "note its sha256 (the card pins none yet: compare it with a trusted copy)")
    how = f"download {w.url}" + (f" ({w.note})" if w.manual and w.note else "")
    where = (f"copy the Hugging Face cache folder {target} from a machine that fetched it" if w.url.startswith(HF_PREFIX)
             else f"put it at {target}")
    return (f"published weights of {card.name!r} are not on this machine and {why}: {how}, {check}, and {where} "
            f"(`mirage-bench reproduce` also takes the file as --weights PATH). `mirage-bench weights fetch {card.name}` "
            "does this on a machine with the internet.")


def verified(card: PublishedCard, path: Path) -> LocalFile:
    """``path`` after its sha256 matched the card (or, for an unpinned card, after saying its sha256)."""
    digest = sha256_file(path)
    expected = card.weights.sha256
    if expected is None:
        say(f"note: {card.name} is unpinned; {path} has sha256 {digest}: check it against a trusted copy before "
            "trusting its numbers")
    elif digest != expected:
        raise WeightsError(
            f"weights file {path} has sha256 {digest}, but published card {card.name!r} expects {expected}: it is "
            f"another or a damaged file, and is refused. Replace it with the file from {card.weights.url}."
        )
    return LocalFile(path, digest)


def _download(card: PublishedCard, target: Path, progress: Progress) -> LocalFile:
    if card.weights.url.startswith(HF_PREFIX):
        return verified(card, _hf_download(card, target))
    from mirage_bench.store import replace_file

    def fetch_and_check(tmp: Path) -> None:
        try:
            _stream(card.weights.url, tmp, progress, f"download {card.name}: {card.weights.filename}")
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise WeightsError(missing_message(card, target, f"the download failed ({exc})")) from exc
        found.append(verified(card, tmp).sha256)  # before the rename: a wrong file never takes the cache's name

    found: list[str] = []
    replace_file(target, fetch_and_check)
    return LocalFile(target, found[0])


def _stream(url: str, dst: Path, progress: Progress, description: str) -> None:
    """``url`` into ``dst`` a MiB at a time, one unit of ``progress`` each, of the size the server announces."""
    with urlopen(Request(url, headers={"User-Agent": "mirage-bench"})) as response, open(dst, "wb") as out:
        announced = int(response.headers.get("Content-Length") or 0)
        if not announced:  # nothing to count against: one step, whose lines still show that it is alive
            with step(progress, description):
                shutil.copyfileobj(response, out, MIB)
            return
        advance = progress(f"{description} (MiB)", -(-announced // MIB))
        received = 0
        while block := response.read(MIB):  # a read may return less than asked
            out.write(block)
            advance((received + len(block)) // MIB - received // MIB)  # each MiB once it is whole
            received += len(block)
        advance(-(-received // MIB) - received // MIB)  # the last, partial MiB


def _hf_download(card: PublishedCard, target: Path) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, filename = _hf_parts(card.weights.url)
    try:
        return Path(hf_hub_download(repo_id, filename))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise WeightsError(missing_message(card, target, f"the download failed ({exc})")) from exc


def _hf_parts(url: str) -> tuple[str, str]:
    parts = url[len(HF_PREFIX):].split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise WeightsError(f"hf-hub source {url!r} must read hf-hub:ORG/REPO/PATH")
    return f"{parts[0]}/{parts[1]}", parts[2]
