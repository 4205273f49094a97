#!/usr/bin/env python3
"""Operator benchmark (issue 7, part 1, first figure): apply -> three Deployments, one by one.

  operator.py --kubectl KUBECTL --operator BIN --crd crds/tradingagents.yaml [--count 200]

Against the local harness (KUBECONFIG): creates a namespace of its own, starts BIN scoped to it,
watches Deployments in it, then creates COUNT TradingAgents one at a time and times create ->
third Deployment seen by the watch, twice:

- settled: each agent is created once the previous one is Ready (its pods started, its status
  written) and the cluster had 200 ms to finish the previous agent's follow-up work; this is the
  latency of one apply;
- back to back: each agent is created as soon as the previous one's three Deployments exist, while
  the controller-manager, kwok and the operator are still busy with the previous agent's
  ReplicaSets, pods and status; this is the latency under a steady stream of applies.

Prints one JSON object: the latencies in ms, the operator's RSS and peak RSS. Deletes the namespace
and stops the operator at the end. Standard library only; talks to the API server on loopback with
the harness's admin client certificate.
"""

import argparse
import base64
import http.client
import json
import os
import random
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time

GROUP, VERSION, PLURAL = "tradingagents.dev", "v1alpha1", "tradingagents"
IMAGE = "registry.example.com/acme/trading-agent@sha256:" + "0123456789abcdef" * 4


class Api:
    def __init__(self, kubectl):
        cfg = json.loads(subprocess.check_output([kubectl, "config", "view", "--raw", "--minify", "-o", "json"]))
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        host_port = cluster["server"].removeprefix("https://")
        self.host, port = host_port.rsplit(":", 1)
        assert self.host in ("127.0.0.1", "localhost"), f"not a loopback API server: {cluster['server']}"
        self.port = int(port)
        self.tmp = tempfile.TemporaryDirectory(prefix="ta-bench-kube-")
        files = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            path = os.path.join(self.tmp.name, key)
            with open(path, "wb") as f:
                f.write(base64.b64decode(cluster[key] if key.startswith("certificate") else user[key]))
            files[key] = path
        self.ctx = ssl.create_default_context(cafile=files["certificate-authority-data"])
        self.ctx.load_cert_chain(files["client-certificate-data"], files["client-key-data"])

    def conn(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def call(self, method, path, body=None, ok=(200, 201, 202)):
        c = self.conn()
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status not in ok:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return r.status, json.loads(data) if data else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def agent(name, ns):
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TradingAgent",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "image": IMAGE,
            "imageUpdate": {"mode": "Pin"},
            "database": {"secretRef": {"name": "bench-db", "key": "url"}},
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--operator", required=True)
    ap.add_argument("--crd", required=True)
    ap.add_argument("--count", type=int, default=200)
    a = ap.parse_args()

    api = Api(a.kubectl)
    ns = "ta-bench-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    status, _ = api.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}",
                         ok=(200, 404))
    if status == 404:
        subprocess.check_call([a.kubectl, "apply", "-f", a.crd], stdout=subprocess.DEVNULL)
        subprocess.check_call([a.kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                               f"crd/{PLURAL}.{GROUP}"], stdout=subprocess.DEVNULL)
    api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    operator = None
    try:
        api.call("POST", f"/api/v1/namespaces/{ns}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bench-db"},
            "stringData": {"url": "postgres://bench@postgres:5432/bench"}})

        # Yardstick: one plain create round trip on this API server right now (a ConfigMap).
        api_create = []
        for i in range(20):
            t0 = time.monotonic()
            api.call("POST", f"/api/v1/namespaces/{ns}/configmaps",
                     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"yardstick-{i}"}})
            api_create.append((time.monotonic() - t0) * 1000)

        # Watch Deployments: owner name -> set of Deployment names seen.
        seen, first_seen, cond = {}, {}, threading.Condition()
        _, listing = api.call("GET", f"/apis/apps/v1/namespaces/{ns}/deployments")
        rv = listing["metadata"]["resourceVersion"]

        def watch():
            c = api.conn(timeout=3600)
            c.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments?watch=1&resourceVersion={rv}")
            r = c.getresponse()
            for line in r:
                ev = json.loads(line)
                obj = ev.get("object", {})
                for ref in obj.get("metadata", {}).get("ownerReferences", []):
                    if ref.get("kind") == "TradingAgent":
                        with cond:
                            seen.setdefault(ref["name"], set()).add(obj["metadata"]["name"])
                            first_seen.setdefault(ref["name"], time.monotonic())
                            cond.notify_all()

        threading.Thread(target=watch, daemon=True).start()

        metrics_port = free_port()
        operator = subprocess.Popen(
            [a.operator, "--namespace", ns, "--leader-election=false",
             "--metrics-addr", f"127.0.0.1:{metrics_port}", "--log-format", "text"],
            stdout=open(os.path.join(api.tmp.name, "operator.log"), "w"), stderr=subprocess.STDOUT)

        def create_and_wait(name, timeout=60):
            t0 = time.monotonic()
            api.call("POST", f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}", agent(name, ns))
            with cond:
                if not cond.wait_for(lambda: len(seen.get(name, ())) >= 3, timeout):
                    log = open(os.path.join(api.tmp.name, "operator.log")).read()[-2000:]
                    raise RuntimeError(f"{name}: three Deployments not seen within {timeout} s; operator log:\n{log}")
            done = time.monotonic()
            first.append((first_seen[name] - t0) * 1000)
            return (done - t0) * 1000

        def wait_ready(name, timeout=60):
            deadline = time.monotonic() + timeout
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}"
            while time.monotonic() < deadline:
                _, obj = api.call("GET", path)
                conditions = (obj.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                    return
                time.sleep(0.02)
            raise RuntimeError(f"{name}: not Ready within {timeout} s")

        first = []  # create -> first of the three Deployments, ms (where the time goes)
        # Warm-up: the operator's caches are synced and its first reconcile done; not counted.
        for i in range(3):
            create_and_wait(f"warmup-{i}", timeout=120)
            wait_ready(f"warmup-{i}")
        first.clear()
        settled = []
        for i in range(a.count):
            time.sleep(0.2)
            settled.append(create_and_wait(f"settled-{i:04d}"))
            wait_ready(f"settled-{i:04d}")
        settled_first, first = first, []
        back_to_back = [create_and_wait(f"stream-{i:04d}") for i in range(a.count)]

        mem = {}
        with open(f"/proc/{operator.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    mem[k] = int(v.split()[0])
        print(json.dumps({"namespace": ns, "count": a.count, "latencies_ms": settled,
                          "first_deployment_ms": settled_first,
                          "back_to_back_ms": back_to_back, "back_to_back_first_ms": first,
                          "api_create_ms": api_create,
                          "rss_kb": mem.get("VmRSS"), "hwm_kb": mem.get("VmHWM")}))
    finally:
        # Delete the namespace while the operator still runs (it may hold finalizers), then stop it.
        try:
            api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                status, _ = api.call("GET", f"/api/v1/namespaces/{ns}", ok=(200, 404))
                if status == 404:
                    break
                time.sleep(0.5)
        finally:
            if operator and operator.poll() is None:
                operator.send_signal(signal.SIGTERM)
                try:
                    operator.wait(15)
                except subprocess.TimeoutExpired:
                    operator.kill()
                    operator.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
