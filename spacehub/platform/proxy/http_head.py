"""HTTP/1.1 message heads as the proxy rewrites them: hop-by-hop filtering and rendering."""

from contextlib import suppress
from http import HTTPStatus

import httptools

# Header names are kept lower-cased from parsing to rendering.
Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded as received.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# What a client may claim about where it came from: replaced by what the proxy saw.
CLIENT_FORWARDING = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
    }
)


def end_to_end(headers: Headers, drop: frozenset[bytes] = HOP_BY_HOP) -> Headers:
    """The headers without those in `drop` (HOP_BY_HOP or more) and those `Connection` names."""
    for name, value in headers:
        if name == b"connection":
            drop = drop.union(token.strip().lower() for token in value.split(b","))
    return [h for h in headers if h[0] not in drop and not h[0].startswith(b"proxy-")]


class _HeadReader:
    def __init__(self) -> None:
        self.reason = b""
        self.headers: Headers = []

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))


def parse_response_head(head: bytes) -> tuple[bytes, Headers]:
    """The reason phrase and headers of a complete response head that llhttp already accepted."""
    reader = _HeadReader()
    with suppress(httptools.HttpParserUpgrade):  # a 101 head, read in full all the same
        httptools.HttpResponseParser(reader).feed_data(head)
    return reader.reason, reader.headers


def header_value(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def render_head(start_line: bytes, headers: Headers) -> bytes:
    lines = [start_line]
    for name, value in headers:
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def status_line(status: int, reason: bytes) -> bytes:
    return b"HTTP/1.1 %d %s" % (status, reason)


def plain_response(
    status: int, text: str = "", *, headers: Headers | None = None, close: bool = True
) -> bytes:
    """A complete short response the proxy answers by itself (errors, redirects)."""
    phrase = HTTPStatus(status).phrase
    body = (text or phrase).encode() + b"\n"
    head: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        *(headers or []),
    ]
    if close:
        head.append((b"connection", b"close"))
    return render_head(status_line(status, phrase.encode()), head) + body
