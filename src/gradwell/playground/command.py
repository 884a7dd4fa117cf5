"""``gradwell playground``: start the local server and open the page."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
import sys
import threading
import webbrowser
from typing import Any

DESCRIPTION = """\
Start a local web server with the gradwell playground (TensorFlow Playground, with
gradwell training live behind it and the doctor watching) and open it in the
browser. The printed URL holds a random token that every request must carry.
Runs until Ctrl-C.
"""
DEFAULT_PORT = 8050


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not a loopback address (others on the network can then "
        "reach the server: only the token protects it)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"gradwell playground: --host {args.host} is not a loopback address; pass "
            "--allow-remote as well to listen there",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.port <= 65535:
        print(f"gradwell playground: --port must be in 0..65535; got {args.port}", file=sys.stderr)
        return 2
    try:
        server = Server(args.host, args.port)
    except ImportError as e:
        print(
            f"gradwell playground: needs the web server packages ({e}); install them with "
            "pip install 'gradwell[playground]'",
            file=sys.stderr,
        )
        return 2
    except OSError as e:
        print(
            f"gradwell playground: cannot listen on {args.host}:{args.port} ({e.strerror or e})",
            file=sys.stderr,
        )
        return 2
    if not is_loopback(args.host):
        print(
            f"gradwell playground: warning: listening on {args.host}, reachable from other "
            "machines; anyone with the URL below can train here",
            file=sys.stderr,
        )
    try:  # Ctrl-C before uvicorn has taken the signal over stops it just as cleanly
        print(f"gradwell playground: {server.url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        if not args.no_browser:
            threading.Timer(0.5, webbrowser.open, [server.url]).start()
        server.run()
    except KeyboardInterrupt:
        server.socket.close()
    print("gradwell playground: stopped")
    return 0


class Server:
    """The uvicorn server on a socket bound here (so the port is known before it runs)."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        import uvicorn

        from .server import MAX_MESSAGE, allowed_hosts, create_app

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.port = self.socket.getsockname()[1]
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/?token={self.token}"
        app = create_app(self.token, allowed_hosts(host, self.port))
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws_max_size=2 * MAX_MESSAGE,
            ws="auto",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.uvicorn = uvicorn.Server(config)

    def run(self) -> None:
        """Serve until Ctrl-C (or :meth:`stop`); uvicorn shuts down cleanly, then re-raises
        the interrupt, which ends the serving here."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        except KeyboardInterrupt:
            pass

    def start_thread(self) -> threading.Thread:
        """Serve from a background thread (for tests); returns once it accepts connections."""
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        while not self.uvicorn.started and thread.is_alive():
            threading.Event().wait(0.02)
        return thread

    def stop(self, thread: Any = None) -> None:
        self.uvicorn.should_exit = True
        if thread is not None:
            thread.join(timeout=5)
