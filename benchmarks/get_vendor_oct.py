"""Copy the public vendor OCT test files (Heidelberg HEYEX VOL and XML) into the real-data folder.

These files live in public GitHub repositories and are **not** part of medseg's git history (a
workplace rule: nothing fetched is committed). This script re-obtains them from a local git copy
of each repository: a bare mirror (``/work/.mirror/<owner>+<name>/repo``, as the ``fetch`` tool
leaves it) or an ordinary clone. Files are taken by their git blob id, so what lands on disk is
byte-for-byte the file listed in ``tests/data/PROVENANCE.md`` whatever commit the copy is at.

Destination: ``$MEDSEG_REAL_DATA/vendor_oct`` (default ``~/.cache/medseg/real_data/vendor_oct``);
the tests also look in ``../shared/real_data/vendor_oct`` beside the checkout. Usage::

    python benchmarks/get_vendor_oct.py [--dest DIR] [--repo OWNER/NAME=PATH ...]

Without a local copy of a repository the script prints how to get one (``fetch github:OWNER/NAME``
with the workplace search tool, or ``git clone https://github.com/OWNER/NAME``) and exits 1.
Formats with no public file found (Heidelberg E2E, Topcon FDA/FDS, Zeiss IMG) are not listed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DATASET = "vendor_oct"
MIRROR_ROOT = Path(os.environ.get("MEDSEG_MIRROR_ROOT", "/work/.mirror"))


@dataclass(frozen=True)
class SourceFile:
    """One file: repository, commit it was taken at, path there, blob id, and where it goes."""

    repo: str
    commit: str
    path: str
    blob: str
    dest: str


EYEPY = ("MedVisBonn/eyepy", "5dc5313145ebe62fef8f6580107dacbe9057119e")
SPECTRALIS = ("halirutan/spectralis-raw-data", "d432248d5c2f207668eff06b62edbcd03542c0ad")
_XML_DIR = "tests/data/filetypes/heyex_xml/test_volume"
_XML_BLOBS = {
    "B1.tif": "742be9ce6543a681088faafb8b03b40273dc3d2c",
    "B2.tif": "0debafa24117afe40edf0b75c8c428599cc2b8aa",
    "B3.tif": "ac4bc90891be710577ea633d82c27b839feb30fb",
    "B4.tif": "2aac9e7bc67da0911ac6567257c0c383a556ae2a",
    "B5.tif": "8bb290743bc0c22aec05c6312827457b5e359375",
    "B6.tif": "13748ce1f3cddfb67b8babbfe867150dc560605a",
    "B7.tif": "91be7b1b068d362d8c57ba696cea1f86827baa2b",
    "B8.tif": "523d6d0bf71340720bfb5f3e6e226aaa8cb37724",
    "B9.tif": "4f3622db5665231382efcfcc4be63b886b31c538",
    "B10.tif": "2d95a163a074aba3f2c6e4f4c320f71431b08cb3",
    "B11.tif": "066a85c282634dba324da8aafb64c3de6eecf164",
    "NIR1.tif": "148a5a7b7f4523438ce8e3b27f5295aa1b48e3a5",
    "test_dummy.xml": "fc6cd9522c3e3c6d3b04147ce8951a6bdfac893d",
}

SOURCES: tuple[SourceFile, ...] = (
    SourceFile(
        *EYEPY,
        "tests/data/filetypes/heyex_vol/test_volume.vol",
        "40fc4ef128c1c487c776c098c46998a569c607b0",
        "eyepy/heyex_vol/test_volume.vol",
    ),
    *(
        SourceFile(*EYEPY, f"{_XML_DIR}/{name}", blob, f"eyepy/heyex_xml/test_volume/{name}")
        for name, blob in _XML_BLOBS.items()
    ),
    SourceFile(
        *SPECTRALIS,
        "test-data/Willis_B_716_0.vol",
        "a34b58fcc754b9210536b18e12595affd7e66392",
        "spectralis-raw-data/line_scan.vol",
    ),
    SourceFile(
        *SPECTRALIS,
        "test-data/Willis_B_716_2.vol",
        "d878e7e19f82be5b037e9e1acad3a7dab1b6030c",
        "spectralis-raw-data/circle_scan.vol",
    ),
)


def default_dest() -> Path:
    """``$MEDSEG_REAL_DATA/vendor_oct`` or ``~/.cache/medseg/real_data/vendor_oct``."""
    root = os.environ.get("MEDSEG_REAL_DATA")
    base = Path(root) if root else Path.home() / ".cache" / "medseg" / "real_data"
    return base / DATASET


def git_dir(repo: str, overrides: dict[str, Path]) -> Path | None:
    """A local git copy of ``repo`` (override, else the fetch mirror), or ``None``."""
    candidates = [overrides[repo]] if repo in overrides else []
    candidates.append(MIRROR_ROOT / repo.replace("/", "+") / "repo")
    for path in candidates:
        if (path / "objects").is_dir():
            return path  # bare repository
        if (path / ".git").exists():
            return path / ".git"
    return None


def read_blob(git: Path, blob: str) -> bytes | None:
    """The bytes of a blob, or ``None`` when the copy lacks it."""
    done = subprocess.run(
        ["git", f"--git-dir={git}", "cat-file", "blob", blob], capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def copy_file(source: SourceFile, git: Path, dest: Path) -> str:
    """Copy one file (atomically); returns a one-line status."""
    target = dest / source.dest
    data = read_blob(git, source.blob)
    if data is None:
        return f"MISSING {source.repo}:{source.path} (blob {source.blob[:10]} not in {git})"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return f"ok      {source.dest} <- {source.repo}@{source.commit[:10]}:{source.path}"


def how_to_get(repo: str, commit: str) -> str:
    """The instructions printed when a repository copy is missing."""
    return (
        f"no local copy of {repo}: run `fetch github:{repo}` (workplace search tool) or\n"
        f"    git clone https://github.com/{repo} && git -C {repo.split('/')[1]} checkout {commit}\n"
        f"  then rerun with --repo {repo}=PATH if the copy is not under {MIRROR_ROOT}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None, help="target folder")
    parser.add_argument(
        "--repo", action="append", default=[], metavar="OWNER/NAME=PATH", help="local git copy"
    )
    args = parser.parse_args(argv)
    dest = args.dest or default_dest()
    overrides = {k: Path(v) for k, v in (item.split("=", 1) for item in args.repo)}
    failed = False
    for repo, commit in (EYEPY, SPECTRALIS):
        git = git_dir(repo, overrides)
        if git is None:
            print(how_to_get(repo, commit), file=sys.stderr)
            failed = True
            continue
        for source in (s for s in SOURCES if s.repo == repo):
            line = copy_file(source, git, dest)
            failed |= line.startswith("MISSING")
            print(line)
    print(f"vendor OCT files in {dest}" + (" (incomplete)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
