"""The nginx front: `serve --proxy nginx` puts a managed nginx before spacehub's proxy."""

from spacehub.platform.front.nginx_config import (
    FrontConfig,
    FrontError,
    Tls,
    address,
    front_config,
)
from spacehub.platform.front.nginx_front import NginxFront, find_nginx

__all__ = [
    "FrontConfig",
    "FrontError",
    "NginxFront",
    "Tls",
    "address",
    "find_nginx",
    "front_config",
]
