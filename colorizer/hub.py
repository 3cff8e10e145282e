"""Finding weight files: a local path, or a Hugging Face Hub repository (downloaded and cached).

Only ``.safetensors`` files are ever accepted: weights are data, never pickled code.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import constants, hf_hub_download, is_offline_mode
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

#: Seconds to wait for a TCP connection to the Hub before calling it unreachable.
PROBE_TIMEOUT = 3.0


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
    # Without a network, huggingface_hub retries for about 25 s before it gives up: ask once whether the
    # Hub can be reached at all, and if not, look in the cache alone.
    offline = is_offline_mode()
    unreachable = None if offline else hub_unreachable(constants.ENDPOINT)
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision or None, local_files_only=bool(unreachable)))
    except LocalEntryNotFoundError as err:
        if offline:
            why = "offline mode is on (HF_HUB_OFFLINE=1)"
        elif unreachable:
            why = f"the Hugging Face Hub cannot be reached ({unreachable})"
        else:
            why = "it could not be downloaded from the Hugging Face Hub"
        raise WeightsNotFoundError(f"{filename} of {repo_id!r} is not in the local cache and {why}. {hint}") from err
    except (RepositoryNotFoundError, EntryNotFoundError) as err:
        raise WeightsNotFoundError(f"{repo_id!r} on the Hugging Face Hub has no {filename}. {hint}") from err
    except HfHubHTTPError as err:
        raise WeightsNotFoundError(f"downloading {repo_id!r} failed: {err}. {hint}") from err


@functools.cache
def hub_unreachable(endpoint: str) -> str | None:
    """Why a TCP connection to ``endpoint`` (or to the proxy the environment names for it) fails; None if it opens.

    Asked once per endpoint and process: a machine without a network fails every download at once
    instead of waiting out huggingface_hub's retries each time. A proxy set in the environment
    (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``: as huggingface_hub's HTTP client reads them) is
    what gets probed, since then the proxy, not the Hub, is what this machine must reach.
    """
    url = urlsplit(endpoint)
    target = endpoint
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url, target = urlsplit(proxy if "://" in proxy else f"http://{proxy}"), f"proxy {proxy}"
    if not url.hostname:
        return f"{target}: no host name"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT).close()
    except (OSError, ValueError) as err:  # ValueError: a malformed address
        return f"{target}: {err}"
    return None
