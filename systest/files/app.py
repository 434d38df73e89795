#!/usr/bin/python3
"""The backend application of the rolling-deploy test: answers every GET
with this host's name (so the load generator sees which server answered),
`GET /slow?ms=N` after N milliseconds (a long-running request, N at most
5000), speaks HTTP/1.1 keep-alive, and dies at once on SIGTERM like a
careless real application, so a request in flight when it stops fails."""
import http.server
import socket
import socketserver
import time
import urllib.parse

NAME = socket.gethostname().encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One segment per response part without waiting for an ACK (Nagle +
    # delayed ACK would add 40 ms to every keep-alive request).
    disable_nagle_algorithm = True

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/slow":
            ms = int(urllib.parse.parse_qs(url.query).get("ms", ["1000"])[0])
            time.sleep(min(max(ms, 0), 5000) / 1000)
        body = NAME + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Two load balancers' clients and health checks connect at once; the
    # default listen backlog of 5 can overflow on a busy machine, and a
    # dropped SYN outlasts HAProxy's 1 s connect timeout.
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer's own server_bind looks up the FQDN (a DNS query):
        # test hosts have no DNS, and the app must listen at once.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "app", self.server_address[1]


server = Server(("0.0.0.0", 8080), Handler)
server.serve_forever()
