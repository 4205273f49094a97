#!/usr/bin/env python3
"""Process start -> first `/readyz` 200, and memory at rest: `startup.py PORT LABEL -- CMD...`.

Starts CMD (which must listen on 127.0.0.1:PORT), polls GET /readyz every millisecond with a fresh
connection, and prints one JSON line: milliseconds from spawn to the first answer of any kind
(`listening_ms`) and to the first 200 (`ready_ms`), and VmRSS / VmHWM one second after ready.
Then it stops the process (SIGTERM, SIGKILL after 10 s). Standard library only.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time


def rss_kb(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def main() -> int:
    port, label = int(sys.argv[1]), sys.argv[2]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = ready = None
    deadline = t0 + 30
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                print(json.dumps({"label": label, "error": f"exited with {proc.returncode}"}))
                return 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/readyz")
                status = conn.getresponse().status
                conn.close()
                now = time.monotonic()
                if listening is None:
                    listening = now
                if status == 200:
                    ready = now
                    break
            except OSError:
                pass
            time.sleep(0.001)
        if ready is None:
            print(json.dumps({"label": label, "error": "not ready within 30 s"}))
            return 1
        time.sleep(1)
        mem = rss_kb(proc.pid)
        print(json.dumps({
            "label": label,
            "listening_ms": round((listening - t0) * 1000, 1),
            "ready_ms": round((ready - t0) * 1000, 1),
            "rss_kb": mem.get("VmRSS"),
            "hwm_kb": mem.get("VmHWM"),
        }))
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
