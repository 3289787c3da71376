"""A space that reports what its runtime gave it, and crashes on request."""

import hashlib
import http.server
import json
import os
import secrets

BOOT = secrets.token_hex(4)
DATA = os.environ.get("SPACEHUB_DATA", "/data")


def count_starts() -> int | None:
    """Append a line to a file in persistent storage; None when the space has none."""
    if not os.path.isdir(DATA) or not os.access(DATA, os.W_OK):
        return None
    path = os.path.join(DATA, "starts of the app.txt")
    with open(path, "a", encoding="utf-8") as starts:
        starts.write(f"{BOOT}\n")
    with open(path, encoding="utf-8") as starts:
        return len(starts.read().splitlines())


STARTS = count_starts()


class Facts(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/").endswith("/crash"):
            print(f"facts {BOOT}: exiting on request", flush=True)
            os._exit(3)
        secret = os.environ.get("CF_SECRET")
        facts = {
            "boot": BOOT,
            "starts": STARTS,
            "secret_sha256": secret and hashlib.sha256(secret.encode()).hexdigest(),
            "env": {
                k: v for k, v in os.environ.items() if k.startswith(("SPACE_", "SYSTEM", "CF_VAR"))
            },
        }
        body = json.dumps(facts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


address = (
    os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
    int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
)
print(f"facts {BOOT}: serving on {address[1]}, {STARTS} starts in storage", flush=True)
http.server.ThreadingHTTPServer(address, Facts).serve_forever()
