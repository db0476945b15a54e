"""Make tiktoken's encoding files available offline.

tiktoken downloads its BPE files at first use; machines without a network cannot. The ``litellm``
wheel on PyPI ships byte-identical copies of tiktoken's own cache files (named, as tiktoken names
them, by the sha1 of the download URL). This script downloads that wheel with pip (without installing
or importing it), extracts just those files into DEST_DIR and does nothing when they are already
there. Then::

    TIKTOKEN_CACHE_DIR=DEST_DIR python -c "import tiktoken; tiktoken.get_encoding('o200k_base')"

works offline. tiktoken checks each file's sha256 itself when it loads it.

Usage: ``python scripts/tiktoken_cache.py [DEST_DIR]`` (default: ``.cache/tiktoken`` under the repo).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
ENCODINGS = ("cl100k_base", "o200k_base", "p50k_base")
"""The encodings the litellm wheel carries (o200k_harmony and p50k_edit reuse these files)."""
WHEEL_DIR = "litellm/litellm_core_utils/tokenizers/"
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"


def cache_name(encoding: str) -> str:
    """The file name tiktoken uses for ``encoding`` in its cache directory."""
    return hashlib.sha1(_BLOB.format(encoding).encode()).hexdigest()


def missing(dest: Path) -> dict[str, str]:
    """Cache file name -> encoding name, for the encodings not yet present in ``dest``."""
    names = {cache_name(enc): enc for enc in ENCODINGS}
    return {name: enc for name, enc in names.items() if not (dest / name).is_file()}


def download_wheel(workdir: Path) -> Path:
    """Download the litellm wheel (no dependencies, never installed) into ``workdir``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "litellm"]
    subprocess.run([*cmd, "-d", str(workdir), "--quiet"], check=True)
    wheels = sorted(workdir.glob("litellm-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download produced no litellm wheel in {workdir}")
    return wheels[-1]


def extract(wheel: Path, dest: Path, wanted: dict[str, str]) -> list[str]:
    """Copy the wanted cache files out of ``wheel`` into ``dest``; return the encodings extracted."""
    done: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(WHEEL_DIR):
                continue
            name = info.filename.rsplit("/", 1)[-1]
            if name not in wanted:
                continue
            target = dest / name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(zf.read(info))
            tmp.replace(target)
            done.append(wanted[name])
    return done


def main(argv: list[str]) -> int:
    dest = Path(argv[1]) if len(argv) > 1 else DEFAULT_DEST
    dest.mkdir(parents=True, exist_ok=True)
    wanted = missing(dest)
    if not wanted:
        print(f"tiktoken cache complete in {dest} ({', '.join(ENCODINGS)}); nothing to do")
        return 0
    print(f"fetching {', '.join(sorted(wanted.values()))} from the litellm wheel on PyPI ...")
    with tempfile.TemporaryDirectory(prefix="llmroute-tiktoken-") as tmp:
        wheel = download_wheel(Path(tmp))
        got = extract(wheel, dest, wanted)
        print(f"extracted {', '.join(sorted(got)) or 'nothing'} from {wheel.name} into {dest}")
    still = missing(dest)
    if still:
        print(f"not found in the wheel: {', '.join(sorted(still.values()))}", file=sys.stderr)
        return 1
    print(f"use: TIKTOKEN_CACHE_DIR={dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
