"""`llmroute tokenizers [--fetch] [--dir DIR] [--json]`: which tiktoken encodings are installed, and
installing them where tiktoken cannot download them itself.

tiktoken downloads its encoding files from ``openaipublic.blob.core.windows.net`` at first use;
llmroute never lets it try during a call (see :mod:`llmroute.tokens`). The ``litellm`` wheel on PyPI
ships byte-identical copies of tiktoken's own cache files (named, as tiktoken names them, by the sha1
of the download URL), so ``--fetch`` downloads that wheel with ``pip download`` (without installing or
importing it) and extracts just those files into tiktoken's cache directory
(``$TIKTOKEN_CACHE_DIR``, else ``$DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``). Only PyPI has
to be reachable. Each file is checked against the sha256 tiktoken expects before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from .tokens import _BLOB, _FILES

__all__ = ["ENCODINGS", "cache_name", "fetch", "missing", "status", "tokenizers_command"]

ENCODINGS = ("o200k_base", "cl100k_base", "p50k_base")
"""The encoding files the litellm wheel carries (o200k_harmony, p50k_edit and r50k-era models reuse
or do without them)."""
WHEEL_DIR = "litellm/litellm_core_utils/tokenizers/"


def cache_name(encoding: str) -> str:
    """The file name tiktoken uses for ``encoding`` in its cache directory."""
    return hashlib.sha1(_BLOB.format(_FILES[encoding][0]).encode()).hexdigest()


def _valid(path: Path, encoding: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == _FILES[encoding][1]


def status(dest: Path) -> dict[str, bool]:
    """Encoding -> whether a valid file for it is in ``dest``."""
    return {enc: _valid(dest / cache_name(enc), enc) for enc in ENCODINGS}


def missing(dest: Path) -> dict[str, str]:
    """Cache file name -> encoding name, for the encodings not (validly) present in ``dest``."""
    return {cache_name(enc): enc for enc, ok in status(dest).items() if not ok}


def _download_wheel(workdir: Path) -> Path:
    """Download the litellm wheel (no dependencies, never installed) into ``workdir``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "litellm"]
    subprocess.run([*cmd, "-d", str(workdir), "--quiet"], check=True)
    wheels = sorted(workdir.glob("litellm-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download produced no litellm wheel in {workdir}")
    return wheels[-1]


def fetch(dest: Path, download: Callable[[Path], Path] = _download_wheel) -> list[str]:
    """Put the missing encodings' files into ``dest``; return the encodings added.

    ``download(workdir)`` returns a wheel file holding them (by default: the litellm wheel from
    PyPI, through pip). A file whose sha256 is not tiktoken's is not kept.
    """
    wanted = missing(dest)
    if not wanted:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    with tempfile.TemporaryDirectory(prefix="llmroute-tiktoken-") as tmp:
        wheel = download(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                name = info.filename.rsplit("/", 1)[-1]
                if not info.filename.startswith(WHEEL_DIR) or name not in wanted:
                    continue
                data = zf.read(info)
                if hashlib.sha256(data).hexdigest() != _FILES[wanted[name]][1]:
                    continue
                tmp_file = dest / f"{name}.tmp"
                tmp_file.write_bytes(data)
                tmp_file.replace(dest / name)
                done.append(wanted[name])
    return sorted(done)


def tokenizers_command(*, fetch: bool, directory: str | None, as_json: bool) -> int:
    """The `llmroute tokenizers` command. Exit codes: 0 every encoding present (after `--fetch`),
    1 some missing (or the download failed), 2 tiktoken caching disabled and no `--dir`."""
    from .tokens import tiktoken_cache_dir

    where = directory or tiktoken_cache_dir()
    if where is None:
        print(
            "llmroute tokenizers: tiktoken caching is disabled (TIKTOKEN_CACHE_DIR is empty); "
            "give --dir DIR and set TIKTOKEN_CACHE_DIR=DIR",
            file=sys.stderr,
        )
        return 2
    dest = Path(where)
    added: list[str] = []
    error = None
    if fetch and missing(dest):
        print(f"fetching {', '.join(sorted(missing(dest).values()))} from the litellm wheel on PyPI ...")
        try:
            added = _fetch(dest)
        except (OSError, subprocess.CalledProcessError, zipfile.BadZipFile) as e:
            error = f"{type(e).__name__}: {e}"
    state = status(dest)
    env_ok = directory is None or os.path.abspath(directory) == os.path.abspath(tiktoken_cache_dir() or "")
    if as_json:
        data = {"directory": str(dest), "encodings": state, "added": added, "error": error}
        print(json.dumps(data, indent=2))
    else:
        print(f"tiktoken cache: {dest}")
        for enc, ok in state.items():
            print(f"  {enc:<12} {'installed (exact counts)' if ok else 'missing (approximate counts)'}")
        if added:
            print(f"added {', '.join(added)}")
        if error:
            print(f"llmroute tokenizers: the download failed: {error}", file=sys.stderr)
        if not all(state.values()) and not fetch:
            print("run `llmroute tokenizers --fetch` to install them (needs PyPI, not the open internet)")
        if all(state.values()) and not env_ok:
            print(f"use: export TIKTOKEN_CACHE_DIR={dest}")
    return 0 if all(state.values()) else 1


def _fetch(dest: Path) -> list[str]:
    return fetch(dest)
