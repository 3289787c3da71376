"""The platform's instance id: made once per data dir, carried by every Docker object it makes.

Two platforms on one Docker engine may both have a space `admin/demo`; the id in the labels
(and names) of containers, images and volumes keeps each to its own.
"""

import os
import re
import secrets
import time
from pathlib import Path

INSTANCE_ID_FILE = "instance-id"
_VALID = re.compile(r"[a-z0-9]{1,32}")


def platform_instance_id(data_dir: Path) -> str:
    """Read `DATA_DIR/instance-id`, or make it: `serve` and `worker` may race to, one wins."""
    path = data_dir / INSTANCE_ID_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return _read(path)
    with os.fdopen(descriptor, "w") as file:
        value = secrets.token_hex(6)
        file.write(value + "\n")
    return value


def _read(path: Path) -> str:
    deadline = time.monotonic() + 5
    while not (value := path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the process that made the file has not written it yet
    if not _VALID.fullmatch(value):
        raise ValueError(f"{path} must hold 1 to 32 lower-case letters and digits, not {value!r}")
    return value
