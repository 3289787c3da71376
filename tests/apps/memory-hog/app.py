"""Answers HTTP, then holds ever more memory (written to, so it is resident) until stopped."""

import http.server
import os
import threading
import time

address = (
    os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
    int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
)
server = http.server.ThreadingHTTPServer(address, http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("memory-hog: answering", flush=True)
time.sleep(1)
blocks = []
while True:
    blocks.append(b"x" * (16 * 1024 * 1024))
    print(f"memory-hog: holding {16 * len(blocks)} MiB", flush=True)
