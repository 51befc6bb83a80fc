"""Coded concepts of labels: what a DICOM SEG segment and a DICOM SR finding say a label *is*.

A PACS, OHIF or a trial database reads a segment's meaning from its codes, not from its name:
each label gets a :class:`LabelCoding` (segmented property category and type, optional anatomic
region, display colour). Codes come, in this order, from the workflow (``label_codes:``), the
labels' ``labels.json`` (``"codes"``), else :func:`default_coding`, and are frozen at ``plan``
time into ``resolved_workflow.yaml`` (and so into checkpoints and ``run_report.json``).

Defaults (all codes from DICOM PS3.16, checked against pydicom's copy of it in the tests):

* OCT fluid, with the names and abbreviations of the public OCT fluid annotations (RETOUCH:
  IRF, SRF, PED; no public OCT fluid annotation publishes DICOM codes):
  IRF / intraretinal fluid = Morphologically Abnormal Structure / Edema (SCT 79654002),
  SRF / subretinal fluid = Body Substance / Body fluid (SCT 32457005), PED = Morphologically
  Abnormal Structure / Lesion; all with anatomic region Retina (SCT 5665001); ``retina`` is the
  anatomical structure Retina.
* CT organs by name (liver, kidney, spleen, pancreas, lung, brain): Anatomical Structure / the
  organ; any other non-lesion label: Anatomical Structure / Organ (SCT 91772007).
* Lesions: ``tumor``/``tumour``/``neoplasm`` = Neoplasm (SCT 108369006), ``cyst``, ``nodule``,
  ``mass``, ``metastasis`` their own codes; any other lesion label: Morphologically Abnormal
  Structure / Lesion (SCT 52988006).
* Colours: medseg's class palette (:func:`medseg.drawing.colour_of`: previews, report figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medseg.drawing import colour_of, rgb

__all__ = [
    "Code",
    "LabelCoding",
    "default_coding",
    "resolve_codings",
]


class Code(BaseModel):
    """One coded concept (DICOM Code Sequence item: value, scheme designator, meaning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, max_length=64, description="CodeValue, e.g. 10200004")
    scheme: str = Field(min_length=1, max_length=16, description="designator: SCT, DCM, ...")
    meaning: str = Field(min_length=1, max_length=64, description="CodeMeaning, e.g. Liver")
    scheme_version: str | None = None


class LabelCoding(BaseModel):
    """What one label is, in codes (a SEG segment description; an SR finding type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Code = Field(description="Segmented Property Category (CID 7150)")
    type: Code = Field(description="Segmented Property Type (CID 7151)")
    anatomic_region: Code | None = Field(default=None, description="where it lies, if useful")
    color: tuple[int, int, int] | None = Field(
        default=None, description="display colour, sRGB 0-255"
    )

    @field_validator("color")
    @classmethod
    def _rgb(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and not all(0 <= c <= 255 for c in value):
            raise ValueError(f"color components must be 0..255, got {list(value)}")
        return value


def _sct(value: str, meaning: str) -> Code:
    return Code(value=value, scheme="SCT", meaning=meaning)


MORPHOLOGICALLY_ABNORMAL = _sct("49755003", "Morphologically Abnormal Structure")
ANATOMICAL_STRUCTURE = _sct("91723000", "Anatomical Structure")
BODY_SUBSTANCE = _sct("91720002", "Body Substance")
RETINA = _sct("5665001", "Retina")
LESION = _sct("52988006", "Lesion")
ORGAN = _sct("91772007", "Organ")

_OCT: dict[str, tuple[Code, Code, Code | None]] = {
    "irf": (MORPHOLOGICALLY_ABNORMAL, _sct("79654002", "Edema"), RETINA),
    "srf": (BODY_SUBSTANCE, _sct("32457005", "Body fluid"), RETINA),
    "ped": (MORPHOLOGICALLY_ABNORMAL, LESION, RETINA),
    "retina": (ANATOMICAL_STRUCTURE, RETINA, None),
}
_SYNONYMS = {
    "intraretinal fluid": "irf",
    "subretinal fluid": "srf",
    "pigment epithelial detachment": "ped",
    "pigment epithelium detachment": "ped",
    "tumour": "tumor",
    "neoplasm": "tumor",
}
_ORGANS = {
    "liver": _sct("10200004", "Liver"),
    "kidney": _sct("64033007", "Kidney"),
    "spleen": _sct("78961009", "Spleen"),
    "pancreas": _sct("15776009", "Pancreas"),
    "lung": _sct("39607008", "Lung"),
    "brain": _sct("12738006", "Brain"),
}
_LESIONS = {
    "tumor": _sct("108369006", "Neoplasm"),
    "cyst": _sct("367643001", "Cyst"),
    "nodule": _sct("27925004", "Nodule"),
    "mass": _sct("4147007", "Mass"),
    "metastasis": _sct("128462008", "Metastasis"),
    "lesion": LESION,
}


def default_coding(name: str, value: int, *, lesion: bool) -> LabelCoding:
    """The documented default coding of a label (see the module docstring).

    Args:
        name: the label's name (case, spaces and ``-``/``_`` ignored; synonyms such as
            ``intraretinal fluid`` or ``tumour`` recognised).
        value: its label value (picks the default colour).
        lesion: whether it is a lesion class (unknown names: Lesion, else Organ).
    """
    key = " ".join(name.replace("_", " ").replace("-", " ").split()).casefold()
    key = _SYNONYMS.get(key, key)
    colour = rgb(colour_of(max(value, 1)))
    if key in _OCT:
        category, kind, region = _OCT[key]
        return LabelCoding(category=category, type=kind, anatomic_region=region, color=colour)
    if key in _ORGANS:
        return LabelCoding(category=ANATOMICAL_STRUCTURE, type=_ORGANS[key], color=colour)
    if key in _LESIONS:
        return LabelCoding(category=MORPHOLOGICALLY_ABNORMAL, type=_LESIONS[key], color=colour)
    if lesion:
        return LabelCoding(category=MORPHOLOGICALLY_ABNORMAL, type=LESION, color=colour)
    return LabelCoding(category=ANATOMICAL_STRUCTURE, type=ORGAN, color=colour)


def _given_for(value: int, name: str, given: Mapping[str, Any]) -> LabelCoding | None:
    """The coding ``given`` for a label, keyed by its value (``"1"``) or its name (any case)."""
    keys = {str(k).casefold(): k for k in given}
    key = keys.get(str(value)) or keys.get(name.casefold())
    if key is None:
        return None
    raw = given[key]
    return raw if isinstance(raw, LabelCoding) else LabelCoding.model_validate(raw)


def resolve_codings(
    label_names: Mapping[int, str],
    lesion_labels: Sequence[int],
    *sources: Mapping[str, Any],
) -> dict[int, LabelCoding]:
    """The coding of every foreground label: the first source that codes it, else the default.

    Args:
        label_names: ``{value: name}`` (background 0 ignored).
        lesion_labels: lesion classes (their default is a lesion code).
        sources: ``{"<value>" or "<name>": LabelCoding | dict}`` mappings in priority order
            (workflow ``label_codes``, then the manifest's); keys naming no label are refused.

    Raises:
        ValueError: a source codes a label that does not exist, or its coding is invalid.
    """
    names = {int(v): str(n) for v, n in label_names.items() if int(v) != 0}
    known = {str(v) for v in names} | {n.casefold() for n in names.values()}
    for source in sources:
        unknown = [k for k in source if str(k) not in known and str(k).casefold() not in known]
        if unknown:
            raise ValueError(f"label codes for unknown labels {unknown}; labels are {names}")
    out: dict[int, LabelCoding] = {}
    for value, name in sorted(names.items()):
        coding = next((c for s in sources if (c := _given_for(value, name, s)) is not None), None)
        out[value] = coding or default_coding(name, value, lesion=value in set(lesion_labels))
    return out
