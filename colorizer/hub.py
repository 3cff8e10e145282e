"""Finding weight files: a local path, or a Hugging Face Hub repository (downloaded and cached).

Only ``.safetensors`` files are ever accepted: weights are data, never pickled code.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError


def is_repo_id(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a Hub repository (``owner/name``) rather than a local path.

    Paths win: anything that exists here, starts like a path (``.``, ``/``, ``~``), has another
    number of slashes, or ends in a weight-file suffix is a path.
    """
    text = os.fspath(spec)
    return not (
        Path(text).expanduser().exists()
        or text.startswith((".", "/", "~"))
        or text.partition("@")[0].count("/") != 1
        or Path(text).suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
    )


class WeightsNotFoundError(RuntimeError):
    """Weights could not be had; the message says how to point at local ones."""


def resolve_weights(spec: str | os.PathLike, *, filename: str = "model.safetensors", hint: str = "") -> Path:
    """Return a local path to a safetensors file named by ``spec``.

    ``spec`` is a ``.safetensors`` file, a folder holding ``filename``, or a Hub repo id
    (``owner/name``, optionally ``owner/name@revision``) whose ``filename`` is downloaded into
    the usual Hugging Face cache. ``HF_HUB_OFFLINE=1`` is respected: then only the cache is used.
    ``hint`` is appended to error messages (e.g. which environment variable to set).
    """
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / filename
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WeightsNotFoundError(f"{path} is not a .safetensors file; only safetensors weights are loaded. {hint}")
        return path
    if not is_repo_id(text):
        raise WeightsNotFoundError(f"no weights file at {text!r}. {hint}")

    repo_id, _, revision = text.partition("@")
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision or None))
    except LocalEntryNotFoundError as err:
        raise WeightsNotFoundError(
            f"could not download {filename} of {repo_id!r} from the Hugging Face Hub (offline or unreachable) "
            f"and it is not in the local cache. {hint}"
        ) from err
    except (RepositoryNotFoundError, EntryNotFoundError) as err:
        raise WeightsNotFoundError(f"{repo_id!r} on the Hugging Face Hub has no {filename}. {hint}") from err
    except HfHubHTTPError as err:
        raise WeightsNotFoundError(f"downloading {repo_id!r} failed: {err}. {hint}") from err
