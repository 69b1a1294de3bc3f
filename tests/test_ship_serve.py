"""``gankit serve``: the page's API over real HTTP, bad requests, and the page in a browser."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gankit.cli import main
from gankit.kinds.tables import sample_rows
from gankit.run import Run, load_run
from gankit.ship.serve import Server, make_server, slerp

from .test_ship_export import tiny_run

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    folder = tmp_path_factory.mktemp("serve")
    return {f: load_run(tiny_run(folder, f)) for f in ("conditional", "clusters", "tabular")}


def serving(run: Run, max_samples: int = 64) -> Iterator[str]:
    server = make_server(run, "127.0.0.1", 0, max_samples)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def images(runs: dict[str, Run]) -> Iterator[str]:
    yield from serving(runs["conditional"])


@pytest.fixture(scope="module")
def table(runs: dict[str, Run]) -> Iterator[str]:
    yield from serving(runs["tabular"])


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET"
        ) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def get_json(url: str) -> tuple[int, dict]:
    status, body, _ = get(url)
    return status, json.loads(body)


def decode(url: str) -> np.ndarray:
    """A PNG data URL as a (H, W[, C]) array."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_samples_are_those_of_gankit_sample(images: str, runs: dict[str, Run]) -> None:
    run = runs["conditional"]
    status, info = get_json(images + "/api/info")
    assert status == 200 and info["kind"] == "images" and info["step"] == 2
    assert info["labels"] == [f"class {k}" for k in range(10)] and info["max_samples"] == 64
    status, body = get_json(images + "/api/samples?num=20&seed=5&label=")
    assert status == 200 and len(body["images"]) == 20
    want = run.sample(20, seed=5)  # the classes in order, as gankit sample draws them
    assert body["labels"] == run.labels(20).tolist()
    for url, img in zip(body["images"], want, strict=True):
        scale = decode(url).shape[0] // 28
        assert np.array_equal(decode(url)[::scale, ::scale], img[..., 0])
    _, three = get_json(images + "/api/samples?num=4&seed=5&label=3")
    assert three["labels"] == [3] * 4
    status, npz, headers = get(images + "/download?format=npz&num=20&seed=5")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    assert np.array_equal(np.load(io.BytesIO(npz))["images"], want)
    status, png, headers = get(images + "/download?format=png&num=20&seed=5")
    assert status == 200 and png.startswith(b"\x89PNG") and headers["Content-Type"] == "image/png"


def test_walk_runs_from_a_to_b(images: str, runs: dict[str, Run]) -> None:
    want = runs["conditional"].sample(10, seed=1)
    ends = []
    for t in (0, 1):
        status, body = get_json(images + "/api/walk?a_seed=1&a_num=10&a_index=2&b_seed=1&"
                                f"b_num=10&b_index=2&t={t}&label=")
        assert status == 200 and body["label"] == runs["conditional"].labels(10)[2]
        ends.append(decode(body["image"]))
    scale = ends[0].shape[0] // 28
    assert np.array_equal(ends[0][::scale, ::scale], want[2][..., 0])  # t = 0 is sample A
    assert np.array_equal(ends[0], ends[1])  # A = B: the path stays put
    _, mid = get_json(images + "/api/walk?a_seed=1&a_num=10&a_index=2&b_seed=2&b_num=10&"
                               "b_index=5&t=0.5&label=2")
    assert mid["label"] == 2 and not np.array_equal(decode(mid["image"]), ends[0])


def test_slerp_ends_and_norm() -> None:
    import torch

    a, b = torch.randn(64), torch.randn(64)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6)
    assert torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert abs(float(mid.norm()) - float((a.norm() + b.norm()) / 2)) < 0.2 * float(a.norm())


def test_tables_and_points(table: str, runs: dict[str, Run]) -> None:
    status, info = get_json(table + "/api/info")
    assert info["kind"] == "tables" and info["downloads"] == ["csv"]
    assert "city = Oslo" in info["labels"]
    _, body = get_json(table + "/api/samples?num=8&seed=4")
    assert body["columns"] == ["height", "age", "city", "smoker"] and len(body["rows"]) == 8
    status, csv, _ = get(table + "/download?format=csv&num=30&seed=4")
    assert status == 200
    got = pd.read_csv(io.BytesIO(csv))
    want = pd.read_csv(io.StringIO(sample_rows(runs["tabular"], 30, 4).to_csv(index=False)))
    pd.testing.assert_frame_equal(got, want)
    oslo = info["labels"].index("city = Oslo")
    _, walked = get_json(table + f"/api/walk?a_seed=4&a_num=8&a_index=0&b_seed=4&b_num=8&"
                                 f"b_index=1&t=0.3&label={oslo}")
    assert walked["label"] == oslo and len(walked["rows"]) == 1
    for url in serving(runs["clusters"]):
        _, info = get_json(url + "/api/info")
        assert info["kind"] == "points" and len(info["labels"]) == 4
        _, body = get_json(url + "/api/samples?num=50&seed=1")
        assert decode(body["plot"]).shape == (320, 320, 3) and len(body["labels"]) == 50
        _, walked = get_json(url + "/api/walk?a_seed=1&a_num=50&a_index=0&b_seed=1&b_num=50&"
                                   "b_index=1&t=0")
        point = runs["clusters"].sample(50, seed=1)[0]
        np.testing.assert_allclose(walked["point"], point, atol=1e-5)


@pytest.mark.parametrize("path, status, message", [
    ("/api/samples?num=1000000000", 400, "num must be between 1 and 64, got 1000000000"),
    ("/api/samples?num=65", 400, "between 1 and 64"),
    ("/api/samples?num=abc", 400, "whole number"),
    ("/api/samples?num=4&colour=red", 400, "unknown parameter 'colour'"),
    ("/api/samples?num=4&label=10", 400, "class 10 is not one of"),
    ("/api/samples?num=4&seed=-1", 400, "whole number"),
    ("/api/samples?num=4&&&=", 400, "malformed query"),
    ("/api/walk?a_seed=1&a_num=4&a_index=9&b_seed=1&b_num=4&b_index=0&t=0.5", 400, "a_index"),
    ("/api/walk?a_seed=1&a_num=4&a_index=0&b_seed=1&b_num=4&b_index=0&t=nan", 400, "t must"),
    ("/api/walk?a_seed=1", 400, "'a_num' is required"),
    ("/download?format=csv&num=4", 400, "format must be png or npz"),
    ("/config.toml", 404, "no such page"),
    ("/../../etc/passwd", 404, "no such page"),
    ("/app.js/../page.html", 404, "no such page"),
])
def test_bad_requests_get_a_4xx_with_a_message(images: str, path: str, status: int,
                                               message: str) -> None:
    got, body, _ = get(images + path)
    assert got == status and message in json.loads(body)["error"]
    assert get(images + "/api/samples?num=2")[0] == 200  # and the server keeps serving


def test_methods_hosts_and_garbage(images: str) -> None:
    status, body, _ = get(images + "/api/samples", method="POST")
    assert status == 405
    status, body, _ = get(images + "/api/info", headers={"Host": "attacker.example:80"})
    assert status == 403 and "Host" in json.loads(body)["error"]
    host, port = images.removeprefix("http://").split(":")
    for raw, code in ((b"NOT AN HTTP REQUEST", b"400"), (b"GET / HTTP/x.y", b"400"),
                      (b"BREW /pot HTTP/1.1\r\nConnection: close", b"405")):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(raw + b"\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):  # the whole answer: the server closes after an error
                reply += chunk
        assert code in reply.split(b"\n", 1)[0] or b"Error code: " + code in reply, reply
    status, page, headers = get(images + "/")
    assert status == 200 and b"New samples" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_port_in_use_is_one_line(runs: dict[str, Run], capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(runs["conditional"].path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"gankit: error: cannot listen on 127.0.0.1:{port}: the port is in use "
                   "(choose another with --port)\n")


@pytest.mark.parametrize("port, message", [("99999", "a port is at most 65535"),
                                           ("http", "is not an integer")])
def test_bad_ports_are_one_line(runs: dict[str, Run], port: str, message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["serve", str(runs["conditional"].path), "--port", port])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err


def test_server_binds_ipv4_by_default(runs: dict[str, Run]) -> None:
    server = make_server(runs["conditional"], port=0)
    try:
        assert isinstance(server, Server) and server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


# -- in a real browser ------------------------------------------------------------------------


def browser():  # noqa: ANN201  (playwright's types are optional)
    """Debian's chromium under Playwright; skips where either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.skip("no chromium installed (apt-get install chromium)")
    return sync_api


def settled(page) -> None:  # noqa: ANN001
    page.wait_for_function("document.body.dataset.pending === '0'", timeout=30_000)


def test_page_in_a_browser(images: str, table: str, tmp_path: Path) -> None:
    sync_api = browser()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            # bypass_csp: Playwright's own waits evaluate script text, which the page forbids
            page = b.new_page(viewport={"width": 1000, "height": 800}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(images + "/")
            page.wait_for_selector("#grid img.sample")
            settled(page)
            grid = page.locator("#grid img.sample")
            assert grid.count() == 64  # the page's default, capped at --max-samples
            first = [grid.nth(i).get_attribute("src") for i in range(4)]
            seed = page.locator("body").get_attribute("data-seed")
            page.click("#new")
            page.wait_for_function(f"document.body.dataset.seed !== '{seed}'")
            settled(page)
            assert [grid.nth(i).get_attribute("src") for i in range(4)] != first
            page.select_option("#label", "3")  # the class picker draws anew, all class 3
            settled(page)
            assert {grid.nth(i).get_attribute("title") for i in range(grid.count())} == {
                "class 3"}
            grid.nth(5).click()
            grid.nth(9).click()
            settled(page)
            assert "a" in (grid.nth(5).get_attribute("class") or "")
            assert "b" in (grid.nth(9).get_attribute("class") or "")
            walked = page.locator("#walk-view img").get_attribute("src")
            page.locator("#walk").fill("100")
            page.wait_for_function("document.querySelector('#walk-view').dataset.t === '1'")
            settled(page)
            assert page.locator("#walk-view img").get_attribute("src") != walked
            with page.expect_download() as download:
                page.click("#download-npz")
            with open(download.value.path(), "rb") as f:
                assert np.load(f)["images"].shape == (64, 28, 28, 1)
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            shot = np.asarray(Image.open(tmp_path / "page.png").convert("L"))
            assert shot.shape[1] == 1000 and shot.std() > 20  # a page, not a blank
            page.fill("#num", "1000000000")  # too many: capped by the page itself
            page.click("#new")
            settled(page)
            assert page.locator("#num").input_value() == "64"
            assert not errors and page.locator("#error").is_hidden()

            page.goto(table + "/")  # a table: rows, a category picker, a walk of rows
            page.wait_for_selector("#rows tr[data-index]")
            settled(page)
            rows = page.locator("#rows tr[data-index]")
            assert rows.count() == 20
            rows.nth(3).click()
            settled(page)
            before = page.locator("#walk-view").inner_text()
            page.locator("#walk").fill("70")
            page.wait_for_function("document.querySelector('#walk-view').dataset.t === '0.7'")
            assert page.locator("#walk-view td").count() == 4 and before
            assert not errors
        finally:
            b.close()
