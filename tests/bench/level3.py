#!/usr/bin/env python3
"""Level 3 side by side (issue 20, part 4): a push, until every pod of one trading desk serves the
new digest on the harness's real kubelet node (containerd pulls, runc starts, the kubelet's probes
pass), the operator against the peer (Argo CD Image Updater + Argo CD). Run by
tests/bench/level3.sh, which builds what it needs and brings the NODE=real cluster up; prints one
JSON object on stdout.

One desk is the operator's three Deployments (api, bot, strategy) of one TradingAgent. The peer
gets the very same three Deployments (copied from the operator's, owner and pins removed, image
on its own tag), synced by one Application from a local git repository, its image followed by the
Image Updater (digest strategy). Both run the same trading-agent image on their own PostgreSQL
database, pushed to the same real docker-registry on the node's address, and each push changes
only the image config (a label): the layers are already on the node, as after a rebuild of the
same code.

Measured, one tool at a time (the other one's pods gone), ROUNDS pushes each (polled pushes after
the same seeded random pauses for both tools, so that they land anywhere in the interval):
- ours, notified: the registry's notification reaches the operator's webhook;
- ours, polled: no notification, `imageUpdate.interval` = INTERVAL;
- the peer, polled every INTERVAL (the Image Updater this machine can build has no webhook).
Each round: push completed -> every Deployment pinned to the new digest -> every pod of the desk
Ready, running the new digest (the kubelet's imageID), the old pods gone.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_argocd import (  # noqa: E402  (the folder is put on the path first)
    ARGOCD_NS, BenchError, Kube, Proc, application, free_port, git_repository, install_argocd,
    start_argocd, start_updater, wait_tcp)

NODE_LABEL = "trading-agent.dev/node=real"
DESK = "desk"
OURS_REPOSITORY = "trading-agent"
PEER_REPOSITORY = "peer-agent"
TAG = "latest"
API_TOKEN = "level3-api-token-0123456789"
WEBHOOK_TOKEN = "level3-webhook-token-0123456789"
ROLLOUT_TIMEOUT_S = 240


def log(message):
    print(f"==> [{time.strftime('%H:%M:%S', time.gmtime())}] level 3: {message}", file=sys.stderr, flush=True)


def poll_phases(rounds, interval):
    """The pause before each polled push, the same for both tools: a push lands at a random point
    of the polling interval (uniform, seeded), not in step with the previous round."""
    rng = random.Random(20)
    return [round(rng.uniform(0, interval), 2) for _ in range(rounds)]


def real_node(kube):
    """The real node's address and pod CIDR; fails when the cluster has no real node."""
    nodes = json.loads(kube.run("get", "nodes", "-l", NODE_LABEL, "-o", "json"))["items"]
    if not nodes:
        raise BenchError("the cluster has no real node (label trading-agent.dev/node=real): "
                         "run with NODE=real (tests/bench/level3.sh does)")
    node = nodes[0]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    # The harness's CNI bridge hands out this subnet (tests/harness/real-node.sh); the Node has no podCIDR.
    pod_cidr = node["spec"].get("podCIDR") or os.environ.get("REAL_NODE_POD_CIDR", "10.77.0.0/24")
    return {"name": node["metadata"]["name"], "ip": ip, "pod_cidr": pod_cidr}


def node_namespace(kube, name):
    """A namespace whose pods run on the real node only (tests/harness/README.md, "Level 3")."""
    key, value = NODE_LABEL.split("=")
    toleration = [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}]
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": {
        "scheduler.alpha.kubernetes.io/node-selector": NODE_LABEL,
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(toleration)}}}])


def secrets(namespace, database_url):
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
             "stringData": {key: value}}
            for name, key, value in (("desk-db", "url", database_url), ("desk-api", "token", API_TOKEN))]


class Postgres:
    """A throwaway PostgreSQL that the pods reach at the node's address."""

    def __init__(self, node):
        pg_bin = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v))[-1]
        self.bin = f"/usr/lib/postgresql/{pg_bin}/bin"
        # Outside root's private folders: the server runs as the postgres user when we are root.
        self.dir = tempfile.mkdtemp(prefix="ta-level3-pg-")
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if self.as_pg:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync")
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as hba:
            hba.write(f"host all all {node['pod_cidr']} trust\n")
        self.run(f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "postgres.log"), "-w",
                 "-o", f"-h 127.0.0.1,{node['ip']} -p {self.port} -k {self.dir} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off", "start")
        self.node_ip = node["ip"]

    def run(self, *argv):
        result = subprocess.run([*self.as_pg, *argv], capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"{os.path.basename(argv[0])}: {result.stdout}{result.stderr}".strip())

    def database(self, name):
        """A new database; its URL as the pods see it."""
        self.run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres@{self.node_ip}:{self.port}/{name}"

    def stop(self):
        subprocess.run([*self.as_pg, f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Registries:
    """Two docker-registry processes on one storage at the node's address: one notifies the
    operator's webhook of every push, the other no one (the polled pushes, and the peer's)."""

    def __init__(self, node, workdir):
        self.workdir = workdir
        self.notifying = f"{node['ip']}:{free_port()}"
        self.quiet = f"{node['ip']}:{free_port()}"

    def start(self, webhook_url, procs, real_node_sh):
        storage = os.path.join(self.workdir, "registry")
        for name, address in (("registry-notifying", self.notifying), ("registry-quiet", self.quiet)):
            config = os.path.join(self.workdir, f"{name}.yml")
            with open(config, "w") as f:
                f.write(f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
                        f"http: {{addr: {address}}}\n")
                if address == self.notifying:
                    f.write("notifications:\n  endpoints:\n    - name: trading-agent-operator\n"
                            f"      url: {webhook_url}\n"
                            f"      headers: {{Authorization: [\"Bearer {WEBHOOK_TOKEN}\"]}}\n"
                            "      timeout: 2s\n      threshold: 3\n      backoff: 1s\n")
            proc = Proc(name, [shutil.which("docker-registry") or "docker-registry", "serve", config], self.workdir)
            procs.append(proc)
            host, port = address.rsplit(":", 1)
            wait_tcp(int(port), 20, name, proc, host=host)
            # containerd on the node pulls over plain HTTP from exactly these registries.
            subprocess.run([real_node_sh, "allow-registry", address], check=True, capture_output=True)


class Images:
    """Pushes of the trading-agent image, each with a new config (a version label), the layers the
    same: a new digest whose pull only fetches the config."""

    def __init__(self, build_image, binary):
        self.build_image, self.binary, self.version = build_image, binary, 0

    def push(self, registry, repository):
        """Builds and pushes; returns (digest, the monotonic time the push completed, seconds the
        build and push took)."""
        self.version += 1
        started = time.monotonic()
        result = subprocess.run([self.build_image, "--binary", self.binary, "--ref", f"{registry}/{repository}:{TAG}",
                                 "--port", "8000", "--insecure",
                                 "--label", f"org.opencontainers.image.version=level3-{self.version}"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchError(f"build-image.sh: {result.stderr.strip()[-2000:]}")
        digest = result.stdout.strip().splitlines()[-1]
        if not digest.startswith("sha256:"):
            raise BenchError(f"build-image.sh printed no digest: {result.stdout[-500:]}")
        done = time.monotonic()
        return digest, done, done - started


def desk_state(kube, namespace, digest):
    """(Deployments pinned to `digest`, Deployments, pods serving `digest`, pods wanted, other pods):
    a pod serves when it is Ready and the kubelet runs `digest`; pods being deleted are not
    counted, pods of another digest are."""
    deployments = json.loads(kube.run("get", "deployments", "-n", namespace, "-l",
                                      f"app.kubernetes.io/instance={DESK}", "-o", "json"))["items"]
    pinned = sum(1 for d in deployments
                 if all(c["image"].endswith("@" + digest) for c in d["spec"]["template"]["spec"]["containers"]))
    wanted = sum(d["spec"].get("replicas", 1) for d in deployments)
    pods = json.loads(kube.run("get", "pods", "-n", namespace, "-l",
                               f"app.kubernetes.io/instance={DESK}", "-o", "json"))["items"]
    serving = others = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and all(s.get("ready") and s.get("imageID", "").endswith("@" + digest) for s in statuses):
            serving += 1
        else:
            others += 1
    return pinned, len(deployments), serving, wanted, others


def roll_out(kube, namespace, digest, since, procs, what):
    """Waits until the desk in `namespace` serves `digest`; returns (pinned_s, serving_s) from
    `since`."""
    pinned_at = None
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_S
    while True:
        pinned, deployments, serving, wanted, others = desk_state(kube, namespace, digest)
        now = time.monotonic()
        if pinned_at is None and deployments and pinned == deployments:
            pinned_at = now
        if pinned_at is not None and serving == wanted and others == 0 and wanted > 0:
            return round(pinned_at - since, 2), round(now - since, 2)
        if now > deadline:
            raise BenchError(f"{what}: after {ROLLOUT_TIMEOUT_S} s, {pinned}/{deployments} Deployments pinned to "
                             f"{digest}, {serving}/{wanted} pods serving it, {others} other pods")
        for p in procs:
            p.check_alive()
        time.sleep(0.25)


def summary(rounds):
    return {"rounds": rounds,
            "pinned_s_median": round(statistics.median(r["pinned_s"] for r in rounds), 2),
            "serving_s_median": round(statistics.median(r["serving_s"] for r in rounds), 2)}


def usage(procs):
    """CPU seconds and peak RSS of each process so far."""
    samples = {p.name: p.sample() for p in procs}
    return {name: {"cpu_s": round(cpu, 2), "peak_rss_mb": round(hwm / 1024, 1)} for name, (cpu, hwm) in samples.items()}


def ours(args, kube, node, pg, images, workdir, procs):
    namespace = f"level3-ours-{os.getpid()}"
    node_namespace(kube, namespace)
    kube.apply(secrets(namespace, pg.database("ours")))
    registries = Registries(node, workdir)
    metrics, webhook = free_port(), free_port()
    operator = Proc("operator", [args.operator, "--namespace", namespace, "--leader-election", "false",
                                 "--metrics-addr", f"127.0.0.1:{metrics}", "--webhook-addr", f"127.0.0.1:{webhook}",
                                 "--insecure-registry", registries.notifying, "--insecure-registry", registries.quiet,
                                 "--log-format", "text"],
                    workdir, dict(os.environ, WEBHOOK_TOKEN=WEBHOOK_TOKEN, RUST_LOG="info"))
    procs.append(operator)
    wait_tcp(metrics, 60, "the operator", operator)
    registries.start(f"http://127.0.0.1:{webhook}/registry/notifications", procs, args.real_node)

    first, _, build_s = images.push(registries.quiet, OURS_REPOSITORY)
    log(f"ours: TradingAgent {namespace}/{DESK} on {first} (image built and pushed in {build_s:.1f} s)")
    started = time.monotonic()
    kube.apply([{"apiVersion": "tradingagents.dev/v1alpha1", "kind": "TradingAgent",
                 "metadata": {"name": DESK, "namespace": namespace},
                 "spec": {"image": f"{registries.notifying}/{OURS_REPOSITORY}:{TAG}",
                          "imageUpdate": {"interval": "0s"},
                          "database": {"secretRef": {"name": "desk-db", "key": "url"}},
                          "api": {"tokenSecretRef": {"name": "desk-api", "key": "token"}}}}])
    _, first_serving_s = roll_out(kube, namespace, first, started, procs, "ours, first rollout")
    log(f"ours: every pod serving {first} {first_serving_s} s after the TradingAgent was applied")

    result = {"namespace": namespace, "first_serving_s": first_serving_s}
    for mode in ("notified", "polled"):
        phases = [0.0] * args.rounds
        if mode == "polled":
            kube.run("patch", "tradingagent", DESK, "-n", namespace, "--type", "merge",
                     "-p", json.dumps({"spec": {"imageUpdate": {"interval": f"{args.interval}s"}}}))
            # Polling in its rhythm before the first push.
            time.sleep(args.interval)
            phases = poll_phases(args.rounds, args.interval)
        rounds = []
        for i in range(args.rounds):
            time.sleep(phases[i])
            registry = registries.notifying if mode == "notified" else registries.quiet
            digest, pushed, build_s = images.push(registry, OURS_REPOSITORY)
            pinned_s, serving_s = roll_out(kube, namespace, digest, pushed, procs, f"ours, {mode} push {i + 1}")
            log(f"ours, {mode} push {i + 1}: pinned {pinned_s} s, every pod serving {serving_s} s after the push")
            rounds.append({"digest": digest, "pinned_s": pinned_s, "serving_s": serving_s, "build_push_s": round(build_s, 2)})
        result[mode] = summary(rounds)
    # The peer's Deployments: the operator's own, as they run now.
    deployments = json.loads(kube.run("get", "deployments", "-n", namespace, "-l",
                                      f"app.kubernetes.io/instance={DESK}", "-o", "json"))["items"]
    result["pods"] = sum(d["spec"].get("replicas", 1) for d in deployments)
    result["usage"] = usage([operator])
    operator.stop()
    procs.remove(operator)
    # Gone before the peer runs: one tool's pods on the node at a time.
    kube.run("delete", "namespace", namespace, "--timeout=180s", check=False)
    return result, deployments, registries


def peer_deployments(deployments, image):
    """The operator's Deployments as a user would keep them in git: no owner, no status, the image
    on the tag (the Image Updater pins it)."""
    out = []
    for d in deployments:
        spec = json.loads(json.dumps(d["spec"]))
        for c in spec["template"]["spec"]["containers"]:
            c["image"] = image
            for e in c.get("env", []):
                if e["name"] == "IMAGE_REF":
                    e["value"] = image
        out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": d["metadata"]["name"], "labels": d["metadata"].get("labels", {})},
                    "spec": spec})
    return out


def peer(args, kube, node, pg, images, registries, deployments, workdir, procs):
    namespace = f"level3-peer-{os.getpid()}"
    install_argocd(kube, args.crds, [])
    node_namespace(kube, namespace)
    kube.apply(secrets(namespace, pg.database("peer")))
    image = f"{registries.quiet}/{PEER_REPOSITORY}:{TAG}"
    first, _, _ = images.push(registries.quiet, PEER_REPOSITORY)
    repo = os.path.join(workdir, "repo")
    os.makedirs(os.path.join(repo, DESK))
    with open(os.path.join(repo, DESK, "kustomization.yaml"), "w") as f:
        f.write("resources:\n  - deployments.yaml\n")
    with open(os.path.join(repo, DESK, "deployments.yaml"), "w") as f:
        # JSON is YAML: one document per Deployment.
        f.write("\n---\n".join(json.dumps(d) for d in peer_deployments(deployments, image)) + "\n")
    repo_url = git_repository(repo)
    env, argo = start_argocd(args.argocd, args.kustomize, workdir, procs)
    log(f"peer: Application {DESK} of {len(deployments)} Deployments on {image}")
    started = time.monotonic()
    kube.apply([application(DESK, image, repo_url, DESK, namespace)])
    updater = start_updater(args.updater, registries.quiet, f"http://{registries.quiet}", args.interval, workdir,
                            env, procs)
    _, first_serving_s = roll_out(kube, namespace, first, started, procs, "the peer, first rollout")
    log(f"peer: every pod serving {first} {first_serving_s} s after the Application was applied")
    rounds = []
    time.sleep(args.interval)
    for i, phase in enumerate(poll_phases(args.rounds, args.interval)):
        time.sleep(phase)
        digest, pushed, build_s = images.push(registries.quiet, PEER_REPOSITORY)
        pinned_s, serving_s = roll_out(kube, namespace, digest, pushed, procs, f"the peer, polled push {i + 1}")
        log(f"peer, polled push {i + 1}: pinned {pinned_s} s, every pod serving {serving_s} s after the push")
        rounds.append({"digest": digest, "pinned_s": pinned_s, "serving_s": serving_s, "build_push_s": round(build_s, 2)})
    result = {"namespace": namespace, "first_serving_s": first_serving_s, "polled": summary(rounds),
              "pods": sum(d["spec"].get("replicas", 1) for d in deployments),
              "usage": usage([*argo, updater])}
    for p in [updater, *reversed(argo)]:
        p.stop()
        procs.remove(p)
    kube.run("delete", "applications.argoproj.io", DESK, "-n", ARGOCD_NS, "--timeout=60s", check=False)
    kube.run("delete", "namespace", namespace, ARGOCD_NS, "--timeout=180s", check=False)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operator", required=True, help="the trading-agent-operator binary")
    parser.add_argument("--workload", required=True, help="the trading-agent binary (the image's entrypoint)")
    parser.add_argument("--build-image", required=True, help="scripts/build-image.sh")
    parser.add_argument("--real-node", required=True, help="tests/harness/real-node.sh (allow-registry)")
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--argocd", required=True)
    parser.add_argument("--updater", required=True)
    parser.add_argument("--kustomize", required=True)
    parser.add_argument("--crds", required=True, help="Argo CD's manifests/crds folder")
    parser.add_argument("--versions", default="{}", help="JSON: the peer's versions, copied into the result")
    parser.add_argument("--rounds", type=int, default=5, help="pushes per tool and mode")
    parser.add_argument("--interval", type=int, default=10, help="polling interval of both tools, s")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="ta-level3-")
    kube = Kube(args.kubectl)
    procs, pg = [], None
    try:
        node = real_node(kube)
        pg = Postgres(node)
        images = Images(args.build_image, args.workload)
        our_result, deployments, registries = ours(args, kube, node, pg, images, workdir, procs)
        peer_result = peer(args, kube, node, pg, images, registries, deployments, workdir, procs)
        peer_result.update(json.loads(args.versions))
        print(json.dumps({"node": node, "interval_s": args.interval, "rounds": args.rounds,
                          "ours": our_result, "peer": peer_result}))
        return 0
    except BenchError as e:
        log(f"level 3: FAILED: {e}")
        print(json.dumps({"error": str(e)}))
        return 1
    finally:
        for p in reversed(procs):
            p.stop()
        if pg is not None:
            pg.stop()
        keep = os.environ.get("LEVEL3_LOGS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            for name in os.listdir(workdir):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(workdir, name), keep)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
