"""The incident report page in a real browser: headless Chromium renders it from a file:// URL
with no network, the screenshot is not blank (the charts' colours are on it) and the DOM Chromium
built holds the chart SVGs with their paths and bars; a hostile incident builds no script element.

Chromium comes from scripts/setup.sh (the Debian package `chromium`). Without it the test is skipped
on a workstation, and fails in CI (``CI`` set), where setup.sh must have installed it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `pytest` run without installing the package
    sys.path.insert(0, str(_ROOT))

from agent.rca.report import render_report  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; scripts/setup.sh installs it (apt-get install chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium, or bash scripts/setup.sh); "
                    "CI runs this test")
    return exe


def browse(exe: str, tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One headless Chromium run with its own profile, no network beyond the file."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'profile'}", *args, url]
    res = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, env={**os.environ, "HOME": str(tmp)})
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    return res


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced RGB/RGBA PNG (the PNG spec, zlib)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if filt == 1:    # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif filt == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif filt == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif filt == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert filt == 0, f"bad PNG filter {filt}"
        rows.append(bytes(line))
        prev = line
    return width, height, [r if bpp == 3 else bytes(b for i, b in enumerate(r) if i % 4 != 3) for r in rows]


def near(px: tuple[int, int, int], colour: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, colour))


def incident() -> dict[str, Any]:
    wins = [{"window_id": w, "value": v, "lo": v - 0.02, "hi": v + 0.02, "n": 5000}
            for w, v in zip(range(6, 16), [0.861, 0.858, 0.864, 0.857, 0.86, 0.855, 0.80, 0.74, 0.72, 0.71])]
    return {
        "id": "inc-3", "model": "car-loan", "kind": "performance_drop", "severity": "critical", "status": "open",
        "first_window": 12, "last_window": 15, "summary": "roc_auc 0.71 below reference 0.86",
        "evidence": {"metric": "roc_auc", "value": 0.71, "reference": 0.86, "windows": [12, 13, 14, 15]},
        "rca": {
            "status": "done", "seconds": 2.4, "started_at": 1764580000.0, "finished_at": 1764580002.4,
            "evaluate": {"metric": "roc_auc", "reference": {"value": 0.86, "lo": 0.85, "hi": 0.87},
                         "current": {"value": 0.71, "lo": 0.69, "hi": 0.73}, "drop": {"value": 0.15, "lo": 0.13, "hi": 0.17},
                         "expected": {"value": 0.84, "lo": 0.83, "hi": 0.85},
                         "covariate_part": {"value": 0.02, "lo": 0.01, "hi": 0.03},
                         "concept_part": {"value": 0.13, "lo": 0.11, "hi": 0.15},
                         "n_reference": 50000, "n_current": 20000, "ess": 31000.0, "since_window": 12, "windows": wins},
            "slices": [
                {"predicates": [["salary_range", "20K - 40K €"], ["loan_length", "[10, 12)"]], "support": 812, "error": 0.41,
                 "rest_error": 0.12, "degradation": 0.29, "p_adjusted": 1e-28, "significant": True, "ci": [0.38, 0.44],
                 "reference_error": 0.11},
                {"predicates": [["employment", "self-employed"]], "support": 2210, "error": 0.22, "rest_error": 0.13,
                 "degradation": 0.09, "p_adjusted": 0.004, "significant": True, "ci": [0.2, 0.24], "reference_error": 0.12},
                {"predicates": [["region", "north"]], "support": 400, "error": 0.15, "rest_error": 0.14,
                 "degradation": 0.01, "p_adjusted": 0.62, "significant": False, "ci": [0.12, 0.19], "reference_error": 0.14}],
            "causes": [
                {"cause": "concept_drift", "feature": None, "segment": "salary_range=20K - 40K €", "confidence": 0.82,
                 "summary": "inputs explain 0.02 of the 0.15 drop; P(y|x) moved in salary_range=20K - 40K €",
                 "evidence": {"concept_part": 0.13, "slice_support": 812, "ci": [0.11, 0.15],
                              "test": {"method": "conditional", "p": 1e-12}}},
                {"cause": "covariate_shift", "feature": "car_value", "segment": None, "confidence": 0.35,
                 "summary": "car_value moved up (PSI 0.41) but explains little of the drop",
                 "evidence": {"psi": 0.41, "covariate_part": 0.02}}],
            "actions": [
                {"action": "retrain", "segments": ["salary_range=20K - 40K €"], "exclude_ids": [],
                 "reason": "concept drift in one segment: retrain on recent labelled data, weighted to it"},
                {"action": "relabel", "ids": [f"a{i}" for i in range(130)],
                 "reason": "labels disagree with a confident model on these rows"}],
            "distributions": {
                "car_value": {"kind": "numeric", "levels": ["[-inf, 1e4)", "[1e4, 2e4)", "[2e4, inf)"],
                              "reference": [0.3, 0.4, 0.3], "current": [0.1, 0.2, 0.7]},
                "salary_range": {"kind": "categorical",
                                 "levels": ["0 - 20K €", "20K - 40K €", "40K - 60K €", "60K+ €", "__other__"],
                                 "reference": [0.4, 0.3, 0.15, 0.1, 0.05], "current": [0.2, 0.55, 0.1, 0.1, 0.05]},
                "loan_length": {"kind": "numeric", "levels": [f"[{i}, {i + 2})" for i in range(0, 24, 2)],
                                "reference": [.05, .1, .15, .2, .15, .1, .08, .06, .05, .03, .02, .01],
                                "current": [.04, .08, .1, .12, .1, .3, .1, .06, .04, .03, .02, .01]}}}}


def write_page(tmp: Path, inc: dict[str, Any]) -> Path:
    page = tmp / "report.html"
    page.write_text(render_report(inc), encoding="utf-8")
    return page


def test_chromium_renders_the_report_with_its_charts(chromium: str, tmp_path: Path) -> None:
    page = write_page(tmp_path, incident())
    shot = tmp_path / "report.png"
    browse(chromium, tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1200,2000")
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    pixels = Counter((r[i], r[i + 1], r[i + 2]) for r in rows[::2] for i in range(0, len(r), 6))   # every 2nd pixel
    total = sum(pixels.values())
    not_white = total - sum(n for px, n in pixels.items() if min(px) >= 245)
    assert len(pixels) > 200, f"only {len(pixels)} colours: a blank page?"
    assert not_white / total > 0.05, f"{not_white / total:.1%} of the page is not white"
    # the charts' own colours are on the screen: the current bars, the metric line, the severity bar
    for name, colour, least in (("current bars", (0xE8, 0x59, 0x0C), 2000), ("metric line", (0x1F, 0x5F, 0xBF), 100),
                                ("critical red", (0xC9, 0x2A, 0x2A), 100)):
        n = sum(k for px, k in pixels.items() if near(px, colour))
        assert n >= least, f"{name}: {n} pixels of {colour}"

    dom = browse(chromium, tmp_path, page.as_uri(), "--dump-dom").stdout.decode()
    assert "<svg" in dom
    from html.parser import HTMLParser

    class Svgs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[dict[str, str | None]] = []
            self.found: dict[str, Counter[str]] = {}
            self.scripts = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            self.scripts += tag == "script"
            if tag == "svg":
                self.stack.append(a)
                key = a.get("data-feature") or a.get("id") or "?"
                self.found[key] = Counter()
            elif self.stack:
                key = self.stack[-1].get("data-feature") or self.stack[-1].get("id") or "?"
                self.found[key][f"{tag}.{(a.get('class') or '').replace(' ', '.')}"] += 1

        def handle_endtag(self, tag: str) -> None:
            if tag == "svg" and self.stack:
                self.stack.pop()

    svgs = Svgs()
    svgs.feed(dom)
    assert svgs.scripts == 0
    metric = svgs.found["metric-chart"]
    assert metric["path.band"] == 1 and metric["path.line"] == 1 and metric["circle."] == 10
    assert metric["line.reference"] == 2     # the line and its legend entry
    for feature, d in incident()["rca"]["distributions"].items():
        bars = svgs.found[feature]
        assert bars["rect.bar.reference"] == bars["rect.bar.current"] == len(d["levels"]), (feature, bars)


def test_chromium_builds_no_script_from_a_hostile_incident(chromium: str, tmp_path: Path) -> None:
    evil = '"><script>document.title="pwned"</script><img src=x onerror=alert(1)>'
    inc = incident()
    inc["summary"] = inc["model"] = evil
    inc["rca"]["distributions"][evil] = {"levels": [evil, "b"], "reference": [0.5, 0.5], "current": [0.2, 0.8]}
    inc["rca"]["slices"][0]["predicates"] = [[evil, evil]]
    inc["rca"]["causes"][0]["summary"] = evil
    page = write_page(tmp_path, inc)
    dom = browse(chromium, tmp_path, page.as_uri(), "--dump-dom").stdout.decode()
    assert "<script" not in dom and "<img" not in dom
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.strip() != "pwned"                                   # no script ran
    assert 'document.title="pwned"' in dom.replace("&quot;", '"')    # shown as text


def test_chromium_renders_a_real_analysis(chromium: str, tmp_path: Path) -> None:
    """The page of an analysis the code produced (planted concept drift in one car-loan segment,
    six windows), not a hand-written one: its metric chart and the implicated distributions render."""
    import orjson

    from tests.support.planted import analyse_scenario, plant

    sc = plant("concept_drift", "car_loan", seed=0, n_current=3000)
    sc.current["__window__"] = sc.current.index // 500
    report = analyse_scenario(sc, n_boot=50, window_column="__window__")
    rca = orjson.loads(orjson.dumps({"status": "done", **report.to_dict()}, option=orjson.OPT_SERIALIZE_NUMPY))
    inc = {"id": "inc-7", "model": "car-loan", "kind": "performance_drop", "severity": "critical", "status": "open",
           "first_window": 0, "last_window": 5, "summary": "planted", "rca": rca}
    page = write_page(tmp_path, inc)
    dom = browse(chromium, tmp_path, page.as_uri(), "--dump-dom").stdout.decode()
    assert 'id="metric-chart"' in dom and dom.count('class="bar current"') >= 2
    for feature in rca["distributions"]:
        assert f'data-feature="{feature}"' in dom
    assert "salary_range" in rca["distributions"]
    shot = tmp_path / "real.png"
    browse(chromium, tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1200,2000")
    _, _, rows = decode_png(shot.read_bytes())
    colours = {(r[i], r[i + 1], r[i + 2]) for r in rows[::4] for i in range(0, len(r), 12)}
    assert len(colours) > 100, f"{len(colours)} colours: a blank page?"
