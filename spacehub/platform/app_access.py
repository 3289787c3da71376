"""Who may open a private space's app: the proxy asks here, per request, without waiting on SQL."""

import time
from dataclasses import dataclass, field

from anyio import to_thread
from sqlalchemy import Engine

from spacehub.core.errors import Unauthorized
from spacehub.platform.db import session_scope
from spacehub.platform.route_table import Route
from spacehub.platform.security import hash_token
from spacehub.platform.services.accounts import caller_for_token

# How long a token's owner is remembered: a revoked token can open apps this long after.
TOKEN_TTL_SECONDS = 30.0


@dataclass
class AppAccess:
    engine: Engine
    _owners: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    async def authorize(self, route: Route, token: str | None) -> bool:
        if not token:
            return False
        name = await self._owner_of(token)
        return name is not None and name in route.readers

    async def _owner_of(self, token: str) -> str | None:
        key = hash_token(token)
        cached = self._owners.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        name = await to_thread.run_sync(self._look_up, token)
        if len(self._owners) > 10_000:
            self._owners.clear()
        self._owners[key] = (name, time.monotonic() + TOKEN_TTL_SECONDS)
        return name

    def _look_up(self, token: str) -> str | None:
        with session_scope(self.engine) as session:
            try:
                return caller_for_token(session, token).name
            except Unauthorized:
                return None
