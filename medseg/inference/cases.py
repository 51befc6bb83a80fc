"""What to predict: cases from image files, scan folders (DICOM discovery) or a manifest.

Models with several input channels (:attr:`CaseInput.sources`, in the model's channel order):

* a manifest gives each case's channels by name (the model's names; or, when the names differ
  but the count agrees, in the manifest's order);
* a model trained on RGB images (channels ``red``, ``green``, ``blue``) reads the three
  components of each 2D image file;
* other files and folders follow nnU-Net's naming: ``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``
  ... are the channels of case ``<case>``, and outputs are named ``<case>.nii.gz``. A lone
  ``<case>_0000`` file of a one-channel model is case ``<case>`` too.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from medseg.errors import ConfigError
from medseg.io.image_files import RGB_CHANNELS, ImageFileRef, is_image_file, read_image_sidecar
from medseg.io.read import DicomSeriesRef
from medseg.manifest import naming
from medseg.manifest.build import Candidate, discover_candidates
from medseg.manifest.pseudonym import pseudonym, pseudonymous_case_id
from medseg.manifest.schema import Manifest, load_manifest
from medseg.types import PathLike

Source = str | Path | DicomSeriesRef | ImageFileRef
CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass
class CaseInput:
    """One case to segment; ``error`` is set for inputs found unusable before prediction.

    ``source`` is the first channel (its grid is the output's; DICOM SEG references it);
    ``channels`` lists every channel's source in the model's order (empty: ``source`` alone).
    """

    case_id: str
    source: Source | None
    root: Path | None = None
    patient_id: str | None = None
    study_date: str | None = None
    laterality: str | None = None
    modality: str | None = None
    error: str | None = None
    channels: list[Source] = field(default_factory=list)

    @property
    def sources(self) -> list[Source]:
        """Every channel's source, in the model's channel order."""
        if self.channels:
            return list(self.channels)
        return [] if self.source is None else [self.source]

    def _text(self, source: Source) -> str | dict[str, object]:
        if isinstance(source, DicomSeriesRef):
            files = [
                str(self.root / f) if self.root and not Path(f).is_absolute() else f
                for f in source.files
            ]
            return {"series_uid": source.series_uid, "files": files}
        if isinstance(source, ImageFileRef):
            return {**source.model_dump(exclude_none=True), "path": self._path(source.path)}
        return self._path(source)

    def _path(self, source: str | Path) -> str:
        path = Path(source)
        return str(self.root / path if self.root is not None and not path.is_absolute() else path)

    @property
    def source_text(self) -> str | dict[str, object] | list[str | dict[str, object]]:
        """JSON-friendly description of the source(s) for run reports."""
        if self.source is None:
            return ""
        if len(self.channels) > 1:
            return [self._text(s) for s in self.channels]
        return self._text(self.source)


def _from_candidate(c: Candidate) -> CaseInput:
    return CaseInput(
        c.case_id, c.source, None, c.patient_id, c.study_date, c.laterality, c.modality
    )


def manifest_channels(manifest: Manifest, wanted: Sequence[str] | None) -> list[str]:
    """The manifest channels feeding a model's ``wanted`` channels, in the model's order.

    Raises:
        ConfigError: the manifest has another number of channels than the model.
    """
    if wanted is None or list(wanted) == list(manifest.channels):
        return list(manifest.channels)
    if set(wanted) <= set(manifest.channels):
        return list(wanted)
    if len(wanted) != len(manifest.channels):
        raise ConfigError(
            f"manifest {manifest.name} has channels {manifest.channels}; the model takes "
            f"{len(wanted)}: {list(wanted)}",
            hint="predict with a manifest of the model's channels",
        )
    return list(manifest.channels)


def _from_manifest(path: Path, split: str | None, wanted: Sequence[str] | None) -> list[CaseInput]:
    manifest = load_manifest(path)
    channels = manifest_channels(manifest, wanted)
    return [
        CaseInput(
            c.case_id,
            c.images[channels[0]],
            manifest.root,
            c.patient_id,
            c.study_date,
            c.laterality,
            c.modality,
            channels=[c.images[ch] for ch in channels] if len(channels) > 1 else [],
        )
        for c in manifest.cases
        if split is None or c.split == split
    ]


def _from_folder(folder: Path) -> list[CaseInput]:
    candidates, summary = discover_candidates(folder)
    cases = [_from_candidate(c) for c in candidates]
    for item in summary.skipped:  # unusable series and unreadable DICOM are failed cases
        if item.reason.startswith(("unusable DICOM series", "unreadable DICOM")):
            cases.append(
                CaseInput(
                    _failed_id(folder, Path(item.path)),
                    item.path,
                    None,
                    error=f"{item.reason} [{item.path}]",
                )
            )
    return cases


def _failed_id(folder: Path, path: Path) -> str:
    """An id for an input that could not be read: its path under the input folder."""
    relative = path.relative_to(folder) if path.is_relative_to(folder) else Path(path.name)
    parts = [
        *relative.parts[:-1],
        relative.name.rsplit(".", 1)[0]
        if relative.suffix.lower() in {".dcm", ".dicom", ".ima"}
        else relative.name,
    ]
    return naming.sanitize("-".join(parts))


def _is_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        return "cases" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def _pseudonymize(case: CaseInput, key: str, table: list[tuple[str, str, str, str]]) -> None:
    if case.patient_id is None:
        return
    new_patient = pseudonym(case.patient_id, key)
    new_case = pseudonymous_case_id(case.case_id, case.patient_id, new_patient)
    table.append((case.patient_id, new_patient, case.case_id, new_case))
    case.patient_id, case.case_id = new_patient, new_case


def _with_spacing(
    source: Source, spacing: tuple[float, float] | None, component: int | None
) -> Source:
    """A 2D image file as an :class:`ImageFileRef` with ``--spacing`` (unless its sidecar has
    one) and a colour component; other sources unchanged."""
    if not isinstance(source, Path) or not is_image_file(source):
        return source
    if spacing is not None and "pixel_spacing_mm" in read_image_sidecar(source):
        spacing = None
    if spacing is None and component is None:
        return source
    return ImageFileRef(path=str(source), component=component, pixel_spacing_mm=spacing)


def _rgb_cases(cases: list[CaseInput], spacing: tuple[float, float] | None) -> list[CaseInput]:
    """Each 2D image file gives its red, green and blue components."""
    out = []
    for case in cases:
        if case.error is None and not (
            isinstance(case.source, Path) and is_image_file(case.source)
        ):
            case.error = "the model reads the colour components of 2D images (PNG/JPEG/TIFF/BMP)"
        if case.error is None and case.source is not None:
            parts = [_with_spacing(case.source, spacing, k) for k in range(3)]
            case = replace(case, source=parts[0], channels=parts)
        out.append(case)
    return out


def _channel_group(name: str, members: dict[int, CaseInput], n_channels: int) -> list[CaseInput]:
    """One case from the channel files of case ``name`` (or an error naming what is missing)."""
    found = sorted(members)
    first = members[found[0]]
    patient = name if first.patient_id == first.case_id else first.patient_id
    if found == list(range(n_channels)):
        sources = [members[k].source for k in found]
        channels = [c for c in sources if c is not None] if n_channels > 1 else []
        return [replace(first, case_id=name, patient_id=patient, channels=channels)]
    if n_channels == 1:
        return list(members.values())  # not channel files: cases of their own
    got = ", ".join(f"{k:04d}" for k in found)
    error = (
        f"channel files {got} found; the model takes {n_channels} (_0000 ... _{n_channels - 1:04d})"
    )
    return [replace(first, case_id=name, patient_id=patient, error=error)]


def _grouped_cases(cases: list[CaseInput], n_channels: int) -> list[CaseInput]:
    """nnU-Net channel files ``<case>_0000`` ... grouped into cases of ``n_channels`` sources
    (in the order the cases came, a group where its first file was)."""
    groups: dict[str, dict[int, CaseInput]] = {}
    order: list[CaseInput | str] = []
    for case in cases:
        match = CHANNEL_SUFFIX.match(case.case_id)
        if case.error is None and match is not None:
            if match["case"] not in groups:
                order.append(match["case"])
            groups.setdefault(match["case"], {})[int(match["channel"])] = case
            continue
        if case.error is None and n_channels > 1:
            case.error = (
                f"the model takes {n_channels} channels: name the files <case>_0000 ... "
                f"<case>_{n_channels - 1:04d} (nnU-Net) or predict a manifest"
            )
        order.append(case)
    out: list[CaseInput] = []
    for item in order:
        out += (
            [item]
            if isinstance(item, CaseInput)
            else _channel_group(item, groups[item], n_channels)
        )
    return out


def arrange_channels(
    cases: list[CaseInput],
    channels: Sequence[str] | None,
    spacing: tuple[float, float] | None = None,
) -> list[CaseInput]:
    """Give cases found in files and folders the sources of the model's ``channels``.

    See the module docstring; ``spacing`` (``--spacing``) applies to 2D image files.
    """
    if channels is not None and tuple(channels) == RGB_CHANNELS:
        return _rgb_cases(cases, spacing)
    spaced = [
        replace(c, source=_with_spacing(c.source, spacing, None)) if c.source is not None else c
        for c in cases
    ]
    return _grouped_cases(spaced, len(channels) if channels else 1)


def cases_from_inputs(
    inputs: Sequence[PathLike],
    *,
    split: str | None = None,
    pseudonym_key: str | None = None,
    table: list[tuple[str, str, str, str]] | None = None,
    channels: Sequence[str] | None = None,
    spacing: tuple[float, float] | None = None,
) -> list[CaseInput]:
    """Turn CLI inputs into cases with unique ids (duplicates get ``-2``, ``-3``...).

    With ``pseudonym_key``, cases found in folders and files (not manifests, which carry their own
    ids) get pseudonymous patient and case ids; the mapping rows are appended to ``table``.
    ``channels`` are the model's input channels (see the module docstring); ``spacing`` is
    ``--spacing`` for 2D image files.
    """
    cases: list[CaseInput] = []
    found_cases: list[CaseInput] = []
    for raw in inputs:
        path = Path(raw)
        if _is_manifest(path):
            cases += _from_manifest(path, split, channels)
            continue
        found_cases += _from_folder(path) if path.is_dir() else _from_file(path)
    found_cases = arrange_channels(found_cases, channels, spacing)
    if pseudonym_key is not None:
        for case in found_cases:
            _pseudonymize(case, pseudonym_key, table if table is not None else [])
    cases += found_cases
    seen: Counter[str] = Counter()
    for case in cases:
        seen[case.case_id] += 1
        if seen[case.case_id] > 1:
            case.case_id = f"{case.case_id}-{seen[case.case_id]}"
    return cases


def _from_file(path: Path) -> list[CaseInput]:
    found, summary = discover_candidates(path)
    if found:
        return [_from_candidate(c) for c in found]
    reason = summary.skipped[0].reason if summary.skipped else "not a supported scan"
    return [CaseInput(naming.sanitize(naming.strip_extension(path.name)), path, error=reason)]
