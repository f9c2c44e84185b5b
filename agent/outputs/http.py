"""The agent's one HTTP port: metrics, health, readiness, the Alertmanager webhook, incidents.

A small threaded server from the standard library: the handlers read immutable snapshots or
short-lived, locked state (the incident store), so they never block ingestion. Endpoints other than
``/metrics``, ``/healthz`` and ``/readyz`` require ``Authorization: Bearer <token>`` when a
token is configured (compared in constant time); request bodies are size-limited.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent.incidents.alertmanager import AlertPayloadError, parse_alertmanager

__all__ = ["AgentHTTPServer", "HtmlPage"]


class HtmlPage(str):
    """A route's answer that is a page, served as ``text/html`` rather than JSON."""

log = logging.getLogger(__name__)
PUBLIC = frozenset({"/metrics", "/healthz", "/readyz"})


class AgentHTTPServer:
    """Serves the agent's endpoints on one port from a daemon thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]],
                 token: str | None, max_body_bytes: int, get_routes: dict[str, Callable[[str], tuple[int, Any]]],
                 on_alerts: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.registry = registry
        self.ready = ready
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.get_routes = get_routes
        self.on_alerts = on_alerts
        handler = self._handler()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="driftwarden-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _authorised(self, header: str | None) -> bool:
        if not self.token:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].encode(), self.token.encode())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "driftwarden"
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # access logs at debug, never headers
                log.debug("%s %s", self.address_string(), fmt % args)

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj, default=str).encode())

            def _path(self) -> str:
                return self.path.split("?", 1)[0].rstrip("/") or "/"

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                path = self._path()
                if path == "/metrics":
                    encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, encoder(outer.registry), ctype)
                    return
                if path == "/healthz":
                    self._json(200, {"status": "ok"})
                    return
                if path == "/readyz":
                    ok, why = outer.ready()
                    self._json(200 if ok else 503, {"ready": ok, "reason": why})
                    return
                if not outer._authorised(self.headers.get("Authorization")):
                    self._json(401, {"error": "missing or invalid bearer token"})
                    return
                for prefix, route in outer.get_routes.items():
                    if path == prefix or path.startswith(prefix + "/"):
                        status, obj = route(path[len(prefix):].lstrip("/"))
                        if isinstance(obj, HtmlPage):
                            self._send(status, obj.encode("utf-8"), "text/html; charset=utf-8")
                        else:
                            self._json(status, obj)
                        return
                self._json(404, {"error": f"no such endpoint: {path}"})

            def do_HEAD(self) -> None:  # noqa: N802 - same answers as GET, without bodies
                self.do_GET()

            def _not_allowed(self) -> None:
                self.send_response(405)
                body = json.dumps({"error": f"{self.command} not allowed"}).encode()
                self.send_header("Allow", "POST" if self._path() == "/alerts" else "GET, HEAD")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                path = self._path()
                if path != "/alerts":
                    self._json(404 if path not in PUBLIC else 405, {"error": f"POST not allowed on {path}"})
                    return
                if not outer._authorised(self.headers.get("Authorization")):
                    self._json(401, {"error": "missing or invalid bearer token"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    self._json(411, {"error": "Content-Length required"})
                    return
                if length < 0 or length > outer.max_body_bytes:
                    self.close_connection = True
                    self._json(413, {"error": f"body of {length} bytes exceeds the {outer.max_body_bytes}-byte limit"})
                    return
                body = self.rfile.read(length)
                try:
                    alerts = parse_alertmanager(body)
                except AlertPayloadError as e:
                    self._json(400, {"error": str(e)})
                    return
                self._json(HTTPStatus.ACCEPTED, outer.on_alerts(alerts))

        return Handler
