#!/usr/bin/env python3
"""Argo CD Image Updater + Argo CD at N Deployments following one tag (issue 20, the peer measured
when Keel cannot be built). Run by tests/bench/peer-argocd.sh, which builds the binaries; this
script drives one N on the cluster in $KUBECONFIG and prints one JSON object on stdout.

The chain under test, all real and all on loopback:
  docker-registry (Debian, CNCF Distribution)  <- argocd-image-updater polls the tag (digest strategy)
  argocd-image-updater                          -> writes the digest into each Application's
                                                   spec.source.kustomize.images
  argocd-application-controller + repo-server   -> render the Application (kustomize, from a local
  (+ redis)                                        git repository) and sync the Deployment

One Application per Deployment (as one TradingAgent per agent), all from one kustomize base with
namePrefix a<i>-, automated sync. Measured: Image Updater start -> every Deployment pinned to the
tag's digest; registry manifest requests per polling interval (the registry's access log) and API
server writes while idle; a push -> every Deployment carries the new digest (polling; this Image
Updater version has no webhook); the API server's writes from the push until the writes settle;
CPU seconds and peak RSS of every process of the chain (/proc).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPOSITORY = "bench/agent"
TAG = "stable"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ARGOCD_NS = "argocd"
ANNOTATION = "argocd-image-updater.argoproj.io"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def log(message):
    print(f"==> [{time.strftime('%H:%M:%S', time.gmtime())}] peer-argocd: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, timeout, what, proc=None, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"{what} did not listen on {host}:{port} within {timeout} s")


class Proc:
    """A child process with its log in the work dir; CPU seconds (its own and its waited-for
    children's: the repo-server's git and kustomize) and peak RSS read from /proc."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log_file = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
        self.last_cpu = 0.0
        self.last_hwm_kib = 0

    def check_alive(self):
        if self.popen.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.popen.returncode}: {tail(self.log_path)}")

    def sample(self):
        """CPU seconds so far and peak RSS (VmHWM), kept from the last reading once it exits."""
        pid = self.popen.pid
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the name.
            self.last_cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    self.last_hwm_kib = int(line.split()[1])
        except (OSError, IndexError, ValueError):
            pass
        return self.last_cpu, self.last_hwm_kib

    def stop(self):
        self.sample()
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log_file.close()


def tail(path, size=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


# ---- the registry ----

def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def push_blob(base, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers, _ = http("POST", f"{base}/v2/{REPOSITORY}/blobs/uploads/")
    location = headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    http("PUT", f"{location}{separator}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest


def push_image(base, salt):
    """Pushes a new image (a real OCI manifest, linux/amd64 config, one layer) to REPOSITORY:TAG
    and returns the manifest's digest."""
    layer = f"peer-argocd layer {salt} {time.time_ns()}".encode()
    layer_digest = push_blob(base, layer)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    config_digest = push_blob(base, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }).encode()
    http("PUT", f"{base}/v2/{REPOSITORY}/manifests/{TAG}", manifest, {"Content-Type": OCI_MANIFEST})
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


ACCESS = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (/v2/\S*) HTTP/')


def registry_requests(log_path):
    """(manifest GET/HEAD requests, all GET/HEAD requests) in the registry's access log so far."""
    manifests = reads = 0
    for line in open(log_path, errors="replace"):
        m = ACCESS.search(line)
        if not m or m.group(1) not in ("GET", "HEAD"):
            continue
        reads += 1
        if "/manifests/" in m.group(2):
            manifests += 1
    return manifests, reads


# ---- the cluster ----

class Kube:
    def __init__(self, kubectl):
        self.kubectl = kubectl

    def run(self, *args, stdin=None, check=True):
        result = subprocess.run([self.kubectl, *args], input=stdin, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()}")
        return result.stdout

    def apply(self, objects):
        self.run("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def writes(self):
        """The API server's write requests so far, by 'VERB resource[/sub] (group) [code]'."""
        writes = {}
        for line in self.run("get", "--raw", "/metrics").splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{"):].rpartition("} ")
            labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
            verb = labels.get("verb", "")
            if verb not in ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION") or labels.get("dry_run"):
                continue
            key = f"{verb} {labels.get('resource', '')}"
            if labels.get("subresource"):
                key += "/" + labels["subresource"]
            if labels.get("group"):
                key += f" ({labels['group']})"
            if not labels.get("code", "").startswith("2"):
                key += f" [{labels.get('code')}]"
            writes[key] = writes.get(key, 0.0) + float(value)
        return writes


def writes_between(before, after):
    """Writes between two readings, without the heartbeats (Leases, kwok's node status)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()
            if v - before.get(k, 0.0) > 0 and " leases" not in k and " nodes/status" not in k}


def chain_writes(writes):
    """Of those, the chain's own: every write to an Application (the Image Updater's spec update,
    the controller's status and operation) and the controller's patches of the Deployments (its
    kubectl-style apply). Its Events are core/v1 like the controller-manager's, so not counted."""
    return sum(v for k, v in writes.items() if " applications" in k or k.startswith("PATCH deployments "))


def top(writes, n=6):
    return dict(sorted(writes.items(), key=lambda kv: -kv[1])[:n])


class DeploymentWatch:
    """`kubectl get --watch` of the namespace's Deployments: name -> image, kept current."""

    def __init__(self, kubectl, namespace):
        self.images = {}
        self.cond = threading.Condition()
        self.popen = subprocess.Popen(
            [kubectl, "get", "deployments", "-n", namespace, "--watch", "-o",
             'jsonpath={.metadata.name}{" "}{.spec.template.spec.containers[0].image}{"\\n"}'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            parts = line.split()
            if len(parts) == 2:
                with self.cond:
                    self.images[parts[0]] = parts[1]
                    self.cond.notify_all()

    def count(self, predicate):
        with self.cond:
            return sum(1 for image in self.images.values() if predicate(image))

    def wait(self, total, predicate, timeout, what, procs):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                done = sum(1 for image in self.images.values() if predicate(image))
                if done >= total:
                    return time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{what}: {done} of {total} Deployments after {timeout} s")
                self.cond.wait(min(left, 1.0))
                for p in procs:
                    p.check_alive()

    def stop(self):
        self.popen.kill()
        self.popen.wait()


def settle(kube, since, quiet_s=3.0, limit_s=60.0):
    """Waits until no write but the heartbeats for quiet_s (at most limit_s); returns the writes
    since `since`."""
    deadline = time.monotonic() + limit_s
    last = kube.writes()
    quiet_from = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = kube.writes()
        if writes_between(last, now):
            quiet_from = time.monotonic()
            last = now
        elif time.monotonic() - quiet_from >= quiet_s:
            break
    return writes_between(since, last)


def updater_cycles(log_path):
    """Durations (s) of the Image Updater's update cycles, from its log: the time from "Starting
    image update cycle" to its "Processing results"; the next cycle starts an interval after."""
    stamp = re.compile(r'time="([^"]+)"')
    started, durations = None, []
    for line in open(log_path, errors="replace"):
        m = stamp.search(line)
        if not m:
            continue
        at = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S"))
        if "Starting image update cycle" in line:
            started = at
        elif "Processing results" in line and started is not None:
            durations.append(at - started)
            started = None
    return durations


# ---- Argo CD and the Image Updater (also used by tests/bench/level3.py) ----

def git_repository(folder):
    """Makes `folder` a git repository with one commit of everything in it; returns its URL."""
    git = ["git", "-C", folder, "-c", "user.name=bench", "-c", "user.email=bench@127.0.0.1", "-c", "init.defaultBranch=main"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(git + step, check=True, capture_output=True)
    return f"file://{folder}"


def install_argocd(kube, crds, namespaces):
    """Argo CD's CRDs, its namespace, settings and default project, and the destination
    namespaces."""
    for crd in ("application-crd.yaml", "appproject-crd.yaml"):
        kube.run("apply", "--server-side", "--force-conflicts", "-f", os.path.join(crds, crd))
    for attempt in range(40):
        # Right after the apply, a CRD has no status yet and `kubectl wait` refuses it.
        try:
            kube.run("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/applications.argoproj.io", "crd/appprojects.argoproj.io")
            break
        except BenchError as e:
            if "accessor error" not in str(e) or attempt == 39:
                raise
            time.sleep(0.5)
    labels = {"app.kubernetes.io/part-of": "argocd"}
    kube.apply([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NS}},
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": ARGOCD_NS, "labels": labels},
         "data": {"timeout.reconciliation": "180s"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", "namespace": ARGOCD_NS, "labels": labels},
         "stringData": {"server.secretkey": "peer-argocd-bench"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {"name": "default", "namespace": ARGOCD_NS},
         "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                  "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
    ])


def start_argocd(argocd, kustomize, workdir, procs):
    """redis, the repo-server and the application-controller, outside the cluster on loopback;
    returns the environment they run in and the three processes."""
    kubeconfig = os.environ["KUBECONFIG"]
    redis_port, repo_port, repo_metrics, ctrl_metrics = free_port(), free_port(), free_port(), free_port()
    redis = Proc("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", workdir], workdir)
    procs.append(redis)
    wait_tcp(redis_port, 20, "redis-server", redis)
    # The repo-server runs `kustomize` from PATH: the cached binary, under that name.
    os.makedirs(os.path.join(workdir, "bin"))
    os.symlink(os.path.abspath(kustomize), os.path.join(workdir, "bin", "kustomize"))
    env = dict(os.environ, HOME=workdir, ARGOCD_GPG_ENABLED="false",
               PATH=os.path.join(workdir, "bin") + ":" + os.environ["PATH"],
               ARGOCD_CONTROLLER_REPLICAS="1",
               # Argo CD's own way to run outside a cluster (its local development mode): the
               # in-cluster destination https://kubernetes.default.svc is KUBECONFIG's cluster.
               ARGOCD_FAKE_IN_CLUSTER="true", KUBECONFIG=kubeconfig)
    repo_server = Proc("repo-server", [argocd, "--address", "127.0.0.1", "--port", str(repo_port),
                                       "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics),
                                       "--disable-tls", "--redis", f"127.0.0.1:{redis_port}", "--loglevel", "warn"],
                       workdir, dict(env, ARGOCD_BINARY_NAME="argocd-repo-server"))
    procs.append(repo_server)
    wait_tcp(repo_port, 60, "argocd-repo-server", repo_server)
    controller = Proc("application-controller", [
        argocd, "--kubeconfig", kubeconfig, "--namespace", ARGOCD_NS,
        "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
        "--redis", f"127.0.0.1:{redis_port}", "--metrics-port", str(ctrl_metrics), "--loglevel", "warn"],
        workdir, dict(env, ARGOCD_BINARY_NAME="argocd-application-controller"))
    procs.append(controller)
    wait_tcp(ctrl_metrics, 60, "argocd-application-controller", controller)
    return env, [redis, repo_server, controller]


def application(name, image, repo_url, path, namespace, name_prefix=None, force_update=False):
    """An Application of `path` in the git repository, synced automatically into `namespace`, whose
    image `image` (registry/repository:tag, alias `agent`) the Image Updater follows by digest."""
    source = {"repoURL": repo_url, "targetRevision": "HEAD", "path": path}
    if name_prefix:
        source["kustomize"] = {"namePrefix": name_prefix}
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ARGOCD_NS, "annotations": {
            f"{ANNOTATION}/image-list": f"agent={image}",
            f"{ANNOTATION}/agent.update-strategy": "digest",
            # The Image Updater follows only images in the Application's status.summary.images,
            # which Argo CD fills from Pods; with replicas 0 there are none, so it is told to update
            # anyway (its documented switch for templates that start no container).
            **({f"{ANNOTATION}/agent.force-update": "true"} if force_update else {}),
        }},
        "spec": {"project": "default", "source": source,
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                 "syncPolicy": {"automated": {}}},
    }


def start_updater(updater, host, base, interval, workdir, env, procs):
    """The Image Updater, polling the registry at `base` (images named `host/...`) every
    `interval` seconds, writing Applications through the Kubernetes API."""
    with open(os.path.join(workdir, "registries.conf"), "w") as f:
        f.write(f"registries:\n  - name: bench\n    prefix: {host}\n    api_url: {base}\n    insecure: yes\n    default: true\n")
    updater_proc = Proc("image-updater", [
        updater, "run", "--kubeconfig", os.environ["KUBECONFIG"], "--argocd-namespace", ARGOCD_NS,
        "--applications-api", "kubernetes", "--interval", f"{interval}s",
        "--registries-conf-path", os.path.join(workdir, "registries.conf"),
        "--health-port", "0", "--metrics-port", str(free_port()), "--loglevel", os.environ.get("PEER_UPDATER_LOGLEVEL", "info")],
        workdir, env)
    procs.append(updater_proc)
    return updater_proc


# ---- the run ----

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--argocd", required=True, help="the argocd binary (all components, by ARGOCD_BINARY_NAME)")
    parser.add_argument("--argocd-version", required=True)
    parser.add_argument("--updater", required=True, help="the argocd-image-updater binary")
    parser.add_argument("--updater-version", required=True)
    parser.add_argument("--kustomize", required=True, help="the kustomize binary the repo-server runs")
    parser.add_argument("--crds", required=True, help="Argo CD's manifests/crds folder")
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--count", type=int, required=True, help="Deployments (one Application each)")
    parser.add_argument("--interval", type=int, default=10, help="the Image Updater's polling interval, s")
    parser.add_argument("--window", type=int, default=3, help="idle polling intervals counted")
    parser.add_argument("--replicas", type=int, default=0,
                        help="replicas per Deployment (0 as the operator's runs; then force-update is set)")
    parser.add_argument("--keep-logs", help="copy the components' logs into this folder")
    args = parser.parse_args()
    # A SIGTERM (timeout, an interrupted bench) still stops the components and cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="ta-peer-argocd-")
    kube = Kube(args.kubectl)
    namespace = f"peer-argocd-{os.getpid()}"
    procs = []
    watch = None
    try:
        result = run(args, kube, workdir, namespace, procs, lambda w: None)
        print(json.dumps(result))
        return 0
    except BenchError as e:
        log(f"FAILED: {e}")
        print(json.dumps({"count": args.count, "error": str(e)}))
        return 1
    finally:
        for p in reversed(procs):
            p.stop()
        # Gone before the next measurement starts on the same cluster (the garbage collector's
        # deletes of N Deployments would otherwise land in it).
        kube.run("delete", "applications.argoproj.io", "--all", "-n", ARGOCD_NS, "--timeout=120s", check=False)
        kube.run("delete", "namespace", namespace, ARGOCD_NS, "--timeout=600s", check=False)
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for name in os.listdir(workdir):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(workdir, name), os.path.join(args.keep_logs, f"{args.count}-{name}"))
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, kube, workdir, namespace, procs, _):
    n, interval = args.count, args.interval
    scale_timeout = 120 + 2 * n

    # The registry, with its access log, and the tag's first image.
    port = free_port()
    os.makedirs(os.path.join(workdir, "storage"))
    with open(os.path.join(workdir, "registry.yml"), "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
                f"storage:\n  filesystem:\n    rootdirectory: {workdir}/storage\n  cache:\n    blobdescriptor: inmemory\n"
                f"http:\n  addr: 127.0.0.1:{port}\n  secret: throwaway-peer-registry\n")
    registry = Proc("registry", [shutil.which("docker-registry") or "docker-registry", "serve",
                                 os.path.join(workdir, "registry.yml")], workdir)
    procs.append(registry)
    wait_tcp(port, 20, "docker-registry", registry)
    base = f"http://127.0.0.1:{port}"
    host = f"127.0.0.1:{port}"
    first = push_image(base, "first")

    # The git repository Argo CD renders: one kustomize base, one Deployment (replicas 0, as the
    # operator's "1,000 agents" runs), its image on the tag.
    repo = os.path.join(workdir, "repo")
    os.makedirs(os.path.join(repo, "agent"))
    with open(os.path.join(repo, "agent", "kustomization.yaml"), "w") as f:
        f.write("resources:\n  - deployment.yaml\n")
    with open(os.path.join(repo, "agent", "deployment.yaml"), "w") as f:
        f.write(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: agent
  labels: {{app: agent}}
spec:
  replicas: {args.replicas}
  selector:
    matchLabels: {{app: agent}}
  template:
    metadata:
      labels: {{app: agent}}
    spec:
      containers:
        - name: agent
          image: {host}/{REPOSITORY}:{TAG}
""")
    repo_url = git_repository(repo)

    install_argocd(kube, args.crds, [namespace])
    env, argo = start_argocd(args.argocd, args.kustomize, workdir, procs)
    redis, repo_server, controller = argo

    # N Applications, each one Deployment a<i>-agent, followed by the Image Updater (digest strategy).
    watch = DeploymentWatch(args.kubectl, namespace)
    apps = [application(f"a{i}", f"{host}/{REPOSITORY}:{TAG}", repo_url, "agent", namespace,
                        name_prefix=f"a{i}-", force_update=args.replicas == 0) for i in range(n)]
    log(f"{n} Applications, Argo CD {args.argocd_version}")
    started = time.monotonic()
    kube.apply(apps)
    tagged = f"{host}/{REPOSITORY}:{TAG}"
    synced = watch.wait(n, lambda image: image == tagged, scale_timeout,
                        "Argo CD syncing the Applications", [registry, redis, repo_server, controller])
    apps_synced_s = synced - started

    log(f"Image Updater {args.updater_version}, polling every {interval} s")
    started = time.monotonic()
    updater = start_updater(args.updater, host, base, interval, workdir, env, procs)
    chain = [registry, redis, repo_server, controller, updater]
    pinned = watch.wait(n, lambda image: image.endswith("@" + first), scale_timeout,
                        "the Image Updater pinning the tag's digest", chain)
    first_pin_s = pinned - started

    # Idle: what following the tag costs per polling interval.
    time.sleep(interval)
    idle_requests = registry_requests(registry.log_path)
    idle_writes_before = kube.writes()
    time.sleep(args.window * interval)
    idle_writes = writes_between(idle_writes_before, kube.writes())
    after = registry_requests(registry.log_path)
    manifests_per_interval = (after[0] - idle_requests[0]) / args.window
    reads_per_interval = (after[1] - idle_requests[1]) / args.window

    # A push: every Deployment carries the new digest.
    writes_before = kube.writes()
    cpu_before = {p.name: p.sample()[0] for p in chain}
    pushed_at = time.monotonic()
    second = push_image(base, "second")
    pushed = time.monotonic()
    repinned = watch.wait(n, lambda image: image.endswith("@" + second), scale_timeout,
                          "the new digest reaching every Deployment", chain)
    repin_s = repinned - pushed
    # Until the writes settle (3 s without one), at most 10 s after the last re-pin: with
    # force-update the Image Updater rewrites every Application every cycle, so they never settle.
    update_writes = settle(kube, writes_before, quiet_s=3.0, limit_s=10.0)
    update_elapsed_s = time.monotonic() - pushed_at
    cpu_update = {p.name: round(p.sample()[0] - cpu_before[p.name], 2) for p in chain}
    for p in chain:
        p.check_alive()
    watch.stop()

    samples = {p.name: p.sample() for p in chain}
    cycles = updater_cycles(updater.log_path)
    return {
        "count": n,
        "tool": "argocd-image-updater + argo-cd",
        "updater_version": args.updater_version,
        "argocd_version": args.argocd_version,
        "interval_s": interval,
        "replicas": args.replicas,
        "apps_synced_s": round(apps_synced_s, 2),
        "first_pin_s": round(first_pin_s, 2),
        "polled_repin_s": round(repin_s, 2),
        "push_s": round(pushed - pushed_at, 3),
        "notified_repin_s": None,
        "notified_error": (f"argocd-image-updater {args.updater_version} has no webhook receiver (polling only); "
                           "the versions that have one (v1.0.0's pkg/webhook) take Docker Hub, GHCR, Harbor and Quay "
                           "payloads, not the CNCF Distribution registry's notification envelope"),
        "updater_cycle_s": cycles,
        "manifest_requests_per_interval": round(manifests_per_interval, 2),
        "registry_reads_per_interval": round(reads_per_interval, 2),
        "idle_writes_per_interval": round(sum(idle_writes.values()) / args.window, 2),
        "idle_writes_top": top(idle_writes),
        # The Image Updater's Application updates while nothing changed (force-update, replicas 0).
        "idle_updater_puts_per_interval": round(sum(v for k, v in idle_writes.items()
                                                    if k.startswith("PUT applications")) / args.window, 2),
        "update_elapsed_s": round(update_elapsed_s, 1),
        "update_writes_per_deployment": round(sum(update_writes.values()) / n, 2),
        "update_chain_writes_per_deployment": round(chain_writes(update_writes) / n, 2),
        "update_writes_top": {k: round(v / n, 2) for k, v in top(update_writes).items()},
        "update_cpu_s": cpu_update,
        "cpu_s": {name: round(cpu, 2) for name, (cpu, _) in samples.items()},
        "peak_rss_mb": {name: round(hwm / 1024, 1) for name, (_, hwm) in samples.items()},
        "tools_cpu_s": round(sum(samples[k][0] for k in ("image-updater", "application-controller", "repo-server", "redis")), 2),
        "tools_peak_rss_mb": round(sum(samples[k][1] for k in ("image-updater", "application-controller", "repo-server", "redis")) / 1024, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
