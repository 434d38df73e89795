#!/usr/bin/python3
"""The backend application of the rolling-deploy test: answers every GET
with this host's name (so the load generator sees which server answered),
speaks HTTP/1.1 keep-alive, and dies at once on SIGTERM like a careless
real application, so a request in flight when it stops fails."""
import http.server
import socket
import socketserver

NAME = socket.gethostname().encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One segment per response part without waiting for an ACK (Nagle +
    # delayed ACK would add 40 ms to every keep-alive request).
    disable_nagle_algorithm = True

    def do_GET(self):
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

    def server_bind(self):
        # HTTPServer's own server_bind looks up the FQDN (a DNS query):
        # test hosts have no DNS, and the app must listen at once.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "app", self.server_address[1]


server = Server(("0.0.0.0", 8080), Handler)
server.serve_forever()
