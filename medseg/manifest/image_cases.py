"""2D image files (PNG, JPEG, TIFF, BMP) as manifest cases: channels and pixel spacing.

* **Channels**: a data set is RGB (channels ``red``, ``green``, ``blue``, each an
  :class:`~medseg.io.image_files.ImageFileRef` component of the same file) when any of its image
  files is true colour; otherwise it is grey (one channel ``image``; colour files whose
  components are equal count as grey). Grey files in an RGB data set give their grey for each
  component.
* **Spacing** (per file, see :mod:`medseg.io.image_files`): a sidecar ``<name>.json`` wins, then
  ``--spacing``, then the file's own resolution; with none of them the case gets the warning
  ``unknown_spacing`` and 1 mm pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import ConfigError, DataError
from medseg.io import qc
from medseg.io.image_files import (
    RGB_CHANNELS,
    ImageFileRef,
    file_pixel_spacing,
    is_image_file,
    read_image_sidecar,
    read_pixels,
)
from medseg.io.qc import Issue

GREY_CHANNELS = ("image",)


@dataclass(frozen=True)
class ImageFacts:
    """What ``manifest build`` needs to know about one image file."""

    colour: bool
    has_sidecar_spacing: bool
    has_file_spacing: bool


def inspect_image(path: Path) -> ImageFacts:
    """Decode ``path`` once: true colour? spacing in a sidecar or in the file?

    Raises:
        DataError: unreadable image or sidecar.
    """
    pixels = read_pixels(path)
    return ImageFacts(
        colour=pixels.kind == "colour",
        has_sidecar_spacing="pixel_spacing_mm" in read_image_sidecar(path),
        has_file_spacing=file_pixel_spacing(pixels.dpi) is not None,
    )


@dataclass
class ImageCases:
    """The decisions for a data set's image files."""

    channels: tuple[str, ...]
    facts: dict[Path, ImageFacts]
    spacing: tuple[float, float] | None

    def sources(self, path: Path, root: Path) -> dict[str, str | ImageFileRef]:
        """``channel -> source`` of one case (paths relative to ``root``)."""
        relative = os.path.relpath(path, root)
        facts = self.facts.get(path)
        spacing = self.spacing if facts is not None and not facts.has_sidecar_spacing else None
        if self.channels == GREY_CHANNELS:
            if spacing is None:
                return {"image": relative}
            return {"image": ImageFileRef(path=relative, pixel_spacing_mm=spacing)}
        return {
            name: ImageFileRef(path=relative, component=k, pixel_spacing_mm=spacing)
            for k, name in enumerate(self.channels)
        }

    def issues(self, path: Path) -> list[Issue]:
        """The case's spacing warning, if any."""
        facts = self.facts.get(path)
        if facts is None or facts.has_sidecar_spacing or facts.has_file_spacing or self.spacing:
            return []
        return [
            qc.warning(
                "unknown_spacing",
                "no pixel spacing in the file (72/96 dpi display defaults ignored), no "
                "<name>.json sidecar and no --spacing: 1 mm pixels assumed, so distances, "
                "areas and volumes are in pixel units",
            )
        ]


def decide_image_cases(
    sources: Sequence[object], spacing: tuple[float, float] | None
) -> tuple[ImageCases, dict[Path, str]]:
    """Inspect the image files among the candidates' ``sources``; returns the decisions and the
    unreadable image files (with the reason).

    Raises:
        ConfigError: colour images mixed with volumes (the channels would not agree).
    """
    facts: dict[Path, ImageFacts] = {}
    unreadable: dict[Path, str] = {}
    for path in sources:
        if isinstance(path, Path) and path.is_file() and is_image_file(path):
            try:
                facts[path] = inspect_image(path)
            except DataError as err:
                unreadable[path] = err.message
    colour = any(f.colour for f in facts.values())
    volumes = [p for p in sources if not (isinstance(p, Path) and (p in facts or p in unreadable))]
    if colour and volumes:
        raise ConfigError(
            f"colour images are mixed with {len(volumes)} other scans (e.g. {volumes[0]}); an RGB "
            "data set needs every case to be a 2D image",
            hint="build separate manifests",
        )
    channels = RGB_CHANNELS if colour else GREY_CHANNELS
    return ImageCases(channels, facts, spacing), unreadable
