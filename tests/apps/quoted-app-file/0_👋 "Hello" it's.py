"""A space whose app file is named `0_👋 "Hello" it's.py`: it answers with the name it runs as."""

import http.server
import json
import os
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {"argv0": os.path.basename(sys.argv[0]), "file": os.path.basename(__file__)},
            ensure_ascii=False,
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


address = (
    os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
    int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
)
print(f"{os.path.basename(__file__)}: serving on {address[1]}", flush=True)
http.server.ThreadingHTTPServer(address, Hello).serve_forever()
