"""Where a request goes, decided from its Host and path: a space's app or the control plane.

Subdomain form: `{label}.{apps_domain}` sends every path to the space's app unchanged. When the
control plane answers instead (no upstream, private and refused), the path is rewritten to
`/apps/{owner}/{name}{path}`; for an unknown label to `/apps/-/{label}{path}`: `-` is never a
valid owner name, so the control plane's `/apps/{owner}/{name}/…` route answers its 404.

Path form: `/apps/{owner}/{name}/{rest}` on any other host sends `/{rest}` to the app (the prefix
is stripped and announced in `X-Forwarded-Prefix`) and the unchanged path to the control plane.
`/apps/{owner}/{name}` without the slash is redirected to the slash form.

Origins: `serve` has two listeners. On the main one (dashboard, API, git) the path form is
redirected (307) to the same path on the apps origin, so that no app's script runs where the
dashboard's session works; the apps listener answers the path form and 404 for anything else.
The subdomain form is answered on both (each space is an origin of its own there).
"""

from dataclasses import dataclass

from spacehub.platform.route_table import Route, RouteTable

UNKNOWN_LABEL_OWNER = b"-"


@dataclass(slots=True)
class Redirect:
    location: bytes
    status: int = 308


@dataclass(slots=True)
class Refusal:
    """Answered by the proxy itself: nothing on this listener serves the request."""

    status: int
    text: str


NOT_AN_APP = Refusal(404, "this is the apps origin: only apps answer here, under /apps/")


@dataclass(slots=True)
class Destination:
    """Both ways a request can be forwarded; the caller picks one once it knows the route."""

    # Not frozen: a frozen dataclass takes three times as long to build, and one is built per
    # request.
    route: Route | None
    app_target: bytes
    control_target: bytes
    prefix: bytes = b""


# Hosts whose label is remembered, and path prefixes whose space id is; past that the memory
# starts over (clients choose Host and paths).
MAX_REMEMBERED_HOSTS = 1024


class Router:
    """`apps_origin`: redirect the path form there (the main listener); `apps_only`: answer
    nothing but apps (the apps listener). Neither: one listener serves everything (tests)."""

    def __init__(
        self,
        routes: RouteTable,
        apps_domain: str,
        *,
        apps_origin: str | None = None,
        apps_only: bool = False,
    ) -> None:
        self._routes = routes
        self._apps_origin = apps_origin.rstrip("/").encode() if apps_origin else None
        self._apps_only = apps_only
        self._suffix = b"." + apps_domain.lower().strip(".").encode()
        self._labels: dict[bytes, bytes | None] = {}
        self._space_ids: dict[bytes, str | None] = {}

    def resolve(self, host: bytes | None, target: bytes) -> Destination | Redirect | Refusal:
        label = self._remembered_label(host) if host else None
        if label is not None:
            return self._by_label(label, target)
        if target.startswith(b"/apps/"):
            if self._apps_origin is not None:
                return Redirect(self._apps_origin + target, 307)
            return self._by_path(target)
        if self._apps_only:
            return NOT_AN_APP
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
        # Found by offsets, not split: this runs for every request in the path form.
        path_end = target.find(b"?")
        if path_end < 0:
            path_end = len(target)
        owner_end = target.find(b"/", 6, path_end)  # after `/apps/`
        if owner_end <= 6:
            return Destination(None, target, target)  # no owner, or nothing after it
        name_end = target.find(b"/", owner_end + 1, path_end)
        if name_end < 0:
            if owner_end + 1 == path_end:
                return Destination(None, target, target)
            return Redirect(target[:path_end] + b"/" + target[path_end:])
        if name_end == owner_end + 1:
            return Destination(None, target, target)
        prefix = target[:name_end]
        space_id = self._space_id(prefix)
        if space_id is None:
            return Destination(None, target, target)
        return Destination(self._routes.by_id(space_id), target[name_end:], target, prefix)

    def _space_id(self, prefix: bytes) -> str | None:
        """`owner/name` of a path prefix `/apps/owner/name`; None when it is not ASCII."""
        try:
            return self._space_ids[prefix]
        except KeyError:
            if len(self._space_ids) >= MAX_REMEMBERED_HOSTS:
                self._space_ids.clear()
            try:
                space_id: str | None = prefix[6:].decode("ascii")
            except UnicodeDecodeError:
                space_id = None
            self._space_ids[prefix] = space_id
            return space_id
