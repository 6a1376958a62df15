"""The HTTP side of ``python -m scratchnet.serve``: a fixed table of routes over the standard library's server.

    GET  /               the page (index.html, app.js, style.css: files of this package, nothing else)
    GET  /api/model      the model's name, classes, parameter count, and where corrections are saved
    POST /api/predict    an image (PNG or JPEG bytes) -> label, index, probabilities, classes, the 28x28
                         input; ``?features=1`` adds the first conv layer's feature maps
    POST /api/correct    ``?label=L`` and the image -> saved as <folder>/<L>/NNNN.png (L one of the classes)
    POST /api/reload     load the model file again (after fine-tuning wrote it)

Every answer is JSON (errors too: ``{"error": "one line"}``) and carries a Content-Security-Policy. Nothing
in a request becomes a file path: the static files are a fixed table and a saved label must be one of the
model's classes. The Host header must name this server (an IP address, localhost, or the name it was
started with), so a web page that re-points its own domain at 127.0.0.1 (DNS rebinding) gets 403, and a
POST whose Origin is another site gets 403 too.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np

from scratchnet import imageprep
from scratchnet.predict import ModelLoadError

from . import images
from .corrections import Corrections
from .reader import ClassesError, Reader

#: How many of the most likely classes the answer lists under "top".
TOP_K = 5
#: Seconds a connection may stay silent (a slow or stuck client must not hold a thread for ever).
SOCKET_TIMEOUT = 30
#: After refusing a body as too large, read and drop at most this much of it, so that a client that sends
#: the whole body before reading the answer gets the 413 instead of a reset connection.
DRAIN_BYTES = 32 * 1024 * 1024

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A request answered with an error status and a one-line JSON message; ``unread`` bytes of its body
    are still on the wire (read and dropped after answering)."""

    def __init__(self, status: int, message: str, *, unread: int = 0):
        super().__init__(message)
        self.status, self.unread = status, unread


class App:
    """What the handler serves: the model (a :class:`Reader`), the corrections folder, the page's files,
    and the host names this server answers to."""

    def __init__(self, reader: Reader, corrections: Corrections, host: str, *, verbose: bool = False):
        self.reader, self.corrections, self.verbose = reader, corrections, verbose
        folder = resources.files("scratchnet.serve") / "static"
        self.static = {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}
        self.host_names = {"localhost", host.lower().strip("[]")}
        if _is_wildcard(host):  # reachable by this machine's own names too
            self.host_names |= {socket.gethostname().lower(), socket.getfqdn().lower()}

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a Host header names this server: an IP address literal or one of its names. A DNS
        rebinding page always arrives with its own domain name here."""
        if host_header is None:  # HTTP/1.0 clients; browsers always send Host
            return True
        try:
            name = urlsplit("//" + host_header.strip()).hostname
        except ValueError:  # e.g. an unclosed "[" of an IPv6 address
            return False
        if not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.host_names


class Handler(BaseHTTPRequestHandler):
    """One request: checks, then the route's function; every failure becomes a JSON error, none escapes."""

    server_version = "scratchnet-serve"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    # Headers and body leave in two writes; with Nagle's algorithm on, the body would wait for the client's
    # delayed ACK of the headers (about 40 ms on Linux) on every kept-alive request.
    disable_nagle_algorithm = True
    app: App  # set on the subclass make_server creates

    # ---------------------------------------------------------------------------------- dispatch
    GET_ROUTES: ClassVar[dict] = {"/api/model": "model_info"}
    POST_ROUTES: ClassVar[dict] = {"/api/predict": "predict", "/api/correct": "correct", "/api/reload": "reload"}

    def do_GET(self):
        self._dispatch(self.GET_ROUTES)

    def do_POST(self):
        self._dispatch(self.POST_ROUTES)

    def do_HEAD(self):
        self._send_json(405, {"error": f"{self.command} is not supported here"}, close=True,
                        extra={"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _dispatch(self, routes):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self._body_read = False  # one handler serves every request of a kept-alive connection
        try:
            if not self.app.host_allowed(self.headers.get("Host")):
                raise Refused(403, f"this server does not answer to the host {self.headers.get('Host')!r}")
            if self.command == "GET" and url.path in self.app.static:
                body, kind = self.app.static[url.path]
                return self._send(200, body, kind)
            if url.path not in routes:
                get_path = url.path in self.app.static or url.path in self.GET_ROUTES
                if get_path or url.path in self.POST_ROUTES:
                    raise Refused(405, f"{self.command} {url.path}: use {'GET' if get_path else 'POST'}")
                raise Refused(404, f"{url.path}: no such page")
            if self.command == "POST":
                self._check_origin()
            status, answer = getattr(self, routes[url.path])()
            self._send_json(status, answer)
        except Refused as refusal:  # an unread body would be taken for the next request: close instead
            self._send_json(refusal.status, {"error": str(refusal)},
                            close=self.command == "POST" and not self._body_read)
            self._drain(refusal.unread)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 (a bug: say so, keep serving)
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, {"error": "internal error (the server printed the details)"}, close=True)

    def _check_origin(self):
        """A POST from a page must come from this server's own page: its Origin names this host."""
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != (self.headers.get("Host") or "").lower():
            raise Refused(403, f"cross-origin request from {origin} refused")

    # ---------------------------------------------------------------------------------- routes
    def model_info(self):
        info = self.app.reader.info()
        info["corrections"] = {"folder": str(self.app.corrections.folder), "count": self.app.corrections.count()}
        return 200, info

    def predict(self):
        start = time.perf_counter()
        image = self._image_body()
        reading = self._read(image, features=self.query.get("features", ["0"])[-1] in ("1", "true", "yes"))
        answer = reading_json(reading)
        answer["timing_ms"] = {"prepare": round(reading.prepare_ms, 2), "model": round(reading.model_ms, 2),
                               "total": round(1000 * (time.perf_counter() - start), 2)}
        return 200, answer

    def correct(self):
        label = self.query.get("label", [None])[-1]
        if label is None:
            raise Refused(400, "say which class the drawing is: POST /api/correct?label=<class>")
        classes = self.app.reader.classes
        if label not in classes:
            raise Refused(400, f"label {label!r} is not one of the model's classes ({', '.join(classes)})")
        image = self._image_body()
        self._read(image)  # the same checks as a prediction: a blank page is not saved
        path = self.app.corrections.save(image, label)
        return 201, {"saved": str(path), "label": label, "count": self.app.corrections.count(label),
                     "total": self.app.corrections.count()}

    def reload(self):
        self._body()
        try:
            return 200, self.app.reader.reload()
        except (ModelLoadError, ClassesError) as error:
            raise Refused(409, f"{error}; still serving the previous model") from None

    # ---------------------------------------------------------------------------------- bodies
    def _body(self) -> bytes:
        """The request body, at most ``images.MAX_BODY_BYTES`` (413 beyond, 411 without a length)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise Refused(411, "send the body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            raise Refused(400, f"bad Content-Length {self.headers.get('Content-Length')!r}") from None
        if length > images.MAX_BODY_BYTES:
            raise Refused(413, f"the body is {length:,} bytes; the limit is {images.MAX_BODY_BYTES:,}",
                          unread=length)
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise Refused(400, f"the body ended after {len(body):,} of {length:,} bytes")
        return body

    def _image_body(self):
        """The body as a decoded PIL image, after the Content-Type and size checks."""
        body = self._body()
        if not images.accepted_type(self.headers.get("Content-Type")):
            raise Refused(415, f"send the image as image/png or image/jpeg, not "
                               f"{self.headers.get('Content-Type') or 'without a Content-Type'}")
        if not body:
            raise Refused(400, "the body is empty; send the image's bytes")
        try:
            return images.decode(body)
        except images.BadImage as error:
            raise Refused(error.status, str(error)) from None

    def _read(self, image, *, features=False):
        try:
            return self.app.reader.read(image, features=features)
        except imageprep.ImagePrepError as error:
            raise Refused(422, str(error).replace("<Image>: ", "")) from None

    def _drain(self, length):
        """Read and drop up to ``length`` bytes (at most DRAIN_BYTES) of a refused body."""
        try:
            remaining = min(length, DRAIN_BYTES)
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 16))):
                remaining -= len(chunk)
        except OSError:
            pass

    def handle_expect_100(self):
        """A client that asks before sending (curl does for large bodies) hears 413 before it sends."""
        try:
            too_large = int(self.headers.get("Content-Length") or 0) > images.MAX_BODY_BYTES
        except ValueError:
            too_large = False
        if too_large:
            self._send_json(413, {"error": f"the limit is {images.MAX_BODY_BYTES:,} bytes"}, close=True)
            return False
        return super().handle_expect_100()

    # ---------------------------------------------------------------------------------- answers
    def _send_json(self, status, answer, *, close=False, extra=None):
        self._send(status, json.dumps(answer, separators=(",", ":")).encode(), "application/json",
                   close=close, extra=extra)

    def _send(self, status, body: bytes, content_type: str, *, close=False, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, headers too long) as JSON too."""
        self._send_json(code, {"error": message or HTTPStatus(code).phrase}, close=True)

    def log_message(self, format, *args):
        if self.app.verbose:
            super().log_message(format, *args)


def reading_json(reading, top_k: int = TOP_K) -> dict:
    """The JSON answer for one :class:`Reading`."""
    p = reading.probabilities
    order = np.argsort(-p, kind="stable")[:top_k]
    answer = {
        "label": reading.label, "index": reading.index, "probability": round(float(p[reading.index]), 6),
        "classes": list(reading.classes), "probabilities": [round(float(v), 6) for v in p],
        "top": [{"label": reading.classes[k], "index": int(k), "probability": round(float(p[k]), 6)}
                for k in order],
        "input": np.round(reading.input.astype(np.float64), 4).tolist(),
    }
    if reading.features is not None:
        maps = np.moveaxis(reading.features, -1, 0).astype(np.float64)  # (F, OH, OW): one map per filter
        answer["features"] = {"layer": reading.feature_layer, "shape": list(reading.features.shape),
                              "maps": np.round(maps, 4).tolist()}
    return answer


def _is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: localhost or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Server(ThreadingHTTPServer):
    """The standard library's threading server, on IPv6 when the host is an IPv6 address."""

    daemon_threads = True

    def __init__(self, address, handler):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(reader: Reader, host: str = "127.0.0.1", port: int = 8000, *, corrections=None,
                verbose: bool = False) -> Server:
    """A server bound to ``host:port`` (port 0: a free one), not yet serving: call ``serve_forever()``."""
    images.limit_decoded_size()
    app = App(reader, corrections or Corrections(), host, verbose=verbose)
    handler = type("BoundHandler", (Handler,), {"app": app})
    return Server((host.strip("[]"), port), handler)
