#!/usr/bin/python3
"""Watches HAProxy's view of one backend through its stats socket, every
100 ms, and appends a line to OUT whenever a server's status or session
count changes: `TIME SERVER STATUS SCUR`. This is the LB-side evidence of
the rolling-deploy test (DRAIN before the app stops, UP after it is back).

    lbwatch.py SOCKET BACKEND OUT STOP_FILE MAX_SECONDS
"""
import os
import socket
import sys
import time

sock_path, backend, out, stop_file, max_seconds = sys.argv[1:]
deadline = time.time() + float(max_seconds)


def show_stat():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sock_path)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {r["svname"]: (r["status"].replace(" ", "_"), r["scur"])
            for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}


last = {}
with open(out, "a", buffering=1) as f:
    while not os.path.exists(stop_file) and time.time() < deadline:
        t = time.time()
        try:
            now = show_stat()
        except OSError as e:
            f.write(f"{t:.3f} - ERROR {e!r}\n")
            time.sleep(0.1)
            continue
        for server, (status, scur) in sorted(now.items()):
            if last.get(server) != (status, scur):
                f.write(f"{t:.3f} {server} {status} {scur}\n")
        last = now
        time.sleep(0.1)
