"""Local weights files: what counts as one, reading one safely, and the message when a file is refused.

Files are read with ``torch.load(weights_only=True)`` (or safetensors), which refuses pickled objects other
than tensors and containers: unpickling them runs code the file chooses. torch's own message then advises
re-running with ``weights_only=False``; the library never repeats that advice (see :func:`refused_objects`).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from mirage_bench.errors import WeightsError

_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors"}
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.*?)(?:\n\n|$)", re.S)
_KEY_LIST = re.compile(r'((?:"[^"]+", ){3})((?:"[^"]+", )+)("[^"]+")')


def load_error(exc: BaseException) -> str:
    """Why loading a file into a model failed: :func:`unreadable` for a file torch could not unpickle, else
    torch's load_state_dict error with each list of keys cut to its first three and a count (a wrong file lists
    hundreds of missing keys)."""
    if _UNPICKLER.search(str(exc)):
        return unreadable(exc)
    return _KEY_LIST.sub(lambda m: f"{m[1]}... ({m[2].count(', ') + 1} more)", f"{type(exc).__name__}: {exc}").replace("\n\t", " ")


def is_weights_path(pretrained: str) -> bool:
    """``backbone.pretrained`` names a file (rather than a tag such as ``openai``, ``imagenet`` or ``none``)."""
    return "/" in pretrained or "\\" in pretrained or Path(pretrained).suffix in _SUFFIXES


def refused_objects(path: str | Path, exc: BaseException, what: str = "weights file", fix: str = "") -> str | None:
    """The message for a file that ``weights_only`` refused for holding objects (``fix`` appended), or None when
    ``exc`` is another failure."""
    found = _GLOBAL.search(str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
    if found is None:
        return None
    return (f"{what} {path} holds Python objects other than tensors (e.g. {found.group(1)}); loading those could run "
            f"code the file carries, so it is refused for safety. {fix or CONVERT}")


def unreadable(exc: BaseException) -> str:
    """Why a file could not be read, in one line and without torch's advice to load it with ``weights_only=False``
    (for a damaged file torch gives that advice too)."""
    text = str(exc)
    found = _UNPICKLER.search(text)
    detail = found.group(1).strip() if found else (text.splitlines() or [""])[0]
    return f"{type(exc).__name__}: {detail}"


#: What to do with a weights file that holds more than tensors.
CONVERT = ("If you trust its source, convert it once to a tensor-only file: load it in Python and save its state dict "
           "with safetensors.torch.save_file(state_dict, 'weights.safetensors'), then pass that file")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a plain tensor file (``weights_only``, never arbitrary pickles)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged files and pickles that weights_only refuses both end here
        raise WeightsError(refused_objects(path, exc) or (
            f"weights file {path} cannot be read as a tensor file ({unreadable(exc)}). "
            "Convert it to .safetensors, or a torch file holding only a state dict."
        )) from exc
    for key in ("state_dict", "model"):  # common wrappers around the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state
