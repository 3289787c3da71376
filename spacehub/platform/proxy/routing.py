"""Where a request goes, decided from its Host and path: a space's app or the control plane.

Subdomain form: `{label}.{apps_domain}` sends every path to the space's app unchanged. When the
control plane answers instead (no upstream, private and refused), the path is rewritten to
`/apps/{owner}/{name}{path}`; for an unknown label to `/apps/-/{label}{path}`: `-` is never a
valid owner name, so the control plane's `/apps/{owner}/{name}/…` route answers its 404.

Path form: `/apps/{owner}/{name}/{rest}` on any other host sends `/{rest}` to the app (the prefix
is stripped and announced in `X-Forwarded-Prefix`) and the unchanged path to the control plane.
`/apps/{owner}/{name}` without the slash is redirected to the slash form.
"""

from dataclasses import dataclass

from spacehub.platform.route_table import Route, RouteTable

UNKNOWN_LABEL_OWNER = b"-"


@dataclass(slots=True)
class Redirect:
    location: bytes


@dataclass(slots=True)
class Destination:
    """Both ways a request can be forwarded; the caller picks one once it knows the route."""

    # Not frozen: a frozen dataclass takes three times as long to build, and one is built per
    # request.
    route: Route | None
    app_target: bytes
    control_target: bytes
    prefix: bytes = b""


# Hosts whose label is remembered; past that the memory starts over (clients choose Host).
MAX_REMEMBERED_HOSTS = 1024


class Router:
    def __init__(self, routes: RouteTable, apps_domain: str) -> None:
        self._routes = routes
        self._suffix = b"." + apps_domain.lower().strip(".").encode()
        self._labels: dict[bytes, bytes | None] = {}

    def resolve(self, host: bytes | None, target: bytes) -> Destination | Redirect:
        label = self._remembered_label(host) if host else None
        if label is not None:
            return self._by_label(label, target)
        if target.startswith(b"/apps/"):
            return self._by_path(target)
        return Destination(None, target, target)

    def _remembered_label(self, host: bytes) -> bytes | None:
        # Every request on a connection names the same few hosts: parse each once.
        try:
            return self._labels[host]
        except KeyError:
            if len(self._labels) >= MAX_REMEMBERED_HOSTS:
                self._labels.clear()
            label = self._labels[host] = self._label(host)
            return label

    def _label(self, host: bytes) -> bytes | None:
        name = host.lower()
        if not name.startswith(b"["):
            head, colon, port = name.rpartition(b":")
            if colon and port.isdigit():
                name = head
        if name.endswith(self._suffix) and len(name) > len(self._suffix):
            return name[: -len(self._suffix)]
        return None

    def _by_label(self, label: bytes, target: bytes) -> Destination:
        route = self._routes.by_label(label.decode("ascii", "replace"))
        if route is None:
            control_target = b"/apps/%s/%s%s" % (UNKNOWN_LABEL_OWNER, label, target)
            return Destination(None, target, control_target)
        prefix = f"/apps/{route.owner}/{route.name}".encode()
        return Destination(route, target, prefix + target)

    def _by_path(self, target: bytes) -> Destination | Redirect:
        path, question, query = target.partition(b"?")
        parts = path.split(b"/", 4)
        if len(parts) < 4 or not parts[2] or not parts[3]:
            return Destination(None, target, target)
        if len(parts) == 4:
            return Redirect(path + b"/" + question + query)
        try:
            owner, name = parts[2].decode("ascii"), parts[3].decode("ascii")
        except UnicodeDecodeError:
            return Destination(None, target, target)
        prefix = b"/apps/%s/%s" % (parts[2], parts[3])
        app_target = b"/" + parts[4] + question + query
        return Destination(self._routes.by_space(owner, name), app_target, target, prefix)
