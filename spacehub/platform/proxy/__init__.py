"""The reverse proxy: HTTP, SSE and WebSocket traffic to spaces' apps and the control plane."""

from spacehub.platform.proxy.context import ProxyLimits
from spacehub.platform.proxy.server import ProxyThread, proxy_context, start_proxy

__all__ = ["ProxyLimits", "ProxyThread", "proxy_context", "start_proxy"]
