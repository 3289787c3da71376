"""Open TCP connections from nginx's processes to an app: a WebSocket or a server-sent events
stream nginx tunnels shows in its log only when it ends, so before a space is frozen or stopped
its connections are counted here (Linux /proc: sockets of nginx's workers, matched by inode)."""

import os
import socket
import struct
from pathlib import Path

PROC = Path("/proc")
ESTABLISHED = "01"


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (nginx's workers, old ones after a reload too)."""
    children = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so cut after its end.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def accepting(worker: int) -> bool:
    """Whether an nginx worker still takes new connections: an old one, after a reload, names
    itself `nginx: worker process is shutting down` while its open connections finish."""
    try:
        title = (PROC / str(worker) / "cmdline").read_bytes()
    except OSError:
        return False  # exited
    return bool(title) and b"shutting down" not in title


def socket_inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            entries = list(os.scandir(PROC / str(pid) / "fd"))
        except OSError:
            continue
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _proc_address(host: str, port: int) -> tuple[str, str]:
    """`host:port` as /proc/net/tcp{,6} writes a remote address, and which of the two files."""
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        words = struct.unpack("<4I", packed)  # each 32-bit word in host (little-endian) order
        return "".join(f"{word:08X}" for word in words) + f":{port:04X}", "tcp6"
    (word,) = struct.unpack("<I", socket.inet_aton(host))
    return f"{word:08X}:{port:04X}", "tcp"


def established_to(pids: list[int], host: str, port: int) -> int:
    """How many connections of the processes `pids` to `host:port` are established."""
    inodes = socket_inodes(pids)
    if not inodes:
        return 0
    remote, table = _proc_address(host, port)
    count = 0
    try:
        lines = (PROC / "net" / table).read_text().splitlines()[1:]
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[2] == remote and fields[3] == ESTABLISHED:
            count += fields[9] in inodes
    return count
