#!/usr/bin/python3
"""Load generator of the rolling-deploy test, run on the LB host: WORKERS
threads send GET / through HAProxy until STOP_FILE exists (or MAX_SECONDS
pass, or MAX_REQUESTS are sent), each on a connection it reuses for
PER_CONN requests (1: a new connection per request). SLOW_WORKERS more
threads (default 0) send long-running requests, `GET /slow?ms=SLOW_MS`, a
new connection each. Every request that does not get a 200 is a failure,
with its time and error. Progress and the final figures go to OUT (JSON),
rewritten every half second.

    loadgen.py URL_HOST URL_PORT WORKERS PER_CONN STOP_FILE OUT MAX_SECONDS MAX_REQUESTS [SLOW_WORKERS SLOW_MS]
"""
import http.client
import json
import os
import sys
import threading
import time

host, port, workers, per_conn, stop_file, out, max_seconds, max_requests = sys.argv[1:9]
slow_workers, slow_ms = (sys.argv[9:11] + ["0", "0"])[:2]
port, workers, per_conn = int(port), int(workers), int(per_conn)
slow_workers, slow_ms = int(slow_workers), int(slow_ms)
max_seconds, max_requests = float(max_seconds), int(max_requests)

lock = threading.Lock()
stats = {"sent": 0, "ok": 0, "failed": 0, "by_server": {}, "failures": [],
         "connections": 0, "slow_ok": 0, "started": time.time(), "ended": None}
deadline = time.time() + max_seconds


def done():
    return os.path.exists(stop_file) or time.time() > deadline or stats["sent"] >= max_requests


def worker(path="/", per_conn=per_conn):
    while not done():
        conn = http.client.HTTPConnection(host, port, timeout=5 + slow_ms / 1000)
        with lock:
            stats["connections"] += 1
        for _ in range(per_conn):
            if done():
                break
            headers = {} if per_conn > 1 else {"Connection": "close"}
            t = time.time()
            with lock:
                stats["sent"] += 1
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace").strip()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {body[:80]}")
                with lock:
                    stats["ok"] += 1
                    stats["slow_ok"] += path != "/"
                    stats["by_server"][body] = stats["by_server"].get(body, 0) + 1
            except Exception as e:  # every way a request can fail counts
                with lock:
                    stats["failed"] += 1
                    if len(stats["failures"]) < 100:
                        stats["failures"].append([round(t, 3), repr(e)])
                break
            time.sleep(0.01)
        conn.close()


def dump():
    with lock:
        text = json.dumps(stats)
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)


threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
threads += [threading.Thread(target=worker, args=(f"/slow?ms={slow_ms}", 1), daemon=True)
            for _ in range(slow_workers)]
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    dump()
    time.sleep(0.5)
stats["ended"] = time.time()
dump()
