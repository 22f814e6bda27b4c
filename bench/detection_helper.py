"""Exporter and webhook receiver for bench/detection_latency.sh (loopback only).

GET /metrics serves `rw_signal{series="k"}`: 0 before that series' breach instant, 1
from it on. POST /alert is the Alertmanager webhook: the first arrival of a firing
alert for each series is written to the output file as JSON {series: unix_ms}.

    python3 detection_helper.py PORT_FILE OUT_FILE BREACH_MS[,BREACH_MS...]
"""
import http.server
import os
import json
import socketserver
import sys
import threading
import time

port_file, out_file, breaches = sys.argv[1], sys.argv[2], sys.argv[3]
breach_ms = [int(b) for b in breaches.split(",")]
arrivals = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.time() * 1000
        body = "# TYPE rw_signal gauge\n" + "".join(
            'rw_signal{series="%d"} %d\n' % (k, 1 if now >= b else 0)
            for k, b in enumerate(breach_ms)
        )
        self.reply(body.encode(), "text/plain; version=0.0.4")

    def do_POST(self):
        now = int(time.time() * 1000)
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with lock:
            for alert in payload.get("alerts", []):
                series = alert.get("labels", {}).get("series")
                if alert.get("status") == "firing" and series is not None:
                    arrivals.setdefault(series, now)
            with open(out_file + ".tmp", "w") as f:
                json.dump(arrivals, f)
            os.replace(out_file + ".tmp", out_file)
        self.reply(b"ok", "text/plain")

    def reply(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
with open(port_file, "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
