"""The post-receive hook: a tiny script that sends a signed webhook to the control plane.

`git http-backend` runs it inside the push, so the build is queued before the push returns.
"""

import http.client
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spacehub.platform.signatures import sign

if TYPE_CHECKING:  # the hook runs inside every push: keep its imports light
    from spacehub.platform.settings import Settings

WEBHOOK_PATH = "/internal/hooks/push"
SIGNATURE_HEADER = "X-Spacehub-Signature"


def hooks_dir(settings: "Settings") -> Path:
    return settings.run_dir / "hooks"


def install_hooks(settings: "Settings") -> None:
    """Write the hook that runs this interpreter's spacehub (paths change between installs)."""
    directory = hooks_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "post-receive"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m spacehub git-hook post-receive\n')
    script.chmod(0o755)


def hook_environment(settings: "Settings", space_id: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SPACEHUB_HOOK_SOCKET": str(settings.control_socket.resolve()),
        "SPACEHUB_HOOK_SECRET_FILE": str((settings.data_dir / "webhook.secret").resolve()),
        "SPACEHUB_HOOK_SPACE": space_id,
    }


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def run_post_receive(stdin_text: str, environ: dict[str, str]) -> int:
    """Report the pushed refs; print the platform's answer for the pusher to see."""
    updates = []
    for line in stdin_text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            updates.append({"old": parts[0], "new": parts[1], "ref": parts[2]})
    body = json.dumps({"space": environ["SPACEHUB_HOOK_SPACE"], "updates": updates}).encode()
    secret = Path(environ["SPACEHUB_HOOK_SECRET_FILE"]).read_bytes().strip()
    connection = _UnixConnection(environ["SPACEHUB_HOOK_SOCKET"])
    try:
        connection.request(
            "POST",
            WEBHOOK_PATH,
            body=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)},
        )
        answer = connection.getresponse()
        message = json.loads(answer.read() or b"{}").get("message", "")
    except (OSError, ValueError) as error:
        print(
            f"spacehub: could not queue a build ({error}); restart the space to build", flush=True
        )
        return 0
    finally:
        connection.close()
    if message:
        print(message, flush=True)
    return 0
