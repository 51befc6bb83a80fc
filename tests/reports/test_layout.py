"""What a reader sees: section order, modality-specific columns, print-resolution figures, no raw
"nan", and (in headless Chromium, when installed) no sideways scrolling at 1400 px."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from medseg.reports import load_prediction_set, write_reports
from tests.reports.conftest import check_html, write_predictions

CHROMIUM = next(
    (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
)


@pytest.fixture(scope="module")
def reports(
    synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Report folders of a tiny OCT cohort (2 visits) and a tiny CT cohort (2 visits)."""
    out = {}
    for kind, modality in (("oct", "OPT"), ("ct", "CT")):
        root = synth_dir(kind, "dicom", visits=2)
        pred = tmp_path_factory.mktemp(f"pred_{kind}")
        write_predictions(root, pred, modality=modality)
        out[kind] = tmp_path_factory.mktemp(f"layout_{kind}")
        list(write_reports(load_prediction_set(pred), out[kind]))
    return out


def _report(folder: Path) -> str:
    return next(folder.glob("*/report.html")).read_text(encoding="utf-8")


def _headers(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", html)]


def test_summary_then_figures_then_tables(reports: dict[str, Path]) -> None:
    html = _report(reports["oct"])
    summary = html.index('<section id="summary">')
    first_study = html.index('<section class="study"')
    figure = html.index("<figure", first_study)
    table = html.index("<table", first_study)
    assert summary < first_study < figure < table
    head = html[summary:first_study]
    assert "latest visit" in head and "Since last visit" in head and "Lesions" in head


def test_oct_and_ct_reports_have_their_own_columns(reports: dict[str, Path]) -> None:
    oct_html, ct_html = _report(reports["oct"]), _report(reports["ct"])
    oct_headers, ct_headers = set(_headers(oct_html)), set(_headers(ct_html))
    assert {"Eye", "Subfield", "B-scan", "Volume (nL)"} <= oct_headers
    assert not {"Eye", "CST (µm)", "Subfield", "B-scan", "B-scans", "Fovea"} & ct_headers
    assert {"Slice", "Long × short axis (mm)", "Volume (mm³)"} <= ct_headers
    assert "Mean / max (HU)" in ct_headers  # CT intensities have their unit
    assert "Inner superior" in oct_html and "inner_superior" not in oct_html
    assert "Scan direction: B-scan 0 is the most" in oct_html
    for html in (oct_html, ct_html):
        text = re.sub(r"<[^>]+>|data:image/png;base64,[A-Za-z0-9+/=]+", " ", html)
        assert not re.search(r"\bnan\b", text, re.I)
        assert not check_html(html).problems


def test_figures_are_print_resolution(reports: dict[str, Path]) -> None:
    """Every figure's PNG has >= 150 pixels per inch at its shown width (1 CSS px = 1/96 in)."""
    for kind in ("oct", "ct"):
        html = _report(reports[kind])
        figures = re.findall(r'<figure style="width: (\d+)px"><img alt="[^"]*" '
                             r'src="data:image/png;base64,([^"]+)"', html)  # fmt: skip
        assert len(figures) >= 3, kind
        for width_css, data in figures:
            png = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4))
            width_px = struct.unpack(">I", png[16:20])[0]
            assert width_px / int(width_css) * 96 >= 150, (kind, width_css, width_px)


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt install chromium)"
)
@pytest.mark.parametrize("page", ["index.html", "patient"])
def test_no_sideways_scrolling_at_1400_px(
    reports: dict[str, Path], tmp_path: Path, page: str
) -> None:
    source = (
        reports["oct"] / page
        if page == "index.html"
        else next(reports["oct"].glob("*/report.html"))
    )
    probe = tmp_path / "probe.html"
    probe.write_text(source.read_text(encoding="utf-8").replace(
        "</body>",
        "<script>document.body.insertAdjacentHTML('beforeend', '<p id=\"probe\">' + "
        "document.documentElement.scrollWidth + '</p>')</script></body>",
    ), encoding="utf-8")  # fmt: skip
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--window-size=1400,900", "--dump-dom",
               probe.as_uri()]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    width = int(re.search(r'<p id="probe">(\d+)</p>', dom).group(1))  # type: ignore[union-attr]
    assert width <= 1400


def test_a_smoke_model_with_hundreds_of_specks_lists_the_largest() -> None:
    """A study with 300 lesions lists the 40 largest in the HTML (all in lesions.csv)."""
    from medseg.reports import PatientReport, Provenance, StudyReport
    from medseg.reports.render import _EMPTY_LESION, render_html

    lesions = [
        _EMPTY_LESION.model_copy(update={"lesion_id": n, "label": 1, "label_name": "IRF",
                                         "volume_mm3": 0.0003 * n, "volume_nl": 0.3 * n})
        for n in range(1, 301)
    ]  # fmt: skip
    study = StudyReport(case_id="C1", modality="CT", lesions=lesions, shape=(4, 4, 4),
                        spacing_mm=(1.0, 1.0, 1.0))  # fmt: skip
    report = PatientReport(
        patient_id="P1", labels={"1": "IRF"}, lesion_labels=[1], studies=[study],
        provenance=Provenance(report_created="2024-01-01T00:00:00", report_medseg_version="0",
                              prediction_dir="p", notice="Smoke run: not a model."),
    )  # fmt: skip
    html = render_html(report, {})
    table = html[
        html.index('<table class="lesions">') : html.index(
            "</table>", html.index('<table class="lesions">')
        )
    ]
    ids = [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", table)]
    assert ids == list(range(261, 301))  # the 40 largest, in id order
    assert "The 40 largest of 300 lesions are listed" in html
    assert '<div class="notice">Smoke run: not a model.</div>' in html  # before any section
    assert html.index('class="notice"') < html.index('<section id="summary">')
