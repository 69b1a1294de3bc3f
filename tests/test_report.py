"""report.html: self-contained, with curves, grids, metrics and config; renders in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import gankit
from gankit.cli import main
from gankit.config import resolve
from gankit.errors import RunError
from gankit.metrics import evaluate
from gankit.report import render
from tests.test_trainer import TINY


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    cfg = resolve("classic", values={"train": {**TINY, "steps": 6}, "eval": {"every": 3,
                                                                              "num": 40}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate, "REFERENCE_MAX", 500)
        gankit.train(cfg, out=run, progress=False)
    assert main(["report", str(run)]) == 0
    return run / "report.html"


def test_self_contained_with_every_part(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count('class="grid"') == 2  # steps 3 and 6
    assert page.count('class="chart"') >= 2 + 8  # losses, D outputs, one per metric
    for text in ("Training curves", "Samples over time", "Final metrics", "Configuration",
                 "precision", "best checkpoint", "[train]", "step 6"):
        assert text in page


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RunError):
        render(tmp_path)
    assert main(["report", str(tmp_path / "none")]) == 2
    assert "not a gankit run" in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHECK = """<script>addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-check',
    imgs.length + ':' + imgs.filter(i => i.complete && i.naturalWidth > 0).length);
});</script>"""


def test_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    # A copy with a probe script that counts the images the browser actually decoded.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"),
                     encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120)
    match = re.search(r'data-check="(\d+):(\d+)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    total, loaded = map(int, match.groups())
    assert total >= 12 and loaded == total
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line
               or "Uncaught" in line]
    assert console == []

    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, cwd=tmp_path)
    with Image.open(shot) as im:
        assert im.size == (1200, 2400)
        assert len(im.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page


def test_guard_events_are_shown(report: Path, tmp_path: Path) -> None:
    from gankit import runlog

    run = tmp_path / "run"
    shutil.copytree(report.parent, run)
    assert "<h2>Events</h2>" not in report.read_text(encoding="utf-8")
    runlog.append(run / "metrics.jsonl", {
        "event": "divergence", "step": 4, "reason": "non_finite", "detail": "loss_d is nan",
        "action": "rollback", "rollback_to": 3, "retry": 1, "lr_g": 1e-4, "lr_d": 1e-4,
        "penalty_scale": 2.0})
    page = render(run)
    assert "<h2>Events</h2>" in page and "non_finite" in page and "rollback" in page
    assert "loss_d is nan" in page
