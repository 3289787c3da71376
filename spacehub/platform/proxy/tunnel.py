"""A WebSocket after its upgrade: raw bytes piped both ways until either side closes."""

from typing import Protocol

from spacehub.platform.proxy.activity import close_activity, open_stream
from spacehub.platform.proxy.upstream_pool import UpstreamConnection
from spacehub.platform.route_table import Activity


class TunnelClient(Protocol):
    def send(self, data: bytes) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def abort(self) -> None: ...


class Tunnel:
    def __init__(
        self, client: TunnelClient, conn: UpstreamConnection, activity: Activity | None
    ) -> None:
        self._client = client
        self._conn = conn
        self._activity = activity
        if activity is not None:
            open_stream(activity)
        conn.listener = self

    def client_data(self, data: bytes) -> None:
        self._conn.write(data)

    def client_lost(self) -> None:
        self._conn.close()
        self._release()

    def client_paused(self) -> None:
        self._conn.pause_reading()

    def client_resumed(self) -> None:
        self._conn.resume_reading()

    def upstream_data(self, data: bytes) -> None:
        self._client.send(data)

    def upstream_lost(self) -> None:
        self._client.abort()
        self._release()

    def upstream_paused(self) -> None:
        self._client.pause_reading()

    def upstream_resumed(self) -> None:
        self._client.resume_reading()

    def _release(self) -> None:
        # An open WebSocket is activity for sleep-on-idle for as long as it lasts.
        if self._activity is not None:
            close_activity(self._activity, streaming=True)
            self._activity = None
