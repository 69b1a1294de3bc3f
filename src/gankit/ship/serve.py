"""``gankit serve``: a local web page that samples from a run.

Built on the standard library's ``http.server`` (no new dependency): the page needs five fixed
routes and JSON, and a route table means no part of a request's path ever reaches the file
system. The page, its script and its style are package files read by name.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import math
import re
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import torch

from ..errors import GankitError
from ..run import Run, load_run
from ..training.trainer import derive_seeds

CHUNK = 1024  # samples per generator call, as Run.generate draws them
SEED_MAX = 2**63 - 1
STATIC = {"/": ("page.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RequestError(GankitError):
    """A request the page cannot answer: HTTP 400 with the message."""


@dataclass(frozen=True)
class Pick:
    """One sample of a grid: the ``index``-th of ``num`` drawn from ``seed``."""

    seed: int
    num: int
    index: int


def data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between noise vectors (keeps a Gaussian draw's typical norm)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-6:
        return a + t * (b - a)
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / s


class Studio:
    """What the page asks of a run: samples, walks between two of them, downloads.

    Samples for (num, seed, label) are those of ``gankit sample --num --seed --class``; every
    count is capped at ``max_samples``. Generation is serialised by a lock.
    """

    def __init__(self, run: Run, max_samples: int = 1024) -> None:
        self.run = run
        self.max_samples = max_samples
        self.lock = threading.Lock()
        self.kind = "tables" if run.codec is not None else ("images" if run.is_image
                                                            else "points")

    # -- what the run offers ---------------------------------------------------------------

    def label_names(self) -> list[str] | None:
        """The names of the picker's choices: classes, clusters or a table's categories."""
        run = self.run
        if run.num_classes:
            what = "cluster" if run.self_conditioned else "class"
            return [f"{what} {k}" for k in range(run.num_classes)]
        if self.kind == "tables" and run.conditioning is not None:
            from .export import condition_options

            return [f"{o['column']} = {o['value']}" for o in condition_options(run)]
        return None

    def info(self) -> dict[str, Any]:
        """The run as the page describes it."""
        run = self.run
        default = {"images": min(100 if run.grid_columns(100) else 36, self.max_samples),
                   "points": min(1000, self.max_samples), "tables": min(20, self.max_samples)}
        return {"run": run.path.resolve().name, "step": run.step, "kind": self.kind,
                "family": run.config.model.family, "shape": list(run.generator.image_shape),
                "labels": self.label_names(), "max_samples": self.max_samples,
                "num": default[self.kind], "columns": run.grid_columns(default[self.kind]),
                "downloads": ["csv"] if self.kind == "tables" else ["png", "npz"]}

    # -- drawing ---------------------------------------------------------------------------

    def check_num(self, num: int) -> int:
        """``num`` if within 1..max_samples, else RequestError."""
        if not 1 <= num <= self.max_samples:
            raise RequestError(f"num must be between 1 and {self.max_samples}, got {num}")
        return num

    def noise(self, num: int, seed: int) -> torch.Tensor:
        """The noise of ``num`` samples from ``seed`` (as ``Run.generate`` draws it)."""
        gen = torch.Generator().manual_seed(seed)
        dim = self.run.generator.latent_dim
        chunks = [torch.randn(min(CHUNK, num - s), dim, generator=gen)
                  for s in range(0, num, CHUNK)]
        return torch.cat(chunks) if chunks else torch.empty(0, dim)

    def conditions(self, num: int, seed: int, label: int | None) -> torch.Tensor | None:
        """The labels or condition vectors of ``num`` samples (``label``: the picker's
        choice; None: as ``gankit sample`` draws them)."""
        run = self.run
        if self.kind != "tables":
            try:
                return run.labels(num, label, seed)
            except GankitError as e:
                raise RequestError(str(e)) from None
        cond = run.conditioning
        if cond is None:
            if label is not None:
                raise RequestError("this table run is not conditioned: it has no categories")
            return None
        if label is not None:
            if not 0 <= label < cond.vector_dim:
                raise RequestError(f"condition {label} is not one of 0..{cond.vector_dim - 1}")
            return cond.vectors(torch.full((num,), label, dtype=torch.int64))
        return cond.sample(num, torch.Generator().manual_seed(derive_seeds(seed, 1)[0]))

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The generator's raw output for noise ``z`` and conditions ``y``."""
        with self.lock:
            out = [self.run.generator(z[s:s + CHUNK], None if y is None else y[s:s + CHUNK])
                   for s in range(0, len(z), CHUNK)]
        return torch.cat(out)

    def draw(self, num: int, seed: int, label: int | None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(raw samples, their conditions) for ``num`` samples from ``seed``."""
        self.check_num(num)
        y = self.conditions(num, seed, label)
        return self.generate(self.noise(num, seed), y), y

    def as_uint8(self, x: torch.Tensor) -> np.ndarray:
        """Images as uint8 (N, H, W, C)."""
        from ..images import to_uint8

        return to_uint8(x, self.run.value_range)

    def frame(self, x: torch.Tensor) -> dict[str, Any]:
        """A table's decoded rows as JSON values (columns, rows)."""
        df = self.run.codec.decode(x)
        split = json.loads(df.to_json(orient="split", index=False, date_format="iso",
                                      date_unit="s"))
        return {"columns": split["columns"], "rows": split["data"]}

    @staticmethod
    def label_list(y: torch.Tensor | None) -> list[int] | None:
        """Per-sample label (or a condition vector's option) for the page."""
        if y is None:
            return None
        return (y.argmax(1) if y.ndim == 2 else y).tolist()

    def samples(self, num: int, seed: int, label: int | None) -> dict[str, Any]:
        """A grid: images (PNG data URLs), a scatter plot of points, or a table's rows."""
        x, y = self.draw(num, seed, label)
        out: dict[str, Any] = {"seed": seed, "num": num, "labels": self.label_list(y)}
        if self.kind == "images":
            from ..images import png_bytes

            imgs = self.as_uint8(x)
            scale = max(1, 64 // imgs.shape[1])
            out["images"] = [data_url(png_bytes(im, scale)) for im in imgs]
            out["columns"] = 0 if label is not None else self.run.grid_columns(num)
        elif self.kind == "points":
            out["plot"] = data_url(self.plot(x.numpy()))
        else:
            out.update(self.frame(x))
        return out

    def walk(self, a: Pick, b: Pick, t: float, label: int | None) -> dict[str, Any]:
        """The sample at ``t`` in [0, 1] on the spherical path from noise ``a`` to ``b``,
        with the conditions of ``label`` (None: those ``a`` was drawn with)."""
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise RequestError(f"t must be between 0 and 1, got {t}")
        za, zb = (self.noise(self.check_num(p.num), p.seed) for p in (a, b))
        for name, p in (("a", a), ("b", b)):
            if not 0 <= p.index < p.num:
                raise RequestError(f"{name}_index must be between 0 and {p.num - 1}, "
                                   f"got {p.index}")
        z = slerp(za[a.index], zb[b.index], t)[None]
        if label is None:
            ya = self.conditions(a.num, a.seed, None)
            y = None if ya is None else ya[a.index:a.index + 1]
        else:
            y = self.conditions(1, a.seed, label)
        x = self.generate(z, y)
        out: dict[str, Any] = {"t": t, "label": None if y is None else self.label_list(y)[0]}
        if self.kind == "images":
            from ..images import png_bytes

            img = self.as_uint8(x)[0]
            out["image"] = data_url(png_bytes(img, max(1, 192 // img.shape[0])))
        elif self.kind == "points":
            grid, _ = self.draw(a.num, a.seed, None)
            ends = self.generate(torch.stack([za[a.index], zb[b.index]]),
                                 None if y is None else y.expand(2, *y.shape[1:]))
            out["plot"] = data_url(self.plot(grid.numpy(), ends.numpy(), x.numpy()[0]))
            out["point"] = [round(float(v), 6) for v in x[0]]
        else:
            out.update(self.frame(x))
        return out

    def plot(self, points: np.ndarray, ends: np.ndarray | None = None,
             here: np.ndarray | None = None) -> bytes:
        """A scatter plot of 2-D ``points`` (PNG): the walk's ends (A, B) and its point."""
        from PIL import Image, ImageDraw

        from ..images import png_bytes, points_extent, scatter

        extent = points_extent(points)
        size = 320
        pil = Image.fromarray(scatter(points[:, :2], extent, size))
        draw = ImageDraw.Draw(pil)

        def px(p: np.ndarray) -> tuple[float, float]:
            return ((p[0] / extent + 1) * 0.5 * (size - 1),
                    (1 - (p[1] / extent + 1) * 0.5) * (size - 1))

        for p, color in [*((e, (40, 160, 60)) for e in (ends if ends is not None else [])),
                         *([(here, (220, 40, 40))] if here is not None else [])]:
            x, y = px(p)
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], outline=color, width=2)
        return png_bytes(np.asarray(pil))

    def download(self, fmt: str, num: int, seed: int, label: int | None
                 ) -> tuple[str, str, bytes]:
        """(content type, file name, bytes) of ``num`` samples: PNG or NPZ (images, points),
        CSV (tables), as ``gankit sample`` writes them."""
        allowed = self.info()["downloads"]
        if fmt not in allowed:
            raise RequestError(f"format must be {' or '.join(allowed)} for a run that makes "
                               f"{self.kind}, got '{fmt}'")
        x, _ = self.draw(num, seed, label)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.run.path.resolve().name) or "run"
        stem = f"{name}-step{self.run.step}-seed{seed}"
        if fmt == "csv":
            return ("text/csv; charset=utf-8", f"{stem}.csv",
                    self.run.codec.decode(x).to_csv(index=False).encode("utf-8"))
        if fmt == "png":
            from ..images import make_grid, png_bytes

            if self.kind == "points":
                return "image/png", f"{stem}.png", self.plot(x.numpy())
            cols = 0 if label is not None else self.run.grid_columns(num)
            return "image/png", f"{stem}.png", png_bytes(make_grid(self.as_uint8(x), cols))
        buf = io.BytesIO()
        if self.kind == "images":
            np.savez_compressed(buf, images=self.as_uint8(x))
        else:
            np.savez_compressed(buf, samples=x.numpy().astype(np.float32))
        return "application/octet-stream", f"{stem}.npz", buf.getvalue()


# -- HTTP ------------------------------------------------------------------------------------


class Query:
    """A request's query parameters, each read once with its type and bounds checked."""

    def __init__(self, text: str, allowed: tuple[str, ...]) -> None:
        try:
            fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text),
                              max_num_fields=32)
        except ValueError as e:
            raise RequestError(f"malformed query: {e}") from None
        unknown = sorted(set(fields) - set(allowed))
        if unknown:
            raise RequestError(f"unknown parameter '{unknown[0]}' (this route takes "
                               f"{', '.join(allowed) or 'none'})")
        self.fields = {k: v[-1] for k, v in fields.items()}

    def int(self, name: str, default: int | None = None, low: int = 0,
            high: int = SEED_MAX) -> int:
        text = self.fields.get(name, "")
        if text == "":
            if default is None:
                raise RequestError(f"parameter '{name}' is required")
            return default
        if not re.fullmatch(r"[0-9]{1,19}", text.strip()):
            raise RequestError(f"{name} must be a whole number from {low} to {high}, "
                               f"got '{text[:40]}'")
        value = int(text)
        if not low <= value <= high:
            if name == "num":  # the cap's own message
                raise RequestError(f"num must be between 1 and {high}, got {value}")
            raise RequestError(f"{name} must be from {low} to {high}, got {value}")
        return value

    def label(self) -> int | None:
        text = self.fields.get("label", "")
        return None if text in ("", "any") else self.int("label")

    def float(self, name: str) -> float:
        text = self.fields.get(name, "")
        try:
            return float(text)
        except ValueError:
            raise RequestError(f"{name} must be a number, got '{text[:40]}'") from None

    def text(self, name: str) -> str:
        return self.fields.get(name, "")


def host_allowed(host: str, port: int, header: str) -> bool:
    """Whether a request's Host ``header`` fits a server on ``host``:``port``: on a loopback
    address only the loopback's names at that port (so a page elsewhere cannot reach the
    server by DNS rebinding), anything elsewhere."""
    if host not in LOOPBACK:
        return True
    return header in {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}


def make_handler(studio: Studio, host: str) -> type[BaseHTTPRequestHandler]:
    """The request handler of a server for ``studio`` listening on ``host``."""
    cap = studio.max_samples

    def api_info(q: Query) -> dict[str, Any]:
        return studio.info()

    def api_samples(q: Query) -> dict[str, Any]:
        return studio.samples(q.int("num", high=cap, low=1), q.int("seed", 0), q.label())

    def api_walk(q: Query) -> dict[str, Any]:
        a, b = (Pick(q.int(f"{p}_seed"), q.int(f"{p}_num", low=1, high=cap),
                     q.int(f"{p}_index")) for p in ("a", "b"))
        return studio.walk(a, b, q.float("t"), q.label())

    api: dict[str, tuple[Callable[[Query], dict[str, Any]], tuple[str, ...]]] = {
        "/api/info": (api_info, ()),
        "/api/samples": (api_samples, ("num", "seed", "label")),
        "/api/walk": (api_walk, ("a_seed", "a_num", "a_index", "b_seed", "b_num", "b_index",
                                 "t", "label")),
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "gankit"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  quiet
            pass

        def send(self, status: int, ctype: str, body: bytes,
                 extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {**HEADERS, "Content-Type": ctype,
                               "Content-Length": str(len(body)), **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_json(self, status: int, value: Any) -> None:
            self.send(status, "application/json", json.dumps(value).encode("utf-8"))

        def fail(self, status: int, message: str) -> None:
            self.send_json(status, {"error": message})

        def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
            try:
                self.route()
            except RequestError as e:
                self.fail(HTTPStatus.BAD_REQUEST, str(e))
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as e:  # noqa: BLE001  the server keeps serving
                self.fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {e}")

        do_HEAD = do_GET  # noqa: N815

        def refuse(self) -> None:
            self.fail(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not allowed; "
                                                     "the page only reads (GET)")

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # any other method: 405, not http.server's 501
                return self.refuse
            raise AttributeError(name)

        def route(self) -> None:
            port = self.server.server_address[1]
            if not host_allowed(host, port, self.headers.get("Host", "")):
                return self.fail(HTTPStatus.FORBIDDEN, "unexpected Host header")
            url = urlsplit(self.path)
            if url.path in STATIC:
                name, ctype = STATIC[url.path]
                body = resources.files(__package__).joinpath(name).read_bytes()
                return self.send(HTTPStatus.OK, ctype, body)
            if url.path in api:
                fn, params = api[url.path]
                return self.send_json(HTTPStatus.OK, fn(Query(url.query, params)))
            if url.path == "/download":
                q = Query(url.query, ("format", "num", "seed", "label"))
                ctype, filename, body = studio.download(q.text("format"),
                                                        q.int("num", low=1, high=cap),
                                                        q.int("seed", 0), q.label())
                return self.send(HTTPStatus.OK, ctype, body,
                                 {"Content-Disposition": f'attachment; filename="{filename}"'})
            self.fail(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:80]}")

    return Handler


class Server(ThreadingHTTPServer):
    """A threading HTTP server that binds without a reverse DNS look-up."""

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is no error; anything else is one line, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            print(f"gankit: serve: request from {client_address[0]} failed: {error}",
                  file=sys.stderr)


def make_server(run: Run, host: str = "127.0.0.1", port: int = 8765,
                max_samples: int = 1024) -> Server:
    """A server for ``run`` listening on ``host``:``port`` (0: any free port), not yet
    serving; GankitError (one line) when it cannot listen there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    cls = type("Server", (Server,), {"address_family": family})
    try:
        server = cls((host, port), make_handler(Studio(run, max_samples), host))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise GankitError(f"cannot listen on {host}:{port}: the port is in use "
                              "(choose another with --port)") from None
        raise GankitError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return server


def serve(run_path: str, host: str = "127.0.0.1", port: int = 8765, max_samples: int = 1024,
          ema: bool = True, say: Callable[[str], None] = print) -> None:
    """Serve the page for run ``run_path`` until Ctrl-C."""
    run = load_run(run_path, ema=ema)
    server = make_server(run, host, port, max_samples)
    shown = f"[{host}]" if ":" in host else host
    say(f"gankit: serving run {run.path} (step {run.step}) at "
        f"http://{shown}:{server.server_address[1]}/ ; Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("gankit: stopped")
    finally:
        server.server_close()
