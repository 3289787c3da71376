"""HTTP/1.1 message heads as the proxy rewrites them: hop-by-hop filtering and rendering."""

from http import HTTPStatus

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


def end_to_end(headers: Headers, drop: frozenset[bytes] = frozenset()) -> Headers:
    """The headers without hop-by-hop ones (also those named in `Connection`) and `drop`."""
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    return [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP
        and name not in named
        and name not in drop
        and not name.startswith(b"proxy-")
    ]


def header_value(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def render_head(start_line: bytes, headers: Headers) -> bytes:
    lines = [start_line]
    lines.extend(name + b": " + value for name, value in headers)
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
