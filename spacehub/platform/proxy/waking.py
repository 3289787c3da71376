"""The page a browser gets while the sleeping space it asked for wakes up.

503, not 200: it is not the app's answer, so nothing caches it or takes it for the app (a link
checker, a crawler, a monitor), and browsers show a 503's page like any other. `Retry-After`
and the page's own refresh bring the visitor back once the app answers.
"""

import html
from functools import cache
from pathlib import Path
from string import Template

from spacehub.platform.proxy.http_head import Headers, header_value, render_head, status_line

REFRESH_SECONDS = 2
_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "waking.html"


@cache
def _template() -> Template:
    return Template(_TEMPLATE.read_text(encoding="utf-8"))


def wants_a_page(method: bytes, headers: Headers, websocket: bool) -> bool:
    """A browser opening a page (`Accept: text/html`, not a script's XMLHttpRequest): it gets
    the waking page; API clients (gradio_client, requests) wait for the app instead."""
    if method != b"GET" or websocket:
        return False
    accept = header_value(headers, b"accept")
    if accept is None or b"text/html" not in accept.lower():
        return False
    return header_value(headers, b"x-requested-with") is None


def waking_response(space_id: str, close: bool) -> bytes:
    body = _template().substitute(space_id=html.escape(space_id), refresh=REFRESH_SECONDS).encode()
    head: Headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
        (b"retry-after", b"%d" % REFRESH_SECONDS),
    ]
    if close:
        head.append((b"connection", b"close"))
    return render_head(status_line(503, b"Service Unavailable"), head) + body
