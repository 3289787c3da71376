"""The platform's long-lived parts, made once from Settings and shared by routes and tasks."""

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from spacehub.platform.app_tickets import AppSigner
from spacehub.platform.db import make_engine
from spacehub.platform.instance_id import platform_instance_id
from spacehub.platform.loops import LoopHealth
from spacehub.platform.metrics import PlatformMetrics
from spacehub.platform.route_table import RouteTable
from spacehub.platform.security import SecretBox, load_or_create_key
from spacehub.platform.settings import Settings
from spacehub.runtime.base import Runtime

if TYPE_CHECKING:
    from spacehub.platform.supervisor import Supervisor


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    secret_box: SecretBox
    webhook_secret: bytes
    platform_id: str
    app_signer: AppSigner
    routes: RouteTable = field(default_factory=RouteTable)
    runtime: Runtime | None = None
    supervisor: "Supervisor | None" = None  # in `serve` only: the one owner of instances
    build_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    loops: dict[str, LoopHealth] = field(default_factory=dict)
    metrics: PlatformMetrics = field(default_factory=PlatformMetrics)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Platform":
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        key = (
            settings.secret_key.get_secret_value().encode()
            if settings.secret_key
            else load_or_create_key(data / "secret.key", SecretBox.new_key())
        )
        webhook = load_or_create_key(data / "webhook.secret", secrets.token_hex(32).encode())
        return cls(
            settings=settings,
            engine=make_engine(settings.effective_database_url, settings.database_pool_size),
            secret_box=SecretBox(key),
            webhook_secret=webhook,
            platform_id=platform_instance_id(data),
            app_signer=AppSigner.for_data_dir(data),
        )
