"""The managed nginx front: its master process, its includes kept in step with the route table.

`serve --proxy nginx` starts one nginx master of its own (config, pid, logs and temp files in
DATA_DIR/nginx), and a thread that, five times a second, reads nginx's activity log into the
route table and renders the spaces' includes; when they changed it writes them (a temporary file
renamed over each), checks the whole with `nginx -t`, and reloads (SIGHUP: old workers finish
their open requests, WebSockets and streams before they exit). A burst of route changes is one
reload. nginx stops with the platform.
"""

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spacehub.platform.front.activity_feed import ActivityFeed
from spacehub.platform.front.connections import accepting, child_pids, established_to
from spacehub.platform.front.nginx_config import (
    FrontConfig,
    FrontError,
    render_main_config,
    render_space_includes,
)
from spacehub.platform.route_table import RouteTable

log = logging.getLogger(__name__)

SYNC_SECONDS = 0.2  # how often the routes are compared with the includes (bursts coalesce)
LOG_FLUSH_SECONDS = 1.0  # the access log's `flush=` in the templates
COMMAND_TIMEOUT = 30.0
START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
INSTALL_HINT = "install it (Debian: apt-get install nginx), or serve with --proxy python"


def find_nginx() -> str:
    """The nginx binary on PATH or in /usr/sbin; FrontError naming what to do when there is none."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FrontError(f"--proxy nginx: nginx is not installed; {INSTALL_HINT}")
    return found


class NginxFront:
    """One nginx master owned by this process; `start`, then `stop` (also after a failed start)."""

    def __init__(
        self,
        config: FrontConfig,
        routes: RouteTable,
        call_soon: Callable[[Callable[[], None]], None],
        binary: str | None = None,
    ) -> None:
        """`call_soon(callback)` runs the callback on the proxy's thread (activity's writer);
        `binary`: nginx's path (default: `find_nginx`)."""
        self.config = config
        self._routes = routes
        self._binary = binary or find_nginx()
        self._feed = ActivityFeed(config.activity_log, routes, call_soon)
        self._process: subprocess.Popen[bytes] | None = None
        self._rendered: tuple[object, dict[str, str]] | None = None  # (routes' key, includes)
        self._applied: dict[str, str] = {}  # the includes on disk
        self._running: dict[str, str] = {}  # those nginx was last (re)started with
        self._applied_spaces: frozenset[str] = frozenset()
        self._synced = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="spacehub-nginx", daemon=True)
        self.reloads = 0

    # Starting and stopping

    def start(self) -> None:
        prefix = self.config.prefix
        for folder in ("hosts", "paths", "temp"):
            (prefix / folder).mkdir(parents=True, exist_ok=True)
        for old in [*prefix.glob("hosts/*.conf"), *prefix.glob("paths/*.conf")]:
            old.unlink()  # a previous run's spaces: routes are published again from scratch
        self._write(self.config.config_path, render_main_config(self.config))
        self._apply_includes(self._wanted())
        self._test()
        self._launch()
        self._thread.start()

    def _launch(self) -> None:
        with self.config.error_log.open("ab") as errors:
            self._process = subprocess.Popen(
                self._command("-g", "daemon off;"),
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,  # a Ctrl-C reaches the platform, which stops nginx
            )
        self._wait_for_workers(set(), START_TIMEOUT)
        with self._synced:
            self._running = self._applied
            self._synced.notify_all()

    def stop(self) -> None:
        """Stop the watcher, then nginx: gracefully (SIGQUIT), and for good after a while."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(COMMAND_TIMEOUT)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.terminate()  # nginx's fast shutdown: open connections are closed
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # What the supervisor asks before freezing or stopping a space

    def open_connections(self, space_id: str) -> int:
        """Connections nginx's workers (old ones too) hold open to the space's app."""
        route = self._routes.by_id(space_id)
        process = self._process
        if route is None or route.upstream is None or route.upstream.unix_path is not None:
            return 0
        if process is None or process.poll() is not None:
            return 0
        return established_to(child_pids(process.pid), route.upstream.host, route.upstream.port)

    def release(self, space_id: str, timeout: float = RELOAD_TIMEOUT) -> bool:
        """Wait until nginx no longer answers for the space itself (its frozen or sleeping mark
        took it out of the includes, and nginx reloaded) and what nginx served for it until then
        is in its activity; then True when no connection of nginx to its app is open."""
        deadline = time.monotonic() + timeout
        with self._synced:
            while space_id in self._applied_spaces:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._synced.wait(left)
        time.sleep(LOG_FLUSH_SECONDS + SYNC_SECONDS)  # the log's buffer flushed and read
        self._feed.read()
        return self.open_connections(space_id) == 0

    def wait_synced(self, timeout: float = RELOAD_TIMEOUT) -> None:
        """Wait until the includes nginx runs with are those the route table asks for now."""
        deadline = time.monotonic() + timeout
        with self._synced:
            while self._running != self._wanted():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("nginx's includes did not catch up with the routes")
                self._synced.wait(min(left, SYNC_SECONDS))

    # The watcher

    def _watch(self) -> None:
        while not self._stopping.wait(SYNC_SECONDS):
            try:
                process = self._process
                if process is not None and process.poll() is not None:
                    # The public ports are down: start it again (once a pass, so once per
                    # SYNC_SECONDS at most while it keeps failing).
                    log.error("nginx exited (%s); starting it again", process.returncode)
                    self._launch()
                self._feed.read()
                self._sync()
            except Exception:  # one bad pass must not end the watcher: the next one tries again
                log.exception("keeping nginx's includes in step with the routes failed")

    def _sync(self) -> None:
        wanted = self._wanted()
        if wanted == self._applied:
            return
        self._apply_includes(wanted)
        try:
            self._test()
        except FrontError as error:
            log.error("%s; nginx keeps its previous configuration", error.message)
            return
        self._reload()
        with self._synced:
            self._running = wanted
            self._applied_spaces = frozenset(
                space_id for space_id, _ in _spaces_of(wanted, self._routes)
            )
            self._synced.notify_all()

    def _wanted(self) -> dict[str, str]:
        """The includes the route table asks for now, rendered again only when it changed."""
        routes = self._routes
        key = (tuple(routes.all()), frozenset(routes.frozen), frozenset(routes.sleeping))
        rendered = self._rendered
        if rendered is None or rendered[0] != key:
            rendered = self._rendered = (key, render_space_includes(self.config, routes))
        return rendered[1]

    def _apply_includes(self, wanted: dict[str, str]) -> None:
        prefix = self.config.prefix
        for relative, text in wanted.items():
            if self._applied.get(relative) != text:
                self._write(prefix / relative, text)
        for relative in self._applied.keys() - wanted.keys():
            with contextlib.suppress(FileNotFoundError):
                (prefix / relative).unlink()
        self._applied = wanted
        if self._process is None:  # at start: nginx will run with these
            self._applied_spaces = frozenset(
                space_id for space_id, _ in _spaces_of(wanted, self._routes)
            )

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Whole or not at all: a reload never reads half a file."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)

    def _command(self, *arguments: str) -> list[str]:
        prefix, config = str(self.config.prefix), str(self.config.config_path)
        return [self._binary, "-p", prefix, "-c", config, *arguments]

    def _test(self) -> None:
        result = subprocess.run(
            self._command("-t", "-q"),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise FrontError(f"nginx -t refused the configuration: {result.stderr.strip()}")

    def _reload(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise FrontError("nginx is not running")
        before = set(child_pids(process.pid))
        process.send_signal(signal.SIGHUP)
        self._wait_for_workers(before, RELOAD_TIMEOUT)
        self.reloads += 1

    def _wait_for_workers(self, old: set[int], timeout: float) -> None:
        """Wait until nginx runs a worker not in `old` and every one in `old` has stopped
        accepting (exited, or finishing its open connections): new connections get the new
        configuration."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout
        while not set(child_pids(process.pid)) - old or any(map(accepting, old)):
            if process.poll() is not None:
                errors = self.config.error_log.read_text(errors="replace")[-2000:]
                raise FrontError(f"nginx exited ({process.returncode}): {errors.strip()}")
            if time.monotonic() > deadline:
                raise FrontError(f"nginx started no worker within {timeout:.0f} s")
            time.sleep(0.01)


def _spaces_of(includes: dict[str, str], routes: RouteTable) -> list[tuple[str, str]]:
    """(space id, label) of each space the includes answer for."""
    found = []
    for relative in includes:
        if relative.startswith("hosts/"):
            label = relative.removeprefix("hosts/").removesuffix(".conf")
            route = routes.by_label(label)
            if route is not None:
                found.append((route.space_id, label))
    return found
