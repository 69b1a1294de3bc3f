"""``gankit serve``: a local web page that samples from a run.

Built on the standard library's ``http.server`` (no new dependency): the page needs five fixed
routes and JSON, and a route table means no part of a request's path ever reaches the file
system. The page, its script and its style are package files read by name.
"""

from __future__ import annotations

import errno
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


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between noise vectors (keeps a Gaussian draw's typical norm)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-6:
        return a + t * (b - a)
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / s


class Studio:
    """What the page asks of a run: samples, walks between two of them, downloads; what they
    look like is the run's kind's to say (``kinds.base.View``).

    Samples for (num, seed, label) are those of ``gankit sample --num --seed --class``; every
    count is capped at ``max_samples``. Generation is serialised by a lock.
    """

    def __init__(self, run: Run, max_samples: int = 1024) -> None:
        self.run = run
        self.view = run.kind.view(run)
        self.max_samples = max_samples
        self.lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        """The run as the page describes it."""
        run = self.run
        num = min(self.view.page_num, self.max_samples)
        return {"run": run.path.resolve().name, "step": run.step, "kind": run.kind.name,
                "family": run.config.model.family, "shape": list(run.generator.image_shape),
                "labels": self.view.choices(), "max_samples": self.max_samples, "num": num,
                "downloads": list(self.view.downloads)}

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
        option; None: as ``gankit sample`` draws them)."""
        cond = self.run.conditioning  # a table's condition vectors; else labels, or none
        if cond is None:
            try:
                return self.run.labels(num, label, seed)
            except GankitError as e:
                raise RequestError(str(e)) from None
        if label is None:
            return cond.sample(num, torch.Generator().manual_seed(derive_seeds(seed, 1)[0]))
        if not 0 <= label < cond.vector_dim:
            raise RequestError(f"condition {label} is not one of 0..{cond.vector_dim - 1}")
        return cond.vectors(torch.full((num,), label, dtype=torch.int64))

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

    def columns(self, num: int, label: int | None) -> int:
        """Grid columns: one row per class unless one class is asked for (0: square)."""
        return 0 if label is not None else self.run.grid_columns(num)

    @staticmethod
    def label_list(y: torch.Tensor | None) -> list[int] | None:
        """Each sample's label, or its condition vector's option, for the page."""
        if y is None:
            return None
        return (y.argmax(1) if y.ndim == 2 else y).tolist()

    def samples(self, num: int, seed: int, label: int | None) -> dict[str, Any]:
        """A grid of samples as the run's kind shows it."""
        x, y = self.draw(num, seed, label)
        return {"seed": seed, "num": num, "labels": self.label_list(y),
                **self.view.grid(x, self.columns(num, label))}

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
        if label is None:
            ya = self.conditions(a.num, a.seed, None)
            y = None if ya is None else ya[a.index:a.index + 1]
        else:
            y = self.conditions(1, a.seed, label)
        x = self.generate(slerp(za[a.index], zb[b.index], t)[None], y)

        def context() -> tuple[torch.Tensor, torch.Tensor]:  # A's grid and the walk's ends
            ends = torch.stack([za[a.index], zb[b.index]])
            return (self.draw(a.num, a.seed, None)[0],
                    self.generate(ends, None if y is None else y.expand(2, *y.shape[1:])))

        label_out = None if y is None else self.label_list(y)[0]
        return {"t": t, "label": label_out, **self.view.walked(x, context)}

    def download(self, fmt: str, num: int, seed: int, label: int | None
                 ) -> tuple[str, str, bytes]:
        """(content type, file name, bytes) of ``num`` samples in format ``fmt``."""
        if fmt not in self.view.downloads:
            raise RequestError(f"format must be {' or '.join(self.view.downloads)} for a run "
                               f"that makes {self.run.kind.name}, got '{fmt}'")
        x, _ = self.draw(num, seed, label)
        ctype, suffix, body = self.view.download(fmt, x, self.columns(num, label))
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.run.path.resolve().name) or "run"
        return ctype, f"{name}-step{self.run.step}-seed{seed}{suffix}", body


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
    except OverflowError as e:  # a port past 65535
        raise GankitError(f"cannot listen on {host}:{port}: {e}") from None
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
