"""MLServer's interactive API page (``/v2/docs``), working offline.

MLServer 1.7.1 renders ``/v2/docs`` with FastAPI's ``get_swagger_ui_html``, whose script and
style sheet come from a CDN (cdn.jsdelivr.net): on a train or a closed hub the page stays
blank. :class:`ApiDocs` serves the same page, built by the same FastAPI function, with Swagger
UI's files from the ``swagger-ui-bundle`` package installed with the lab, on loopback. The
page and the API share one origin: every other path is passed on to the student's running
server, so "Try it out" sends its request to that server, which answers it as it answers any
client (no CORS setting to add to the student's ``settings.json``).

    docs = ApiDocs(server)            # a page for the whole server; model="my-tinyvit" for one model
    docs                              # in a notebook: the link to open
    docs.requests                     # (method, path, status) of each request the page passed on
    docs.stop()
"""

from __future__ import annotations

import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import requests

ASSETS = "/swagger-ui/"  # where the page finds Swagger UI's files
# The request headers passed on to MLServer, and the answer's headers passed back.
PASSED_REQUEST_HEADERS = ("content-type", "accept", "content-encoding", "accept-encoding")
PASSED_ANSWER_HEADERS = ("content-type", "content-encoding")


class Server(Protocol):
    """What the page reads of a server (``labkit.serving.server.ModelServer``)."""

    http_url: str

    @property
    def running(self) -> bool: ...


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's script, style sheet and icons, as the package ships them."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def page_html(spec_url: str, title: str) -> str:
    """MLServer's docs page (FastAPI's ``get_swagger_ui_html``, as MLServer calls it), with
    Swagger UI's files from this page's own origin instead of a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(openapi_url=spec_url, title=title,
                               swagger_js_url=f"{ASSETS}swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS}swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS}favicon-32x32.png")
    return bytes(page.body).decode()  # typed bytes | memoryview; a page's body is bytes


class ApiDocs:
    """The interactive API page of ``server`` (or of its model ``model``), on a free loopback
    port, until :meth:`stop` (or the end of the process: its thread is a daemon)."""

    def __init__(self, server: Server, model: str | None = None):
        self.server = server
        self.model = model
        spec = f"/v2/models/{model}/docs/dataplane.json" if model else "/v2/docs/dataplane.json"
        title = f"MLServer API Docs - {model}" if model else "MLServer API Docs"
        self.html = page_html(spec, title).encode()
        self.assets = swagger_ui_files()
        self.spec_path = spec
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) the page passed on
        # Port 0: the system picks a free port as it binds, so two students cannot race for one.
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="lab-api-docs", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __repr__(self) -> str:
        return f"<ApiDocs of {self.server.http_url} at {self.url}>"

    def _repr_html_(self) -> str:
        what = f"model {self.model!r}" if self.model else "the server"
        return (f'<a href="{self.url}" target="_blank">{self.url}</a>: the API page of {what}, with Swagger UI '
                f"from this machine; its requests go to {self.server.http_url}")


def _handler_for(docs: ApiDocs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._answer(200, docs.html, "text/html; charset=utf-8")
            elif path.startswith(ASSETS):
                self._asset(path[len(ASSETS):])
            else:
                self._pass_on()

        def do_POST(self) -> None:
            self._pass_on()

        def _asset(self, name: str) -> None:
            file = (docs.assets / name).resolve()
            if docs.assets.resolve() not in file.parents or not file.is_file():
                self._answer(404, b"not one of Swagger UI's files", "text/plain")
                return
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            self._answer(200, file.read_bytes(), kind)

        def _pass_on(self) -> None:
            """The request, sent on to the student's server; its answer, sent back as it is
            (a 400 stays a 400, with MLServer's own message)."""
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {key: value for key, value in self.headers.items() if key.lower() in PASSED_REQUEST_HEADERS}
            try:
                answer = requests.request(self.command, docs.server.http_url + self.path, data=body,
                                          headers=headers, timeout=120, stream=True)
                content = answer.raw.read(decode_content=False)
            except requests.ConnectionError:
                message = (f'{{"error": "no server answers at {docs.server.http_url}: start it again, then '
                           'send the request again"}')
                docs.requests.append((self.command, self.path, 502))
                self._answer(502, message.encode(), "application/json")
                return
            if self.path != docs.spec_path:  # the page's own document is not one of the student's requests
                docs.requests.append((self.command, self.path, answer.status_code))
            kept = {key: value for key, value in answer.headers.items() if key.lower() in PASSED_ANSWER_HEADERS}
            self._answer(answer.status_code, content, kept.pop("Content-Type", kept.pop("content-type", "")),
                         kept)

        def _answer(self, status: int, content: bytes, kind: str, extra: dict | None = None) -> None:
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a notebook cell is no place for an access log

    return Handler
