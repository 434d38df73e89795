#!/usr/bin/python3
"""The backend application of the rolling-deploy test: answers every GET
with this host's name (so the load generator sees which server answered),
speaks HTTP/1.1 keep-alive, and dies at once on SIGTERM like a careless
real application, so a request in flight when it stops fails."""
import http.server
import socket

NAME = socket.gethostname().encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = NAME + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
server.daemon_threads = True
server.serve_forever()
