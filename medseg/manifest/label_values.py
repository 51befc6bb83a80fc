"""Label values as stored in files -> the label values a data set trains on.

Label maps from image programs rarely hold ``0, 1, 2, ...``: a binary mask is usually saved as
0/255, a three-class mask as 0/128/255 greys. ``manifest build`` reads the distinct values of all
label files and decides once, for the whole data set (documented rule, README "2D images"):

* 0 is always background;
* the values already are the declared labels (``--label-names`` / ``labels.json`` keys, or
  ``1..K`` without names): kept as they are;
* otherwise, with ``K`` distinct non-zero values and either no names or exactly ``K`` declared
  foreground labels: the values in ascending order become the labels in ascending order
  (255 -> 1; 128 -> 1, 255 -> 2). The manifest records this as ``label_mapping`` and every reader
  of the manifest's labels (training, ``manifest check``, ``evaluate --ref MANIFEST``) applies it;
* any other case (more values than names, names that do not fit) is refused, naming the values;
* JPEG label files cannot hold exact values (lossy compression blurs every edge): they are read
  as binary masks, 0-127 background and 128-255 label 1 (or the one declared label).

Palette images hold palette indices, which usually are the labels already.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError

MAX_LABEL_VALUES = 64


def decide_label_mapping(
    values: Iterable[int], declared: Iterable[int] | None, *, lossy: bool = False
) -> dict[int, int]:
    """The ``{file value: label value}`` mapping of the rule above (empty: values kept).

    Args:
        values: distinct values found in the data set's label files.
        declared: declared foreground label values (``--label-names``), or None.
        lossy: the label files are JPEG (binary masks thresholded at 128).

    Raises:
        ConfigError: the values cannot be matched to the declared labels.
    """
    found = sorted({int(v) for v in values} - {0})
    names = sorted(set(declared or ()) - {0})
    if lossy:
        if len(names) > 1:
            raise ConfigError(
                f"JPEG label files can only hold one label; {len(names)} are declared",
                hint="save multi-class label maps as PNG or TIFF",
            )
        target = names[0] if names else 1
        mapping = {v: target if v >= 128 else 0 for v in range(1, 256)}  # every 8-bit value
        return {k: v for k, v in mapping.items() if k != v}
    if len(found) > MAX_LABEL_VALUES:
        raise ConfigError(
            f"the label files hold {len(found)} distinct values (e.g. {found[:5]}...); expected a "
            "few label values",
            hint="label maps must be lossless (PNG/TIFF, not JPEG) and hold one value per class",
        )
    wanted = names or list(range(1, len(found) + 1))
    if set(found) <= set(wanted):
        return {}
    if len(found) == len(wanted):
        return dict(zip(found, wanted))
    raise ConfigError(
        f"the label files hold the values {found}, which do not match the declared labels {names}",
        hint="declare one name per value found (--label-names 1=A,2=B maps them in ascending "
        "order) or fix the label files",
    )


def apply_label_mapping(
    array: npt.NDArray[np.integer], mapping: Mapping[int, int]
) -> npt.NDArray[np.integer]:
    """``array`` with each ``mapping`` key replaced by its value (other values unchanged)."""
    if not mapping:
        return array
    out = array.copy()
    for source, target in mapping.items():
        out[array == source] = target
    return out
