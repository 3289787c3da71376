"""The nginx front's configuration, rendered from settings and from the route table.

nginx answers a space itself only where it does exactly what spacehub's proxy would: the space
runs (its route has a TCP upstream), is public, is neither frozen nor sleeping, and is not a
static release (those files' headers are the proxy's). Every other request goes to spacehub's
proxy behind it, which is always right: a space missing from the includes (just changed, or
between a change and the reload) is only slower, never wrong.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from spacehub.platform.app_tickets import PLATFORM_COOKIE_PREFIX
from spacehub.platform.proxy import ProxyLimits
from spacehub.platform.route_table import Route, RouteTable
from spacehub.platform.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
_ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 (nginx configuration, not HTML; values checked with fullmatch)
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
# Validated again here, not trusted from elsewhere: each value ends up in nginx's syntax.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,96}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]{1,253}")
_HEADER_NAME = re.compile(r"[!#%&'*+.^_`|~0-9A-Za-z-]{1,256}")
# nginx reads `$` in a value as a variable and has no escape for it: such a space stays with
# spacehub's proxy.
_HEADER_VALUE = re.compile(r"[\x20-\x23\x25-\x7e]{0,4096}")


# A fast-path space's upstream is named by its label; nginx's activity log names the space by it.
SPACE_UPSTREAM_PREFIX = "space-"


class FrontError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path


@dataclass(frozen=True)
class FrontConfig:
    """Where nginx listens and what it forwards to: everything the rendering needs."""

    prefix: Path  # nginx's own directory: config, includes, pid, logs, temp files
    listen_main: str  # host:port of the main origin (dashboard, API, git, subdomain apps)
    listen_apps: str  # host:port of the apps origin (path form, subdomain apps)
    main_socket: Path  # spacehub's proxy for the main origin, behind nginx
    apps_socket: Path  # the same for the apps origin
    apps_domain: str
    limits: ProxyLimits
    tls: Tls | None = None
    workers: str = "auto"

    @property
    def config_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def activity_log(self) -> Path:
        return self.prefix / "activity.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def pid_path(self) -> Path:
        return self.prefix / "nginx.pid"


def render_main_config(config: FrontConfig) -> str:
    limits = config.limits
    return _ENVIRONMENT.get_template("nginx.conf.j2").render(
        prefix=config.prefix,
        # A master started by root would run its workers as nobody, who cannot reach the data
        # dir's sockets: they run as the platform's user, as a master started by anyone else.
        run_as="root" if os.geteuid() == 0 else None,
        workers=config.workers,
        header_timeout=_seconds(limits.header_timeout),
        idle_timeout=_seconds(limits.idle_timeout),
        max_head_size=limits.max_head_size,
        connect_timeout=_seconds(limits.connect_timeout),
        tls=config.tls,
        platform_cookie_prefix=PLATFORM_COOKIE_PREFIX.decode(),
        main_socket=config.main_socket,
        apps_socket=config.apps_socket,
        listen_main=config.listen_main,
        listen_apps=config.listen_apps,
    )


def fast_path(routes: RouteTable, route: Route) -> bool:
    """Whether nginx may answer this space itself (see the module's docstring)."""
    upstream = route.upstream
    return (
        upstream is not None
        and upstream.unix_path is None
        and upstream.port > 0
        and not route.private
        and route.static_root is None
        and route.space_id not in routes.frozen
        and route.space_id not in routes.sleeping
        and routes.by_label(route.label) is route  # a label two spaces claim: the proxy decides
        and _NAME.fullmatch(route.owner) is not None
        and _NAME.fullmatch(route.name) is not None
        and _LABEL.fullmatch(route.label) is not None
        and all(
            _HEADER_NAME.fullmatch(name) and _HEADER_VALUE.fullmatch(value)
            for name, value in route.custom_headers
        )
    )


def render_space_includes(config: FrontConfig, routes: RouteTable) -> dict[str, str]:
    """Each fast-path space's includes by path under the prefix: `hosts/<label>.conf` (its
    upstream and subdomain server) and `paths/<label>.conf` (its path-form location)."""
    if not _DOMAIN.fullmatch(config.apps_domain.strip(".")):
        return {}  # no subdomain can be named safely: every request goes to spacehub's proxy
    includes: dict[str, str] = {}
    for route in sorted(routes.all(), key=lambda route: route.label):
        if not fast_path(routes, route):
            continue
        assert route.upstream is not None
        prefix = f"/apps/{route.owner}/{route.name}"
        values = {
            "space_id": route.space_id,
            "upstream_name": f"{SPACE_UPSTREAM_PREFIX}{route.label}",
            "upstream": address(route.upstream.host, route.upstream.port),
            "upstream_idle_timeout": _seconds(config.limits.upstream_idle_timeout),
            # As many idle connections as the proxy's pool keeps: with fewer than the clients
            # at once, nginx opened a new connection for most requests (0.4x plain nginx).
            "upstream_idle_connections": config.limits.max_idle_upstream_connections,
            "listen_main": config.listen_main,
            "listen_apps": config.listen_apps,
            "tls": config.tls,
            "host_name": f"{route.label}.{config.apps_domain.strip('.').lower()}",
            "activity_log": config.activity_log,
            "custom_headers": [
                (name, value.replace("\\", "\\\\").replace('"', '\\"'))
                for name, value in route.custom_headers
            ],
            "prefix": prefix,
            "prefix_pattern": re.escape(prefix),
        }
        includes[f"hosts/{route.label}.conf"] = _render("space-host.conf.j2", values)
        includes[f"paths/{route.label}.conf"] = _render("space-path.conf.j2", values)
    return includes


def _render(template: str, values: dict[str, object]) -> str:
    return _ENVIRONMENT.get_template(template).render(**values)


def address(host: str, port: int) -> str:
    """`host:port` as nginx writes it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _seconds(value: float) -> str:
    """nginx's time syntax takes whole units: milliseconds keep fractions of a second."""
    return f"{round(value * 1000)}ms"


def front_config(settings: Settings, limits: ProxyLimits) -> FrontConfig:
    """The front `serve --proxy nginx` runs, from the settings; FrontError when they disagree."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise FrontError("TLS needs both tls_cert and tls_key (SPACEHUB_TLS_CERT, _TLS_KEY)")
    tls = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        for path in (settings.tls_cert, settings.tls_key):
            if not path.is_file():
                raise FrontError(f"TLS: {path} is not a file")
        tls = Tls(settings.tls_cert.absolute(), settings.tls_key.absolute())
    return FrontConfig(
        prefix=settings.data_dir / "nginx",
        listen_main=address(settings.host, settings.port),
        listen_apps=address(settings.host, settings.effective_apps_port),
        main_socket=settings.socket_dir / "proxy-main.sock",
        apps_socket=settings.socket_dir / "proxy-apps.sock",
        apps_domain=settings.apps_domain,
        limits=limits,
        tls=tls,
    )
