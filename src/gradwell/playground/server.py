"""The playground's web server (Starlette on uvicorn), guarded like a notebook server.

Every request and socket must carry the session token (``?token=`` or the
``X-Gradwell-Token`` header; the page itself may also use the cookie set when it
was first opened with the token). The Host header must name this server (so a
DNS-rebinding page cannot reach it), and an Origin header, when present, must be
this server's own (so another site open in the same browser cannot drive it).
Bodies and socket messages are size-limited. Nothing received is evaluated: the
settings are checked field by field (``config.FIELDS``), an upload is parsed as
numbers only.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..doctor import Thresholds
from .config import LEARNING_RATES, MAX_CLASSES, MAX_LAYERS, MAX_NEURONS, PRESETS, REG_RATES
from .session import MAX_CUSTOM_POINTS, Session

MAX_BODY = 64 * 1024  # bytes of any request body (the CSV upload is the largest)
MAX_MESSAGE = 16 * 1024  # bytes of one socket message from the page
COOKIE = "gradwell_playground"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values this server answers to: its address, and for loopback or every
    address (0.0.0.0) the loopback names; for every address also this machine's names."""
    names = {host}
    if host in (*LOOPBACK, "0.0.0.0", "::"):
        names |= set(LOOPBACK)
    if host in ("0.0.0.0", "::"):
        try:
            name, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
        except OSError:  # no resolvable name: the name alone
            name, aliases, addresses = socket.gethostname(), [], []
        names |= {name, *aliases, *addresses}
    return {f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names}


class Guard:
    """ASGI middleware: Host, Origin, token and body size, before anything else runs."""

    def __init__(self, app: Any, token: str, hosts: Iterable[str]) -> None:
        self.app, self.token, self.hosts = app, token, set(hosts)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self._check(scope, headers)
        if problem is not None:
            status, text = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
                return
            await PlainTextResponse(text, status_code=status)(scope, receive, send)
            return
        if scope["type"] == "http":
            receive = _limited(receive, MAX_BODY)
        await self.app(scope, receive, send)

    def _check(self, scope: dict[str, Any], headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if host not in self.hosts:
            return 403, f"gradwell playground: unexpected Host header {host!r}"
        origin = headers.get("origin")
        if origin is not None and origin not in {f"http://{h}" for h in self.hosts}:
            return 403, f"gradwell playground: requests from {origin!r} are not allowed"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return 413, f"gradwell playground: request bodies are limited to {MAX_BODY} bytes"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = headers.get("x-gradwell-token") or (query.get("token") or [""])[0]
        if not given and scope["type"] == "http" and scope["path"] == "/":
            given = _cookie(headers.get("cookie", ""))
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return 403, (
                "gradwell playground: a valid token is needed; open the URL that "
                "`gradwell playground` printed"
            )
        return None


def _cookie(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


class BodyTooLarge(Exception):
    pass


def _limited(receive: Any, limit: int) -> Any:
    """``receive`` that fails once a body grows past ``limit`` (chunked bodies too)."""
    seen = 0

    async def wrapped() -> Any:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return wrapped


# ------------------------------------------------------------------------------ app
def _asset(name: str) -> str:
    return (resources.files("gradwell.playground") / "assets" / name).read_text(encoding="utf-8")


def page(token: str) -> str:
    """The page: HTML with its script, style and constants inline (no network, no build)."""
    constants = {
        "token": token,
        "learningRates": LEARNING_RATES,
        "regRates": REG_RATES,
        "maxLayers": MAX_LAYERS,
        "maxNeurons": MAX_NEURONS,
        "maxClasses": MAX_CLASSES,
        "presets": {name: kinds for name, (_, kinds) in PRESETS.items()},
        "thresholds": {
            "vanishing_ratio": Thresholds().vanishing_ratio,
            "explode_growth": Thresholds().explode_growth,
        },
    }
    data = json.dumps(constants).replace("<", "\\u003c")
    html = _asset("playground.html")
    for marker, text in (
        ("/*GW:CSS*/", _asset("playground.css")),
        ("/*GW:JS*/", _asset("playground.js")),
        ("<!--GW:DATA-->", data),
    ):
        html = html.replace(marker, text)
    return html


def create_app(token: str, hosts: Iterable[str]) -> Any:
    """The ASGI application (wrapped in :class:`Guard`)."""
    sessions: dict[str, Session] = {}

    async def index(request: Request) -> Response:
        response = HTMLResponse(page(token))
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            f"img-src data: blob:; connect-src 'self' ws://{request.headers['host']}; "
            "frame-src 'self' blob:"
        )
        return response

    async def play_socket(ws: WebSocket) -> None:
        await ws.accept()

        async def send(message: dict[str, Any]) -> None:
            try:
                text = json.dumps(message, allow_nan=False, default=_jsonable)
            except (TypeError, ValueError) as e:  # a bug here must not silence the page
                text = json.dumps(
                    {"type": "error", "message": f"server: {message.get('type')}: {e}"}
                )
            await ws.send_text(text)

        session = Session(send)
        sessions[session.id] = session
        await send({"type": "hello", "session": session.id})
        try:
            while True:
                text = await ws.receive_text()
                if len(text) > MAX_MESSAGE:
                    await send(
                        {"type": "error", "message": f"messages are limited to {MAX_MESSAGE} bytes"}
                    )
                    continue
                try:
                    message = json.loads(text)
                except ValueError:
                    await send({"type": "error", "message": "message: expected JSON"})
                    continue
                await session.handle(message)
        except WebSocketDisconnect:
            pass
        finally:
            session.close()
            sessions.pop(session.id, None)

    def api(handler: Callable[[Request, Session, Any], Awaitable[Response]]) -> Any:
        """An endpoint of one page's session (``?session=``): bad input answers 400."""

        async def endpoint(request: Request) -> Response:
            session = sessions.get(request.query_params.get("session", ""))
            if session is None or session.run is None:
                return PlainTextResponse("no such session: reload the page", status_code=400)
            try:
                return await handler(request, session, session.run)
            except BodyTooLarge:
                return PlainTextResponse(
                    f"uploads are limited to {MAX_BODY} bytes", status_code=413
                )
            except ValueError as e:
                return PlainTextResponse(str(e), status_code=400)

        return endpoint

    @api
    async def upload(request: Request, session: Session, run: Any) -> Response:
        X, y, task = parse_points(await request.body())
        await session.use_points(X, y, task)
        return PlainTextResponse(f"{len(X)} points")

    @api
    async def export_python(request: Request, session: Session, run: Any) -> Response:
        from .export import python_script

        text = python_script(session.config, max(run.epoch, 1), session.custom)
        return PlainTextResponse(text, headers=_attachment("playground.py"))

    @api
    async def export_checkpoint(request: Request, session: Session, run: Any) -> Response:
        from .export import checkpoint_bytes

        data = await session.locked(lambda: checkpoint_bytes(run))
        headers = _attachment("playground.safetensors")
        return Response(data, media_type="application/octet-stream", headers=headers)

    @api
    async def explain(request: Request, session: Session, run: Any) -> Response:
        from .backprop import explain_page

        x1, x2 = _query_number(request, "x1"), _query_number(request, "x2")
        html = await session.locked(lambda: explain_page(run, x1, x2))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    app = Starlette(
        routes=[
            Route("/", index),
            WebSocketRoute("/ws", play_socket),
            Route("/api/upload", upload, methods=["POST"]),
            Route("/api/export/python", export_python),
            Route("/api/export/checkpoint", export_checkpoint),
            Route("/api/explain", explain),
        ]
    )
    return Guard(app, token, hosts)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _query_number(request: Request, key: str) -> float:
    text = request.query_params.get(key, "")
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a number; got {text!r}") from None
    if not -6.0 <= v <= 6.0:
        raise ValueError(f"{key}: expected a number in [-6, 6]; got {v}")
    return v


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def parse_points(body: bytes) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows ``x1,x2,label`` (a header row is allowed), at most 2000: x1, x2 in [-6, 6]; the
    labels are classes 0..5, or values in [-1, 1] for regression when any is not an integer.
    Returns the points, the labels and the task. Errors name the row and the column."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("CSV: expected UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and not _numeric(rows[0][0]):
        rows = rows[1:]  # a header
    if len(rows) < 2:
        raise ValueError(f"CSV: expected at least 2 rows of x1,x2,label; got {len(rows)}")
    if len(rows) > MAX_CUSTOM_POINTS:
        raise ValueError(f"CSV: expected at most {MAX_CUSTOM_POINTS} rows; got {len(rows)}")
    values = np.empty((len(rows), 3), dtype=np.float64)
    for i, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise ValueError(f"CSV row {i}: expected 3 values (x1, x2, label); got {len(row)}")
        for j, (name, limit) in enumerate(
            (("x1", 6.0), ("x2", 6.0), ("label", float(MAX_CLASSES)))
        ):
            cell = row[j].strip()
            if not _numeric(cell) or not -limit <= float(cell) <= limit:
                raise ValueError(
                    f"CSV row {i}, column {name}: expected a number in [-{limit:g}, {limit:g}]; "
                    f"got {cell!r}"
                )
            values[i - 1, j] = float(cell)
    X, labels = values[:, :2].astype(np.float32), values[:, 2]
    if np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < MAX_CLASSES:
        if np.unique(labels).size < 2:
            raise ValueError("CSV: expected at least two different class labels")
        return X, labels.astype(np.int64), "classification"
    bad = np.flatnonzero(np.abs(labels) > 1)
    if bad.size:
        raise ValueError(
            f"CSV row {bad[0] + 1}, column label: expected a class 0..{MAX_CLASSES - 1}, or "
            f"values in [-1, 1] for regression; got {labels[bad[0]]:g}"
        )
    return X, labels.astype(np.float32), "regression"


def _numeric(text: str) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    return v == v and abs(v) != float("inf")
