"""Re-obtain real public data that medseg's tests and benchmarks use but never commit.

Each data set is a named recipe that fills ``<root>/<name>``, where ``<root>`` is
``$MEDSEG_REAL_DATA`` or ``~/.cache/medseg/real_data``. Tests look for the folder there and in
``../shared/real_data/`` beside the checkout, and skip with the reason when it is absent.

Recipes:

* ``dicom-corpus``: the DICOM test files of highdicom (``data/test_files``) and dcmqi
  (``data/``: real GE CT and MR series, multi-frame images, SEG, SR, parametric maps; its zipped
  MR series is unpacked). They are copied out of local git mirrors of the two repositories; give
  their paths with ``--mirror`` (bare git folders or work trees), or the script looks under
  ``/work/.mirror``. Without a mirror it prints how to clone one. Nothing is downloaded.

Usage::

    python benchmarks/get_real_data.py dicom-corpus [--mirror PATH]... [--root DIR] [--force]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path.home() / ".cache" / "medseg" / "real_data"
MIRROR_ROOT = Path("/work/.mirror")


@dataclass(frozen=True)
class RepoFiles:
    """Files to take from one git repository: path prefixes and suffixes (lower case)."""

    name: str
    url: str
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    unzip: tuple[str, ...] = ()


DICOM_REPOS = (
    RepoFiles(
        "highdicom",
        "https://github.com/ImagingDataCommons/highdicom",
        ("data/test_files/",),
        (".dcm",),
    ),
    RepoFiles(
        "dcmqi",
        "https://github.com/QIICR/dcmqi",
        ("data/segmentations/", "data/sr-example/", "data/paramaps/"),
        (".dcm", ".seg"),
        unzip=("data/paramaps/pm-example-dcm.zip",),
    ),
)


def data_root(root: str | None = None) -> Path:
    """Folder holding the named data sets (``--root``, ``$MEDSEG_REAL_DATA`` or the cache)."""
    return Path(root or os.environ.get("MEDSEG_REAL_DATA") or DEFAULT_ROOT).expanduser()


class Mirror:
    """Read-only access to the committed files of a git repository (bare or with a work tree)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
        self.git = ["git", f"--git-dir={path}"] if bare else ["git", "-C", str(path)]

    def files(self) -> list[str]:
        out = subprocess.run(
            [*self.git, "ls-tree", "-r", "--name-only", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.splitlines()

    def read(self, name: str) -> bytes:
        return subprocess.run(
            [*self.git, "show", f"HEAD:{name}"], check=True, capture_output=True
        ).stdout


def _find_mirror(repo: RepoFiles, given: Sequence[Path]) -> Mirror | None:
    owner_name = repo.url.removeprefix("https://github.com/").replace("/", "+")
    candidates = [p for p in given if repo.name in p.name.lower() or repo.name in str(p).lower()]
    candidates += [MIRROR_ROOT / owner_name / "repo", MIRROR_ROOT / owner_name]
    for path in candidates:
        if path.is_dir() and (
            (path / "HEAD").is_file() or (path / ".git").exists() or (path / "objects").is_dir()
        ):
            return Mirror(path)
    return None


def _copy_repo(repo: RepoFiles, mirror: Mirror, target: Path) -> int:
    """Copy the wanted files of ``repo`` into ``target/<repo.name>``; returns the file count."""
    n = 0
    for name in mirror.files():
        lower = name.lower()
        if not lower.startswith(repo.prefixes):
            continue
        if lower.endswith(repo.suffixes):
            dest = target / repo.name / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(mirror.read(name))
            n += 1
        elif name in repo.unzip:
            folder = target / repo.name / name.removesuffix(".zip")
            with zipfile.ZipFile(io.BytesIO(mirror.read(name))) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                archive.extractall(folder, members)
            n += len(members)
    return n


def get_dicom_corpus(root: Path, mirrors: Sequence[Path], force: bool) -> int:
    """The ``dicom-corpus`` recipe; returns a process exit code."""
    target = root / "dicom-corpus"
    missing = []
    for repo in DICOM_REPOS:
        if (target / repo.name).is_dir() and not force:
            print(f"{repo.name}: already in {target / repo.name} (--force to refresh)")
            continue
        mirror = _find_mirror(repo, mirrors)
        if mirror is None:
            missing.append(repo)
            continue
        shutil.rmtree(target / repo.name, ignore_errors=True)
        n = _copy_repo(repo, mirror, target)
        print(f"{repo.name}: {n} files from {mirror.path} -> {target / repo.name}")
    for repo in missing:
        print(
            f"{repo.name}: no local mirror found. Clone it and pass --mirror:\n"
            f"    git clone --depth 1 {repo.url} /tmp/{repo.name}\n"
            f"    python {sys.argv[0]} dicom-corpus --mirror /tmp/{repo.name}",
            file=sys.stderr,
        )
    return 1 if missing else 0


RECIPES: dict[str, Callable[[Path, Sequence[Path], bool], int]] = {
    "dicom-corpus": get_dicom_corpus,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--root", help="data folder (default: $MEDSEG_REAL_DATA or the cache)")
    parser.add_argument("--mirror", type=Path, action="append", default=[])
    parser.add_argument("--force", action="store_true", help="copy again even if present")
    args = parser.parse_args(argv)
    return RECIPES[args.name](data_root(args.root), args.mirror, args.force)


if __name__ == "__main__":
    sys.exit(main())
