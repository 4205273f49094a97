#!/usr/bin/env python3
"""Writes tests/bench/RESULTS.md (to stdout) from what tests/bench/run.sh measured.

Every figure is shown as min / median / max of its runs with its target beside it; ratios and
PASS/MISS are taken on the medians. Standard library only.
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mmm(values, fmt="{:,.0f}"):
    """'min / median / max' of values."""
    if not values:
        return "—"
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def med(values):
    return statistics.median(values) if values else float("nan")


def verdict(ok):
    return "**PASS**" if ok else "**MISS**"


DASHBOARD_HEADING = "## Dashboard: time to interactive"
DASHBOARD_TARGET_MS = 1000


def dashboard_section(dash, machine):
    """The dashboard's section of RESULTS.md (tests/bench/dashboard.sh), from its JSON: figures,
    or the failure. Never an earlier run's figure."""
    out = [DASHBOARD_HEADING, ""]
    w = out.append
    load = f"load average {dash.get('load_start') or machine.get('load_start', '?')} at start"
    if dash.get("load_measure"):
        load += f", {dash['load_measure']} when measuring began"
    w(f"Measured by `tests/bench/dashboard.sh` on {machine.get('date', '?')}, commit {machine.get('commit', '?')}, "
      f"{machine.get('nproc', '?')} CPUs, {load}; {dash.get('chromium') and 'chromium ' + dash['chromium'] or 'chromium'}"
      f"{', node ' + machine['node'] if machine.get('node') else ''}.")
    w("")
    if "skipped" in dash:
        w(f"Not run ({dash['skipped']}): no figure.")
        w("")
        return out
    if "error" in dash or not dash.get("market_ms"):
        w(f"**FAILED**: {dash.get('error', 'no figures were written')}. This run has no figure; none from an "
          "earlier run is shown.")
        w("")
        return out
    stored = dash.get("candles_stored", 100000)
    runs = dash.get("runs", len(dash["market_ms"]))
    market, overview = med(dash["market_ms"]), med(dash["overview_ms"])
    fetch, blank = med(dash["fetch_ms"]), med(dash["blank_ms"])
    slowest = max(market, overview)
    w(f"{stored:,} one-minute candles stored; min / median / max of {runs} visits of each page, each in a fresh "
      "browser context, after one warm-up visit; PASS/MISS and ratios on the medians.")
    w("")
    w("| figure | min / median / max, ms | ceiling measured in the same run | ratio | target | result |")
    w("|---|---|---|---|---|---|")
    w(f"| Market page interactive: the newest {dash.get('market_candles_shown') or 0:,} of {stored:,} candles drawn "
      "with indicators and markers, then a click on zoom-in answered | "
      f"{mmm(dash['market_ms'])} | chart JSON by a plain HTTP client: {mmm(dash['fetch_ms'], '{:,.1f}')} ms | "
      f"{market / fetch:,.1f}× the fetch | ≤ {DASHBOARD_TARGET_MS:,} ms | {verdict(market <= DASHBOARD_TARGET_MS)} |")
    w(f"| Market page: data drawn (before the click) | {mmm(dash['market_drawn_ms'])} | | | reported | — |")
    w(f"| Overview interactive: components, balances, open trades and the equity curve drawn | "
      f"{mmm(dash['overview_ms'])} | blank page (a static asset) in a fresh context: {mmm(dash['blank_ms'])} ms | "
      f"{overview / blank:,.1f}× the blank page | ≤ {DASHBOARD_TARGET_MS:,} ms | {verdict(overview <= DASHBOARD_TARGET_MS)} |")
    w("")
    if slowest > DASHBOARD_TARGET_MS:
        w(f"Missed: {slowest:,.0f} ms instead of {DASHBOARD_TARGET_MS:,} ms. Headless chromium, the api and PostgreSQL "
          f"share {machine.get('nproc', '?')} CPUs; the plain fetch of the same data took {fetch:,.1f} ms and a "
          f"blank page {blank:,.0f} ms in the same run.")
        w("")
    w("How: `tests/bench/dashboard.sh` seeds a throwaway PostgreSQL (one instrument, its candles, a strategy with "
      "signals and closed trades among the newest candles, a day of equity snapshots), starts the release "
      "`trading-agent api`, and runs `api/dashboard/tests/bench.mjs`: Debian's chromium, headless, driven by "
      "playwright-core, signed in by the token placed in sessionStorage before the page loads. Times run from "
      "navigation start. *Drawn* is the page's own performance mark, set after the paint that follows drawing its "
      "data; the market page is *interactive* when, after that mark, a click on its zoom-in button has changed the "
      "chart's visible range (so a main thread still busy counts). Any browser console error fails the run.")
    w("")
    return out


def update_dashboard_section(path, dash, machine):
    """Rewrites the dashboard section of an existing RESULTS.md (dashboard.sh run alone)."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Benchmarks\n\nWritten by `tests/bench/run.sh` (`make bench`); do not edit by hand.\n"
    section = "\n".join(dashboard_section(dash, machine))
    lines = text.split("\n")
    if DASHBOARD_HEADING in lines:
        start = lines.index(DASHBOARD_HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section.split("\n")
    elif "## How it was measured" in lines:
        at = lines.index("## How it was measured")
        lines[at:at] = section.split("\n")
    else:
        lines += [""] + section.split("\n")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    import os
    os.replace(path + ".tmp", path)
    if "error" in dash:
        sys.exit(1)


COMPARE_HEADING = "## Side by side: Keel and the API server's ceiling (issue 20)"
CEILING_TARGET = 1.5
PROCESS_NAMES = {"kube-apiserver": "kube-apiserver", "etcd": "etcd", "kube-controller": "controller-manager",
                 "kube-controller-manager": "controller-manager", "kube-scheduler": "scheduler", "kwok": "kwok",
                 "trading-agent-o": "operator", "operator": "operator", "bench": "bench client"}


def cpu_text(cpu, skip_small=0.05):
    parts = [f"{PROCESS_NAMES.get(k, k)} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= skip_small]
    return ", ".join(parts) or "—"


def writes_text(writes, per, top=6):
    items = sorted(writes.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v / per:.2f}" for k, v in items) or "—"


def cluster_settings():
    """What the harness's settings change, for every operator benchmark (issue 20)."""
    out = []
    w = out.append
    w("### Cluster settings of the operator benchmarks")
    w("")
    w("The local harness (`tests/harness/cluster.sh`) runs every operator benchmark with these settings, "
      "which differ from a production cluster's; each one makes the API server faster, for us and for the "
      "ceiling alike:")
    w("")
    w("- etcd `--unsafe-no-fsync`: etcd does not fsync its log, so a write costs no disk flush (on a real "
      "disk a few ms per commit, batched). Write latency is CPU only here; a production etcd would add its "
      "disk's fsync latency to every write of the operator and of the ceiling's loop.")
    w("- kube-apiserver `--enable-priority-and-fairness=false`, `--max-requests-inflight 2000`, "
      "`--max-mutating-requests-inflight 1000`: no API Priority and Fairness queues, so a burst of thousands of "
      "writes from one client is not queued or rejected (429) per flow; with APF on (the default), one "
      "client's burst shares its priority level's seats with everyone else's.")
    w("- kube-controller-manager `--kube-api-qps 500 --kube-api-burst 1000`, `--concurrent-deployment-syncs 20`, "
      "`--concurrent-replicaset-syncs 20`, `--concurrent-gc-syncs 40` (defaults: 20 QPS, burst 30, 5, 5, 20): "
      "the Deployment and ReplicaSet controllers keep up with thousands of Deployments instead of "
      "throttling themselves for minutes; they write the ReplicaSets and statuses that follow every "
      "re-pin, ours and the ceiling's.")
    w("- The \"1,000 agents\" runs use `replicas: 0` for every role: 3,000 Deployments and their ReplicaSets, "
      "but no pods, so what is measured is the operator's and the API server's work, not the scheduler "
      "and kwok starting 3,000 pods on 2 cores (with pods, every re-pin would also replace 3,000 pods: "
      "level 3 measures one agent's pods on a real node instead).")
    w("")
    return out


def peer_section(peer, ours):
    """The next closest tool that builds here (tests/bench/peer-argocd.sh): Argo CD Image Updater
    with Argo CD. A failed run says FAILED with its reason, never an older figure."""
    out = []
    w = out.append
    name = (f"Argo CD Image Updater {peer.get('updater_version', '?')} + Argo CD {peer.get('argocd_version', '?')} "
            f"(kustomize {peer.get('kustomize_version', '?')})")
    w(f"### The next closest tool that builds here: {name}")
    w("")
    if peer.get("why_not_v1"):
        w("Why not Image Updater v1.0.0, the newest version the proxy serves: its go.mod takes "
          "`github.com/argoproj-labs/argocd-image-updater/registry-scanner` from a local replace "
          "(`=> ./registry-scanner/`) that the module zip does not contain, and the proxy does not have that "
          f"module's matching version (`{peer['why_not_v1']}`). The one it has, registry-scanner v0.1.0 (whose "
          "checksum sum.golang.org cannot confirm), lacks the API v1.0.0 uses: built with it, the go command "
          "says `ext/git/client.go:201:13: undefined: log.LoggerFromContext` (13 times in ext/git).")
        w("")
    if "error" in peer:
        w(f"**FAILED**: {name} could not be built, so this run has no figure for it. The go command said:")
        w("")
        w("```")
        out.extend(peer["error"].splitlines()[-16:])
        w("```")
        w("")
        return out
    runs = peer.get("runs", [])
    for r in runs:
        if "error" in r:
            w(f"- **FAILED** at {r.get('count')} Deployment(s): {r['error']}. No figure for that N.")
    ok = [r for r in runs if "error" not in r]
    if len(ok) < len(runs):
        w("")
    if not ok:
        return out
    w("The chain, all on the local cluster and loopback: the Image Updater polls the tag on the same "
      "`docker-registry` (digest strategy) and writes the digest into each Application's "
      "`spec.source.kustomize.images`; Argo CD's application-controller has its repo-server render the "
      "Application (kustomize, from a local git repository) and syncs the Deployment. One Application per "
      "Deployment (as one TradingAgent per agent), `replicas: 0`, automated sync. The Image Updater "
      "cannot be notified: " + (ok[0].get("notified_error") or "—") + ". So only polling is compared.")
    w("")
    head = " | ".join(f"{r['count']:,} Deployment{'s' if r['count'] != 1 else ''}" for r in ok)
    w(f"| figure | {head} |")
    w("|---|" + "---|" * len(ok))

    def row(figure, cells):
        w(f"| {figure} | " + " | ".join(cells) + " |")
    ours_by_n = {r["count"]: r for r in ours if "error" not in r}
    row("Applications created → every Deployment synced by Argo CD, s", [f"{r['apps_synced_s']:.1f}" for r in ok])
    row("Image Updater started → every Deployment pinned to the tag's digest, s", [f"{r['first_pin_s']:.1f}" for r in ok])
    row("tag push → every Deployment re-pinned, **with a notification**", ["not possible" for r in ok])
    row("tag push → every Deployment re-pinned, by polling, s (interval)",
        [f"{r['polled_repin_s']:.1f} ({r['interval_s']} s)" for r in ok])
    row("ours by polling at the same N agents (3 Deployments each), s",
        [f"{ours_by_n[r['count']]['push_polled']['repinned_s']:.1f}" if r["count"] in ours_by_n else "—" for r in ok])
    row("the Image Updater's update cycle over all Applications, s (median; the next starts an interval after)",
        [f"{sorted(r['updater_cycle_s'])[len(r['updater_cycle_s']) // 2]:.0f}" if r.get("updater_cycle_s") else "—" for r in ok])
    row("registry manifest requests per polling interval (all registry reads)",
        [f"{r['manifest_requests_per_interval']:.1f} ({r['registry_reads_per_interval']:.1f})" for r in ok])
    row("CPU s over the whole run: Image Updater / application-controller / repo-server (with its git and "
        "kustomize) / redis",
        [" / ".join(f"{r['cpu_s'].get(k, 0):.1f}" for k in ("image-updater", "application-controller", "repo-server", "redis"))
         for r in ok])
    row("peak RSS MB: Image Updater / application-controller / repo-server / redis (sum)",
        [" / ".join(f"{r['peak_rss_mb'].get(k, 0):.0f}" for k in ("image-updater", "application-controller", "repo-server", "redis"))
         + f" ({r['tools_peak_rss_mb']:.0f})" for r in ok])
    row("API server writes per update (push → all re-pinned and the writes settled, at most 10 s more; "
        "the window's length), per Deployment: all (the chain's: Applications, Deployment patches)",
        [f"{r['update_writes_per_deployment']:.1f} ({r['update_chain_writes_per_deployment']:.1f}) in "
         f"{r.get('update_elapsed_s', float('nan')):.0f} s" for r in ok])
    row("API server writes per idle polling interval: all (the Image Updater's Application updates that change "
        "nothing)", [f"{r['idle_writes_per_interval']:.1f} ({r.get('idle_updater_puts_per_interval', 0):.1f})" for r in ok])
    w("")
    big = max(ok, key=lambda r: r["count"])
    w(f"At {big['count']:,} Deployments, the update's largest kinds of write per Deployment: "
      + ", ".join(f"{k} {v:.2f}" for k, v in big["update_writes_top"].items())
      + "; CPU seconds during the update: " + cpu_text(big["update_cpu_s"]) + ".")
    w("")
    if peer.get("updater_version") == "v0.12.2":
        w("Where its time goes (from its source, v0.12.2): each cycle walks every annotated Application "
          "(10 at a time) and asks the registry for the tag's list, manifest and config blob itself, without "
          "sharing the answer between Applications that follow the same tag; each Application it changes "
          "costs a GET and a PUT through a Kubernetes client left at client-go's default rate limit (5 "
          "requests/s, burst 10), so a cycle that updates N Applications lasts about 2N/5 s, and the next "
          "cycle starts one interval after it ends. With `replicas: 0` (as ours) Argo CD lists no live "
          "image (`status.summary.images` comes from Pods), so `force-update` is set and the Image Updater "
          "rewrites every Application every cycle, the idle PUTs above, which keeps every cycle that long; "
          "with one replica per Deployment (1 Deployment, measured while writing this driver) the idle "
          "writes are the cluster's own 1.0 per interval.")
        w("")
    return out


def compare_section(cmp):
    """The side-by-side section (tests/bench/compare.sh): Keel, ours and the ceiling, and the
    operator's API writes per agent lifecycle. A failed part says FAILED, never an older figure."""
    out = [COMPARE_HEADING, ""]
    w = out.append
    runs = cmp.get("runs", [])
    w(f"Measured by `tests/bench/compare.sh` on {cmp.get('date', '?')}, commit {cmp.get('commit', '?')}, "
      f"load average (1/5/15 min) {cmp.get('load_start', '?')} at start and {cmp.get('load_end', '?')} at the end "
      "(at the start of each N: " + "; ".join(f"{r.get('count')}: {r.get('load', '?')}" for r in runs) + "). "
      "The machine's 2 CPUs are shared with other work: absolute times are noisy, the ratios are taken "
      "within one run.")
    w("")
    keel = cmp.get("keel", {})
    w("### Keel")
    w("")
    if "error" in keel:
        w(f"**FAILED**: Keel ({keel.get('version', '?')}) could not be built, so this run has no Keel figure "
          "(none from elsewhere is shown). The go command said:")
        w("")
        w("```")
        out.extend(keel["error"].splitlines()[-12:])
        w("```")
        w("")
        w("The Go module proxy this machine reaches refuses the module (`403 This module version is not "
          "available`: its version list, `latest`, `master`, v0.19.1 to v0.22.0 alike), and most of the next "
          "closest tools just as well: github.com/fluxcd/image-reflector-controller and "
          "image-automation-controller, github.com/stakater/Reloader, github.com/google/k8s-digester; none is "
          "packaged in Debian. Of github.com/argoproj-labs/argocd-image-updater (its version list refused too, "
          "so exact versions were asked one by one) it serves v0.12.1, v0.12.2 and v1.0.0; v0.12.0, v0.13.0, v0.13.1, "
          "v0.14.0 to v0.14.2, v0.15.0 to v0.15.2, v0.16.0, v0.16.1, v0.17.0, v0.17.1, v1.0.0-rc1, v1.0.1 "
          "and v1.0.2 answer 403. v1.0.0 cannot be built (below), so the peer measured instead is Argo CD "
          "Image Updater v0.12.2 with Argo CD.")
    else:
        w(f"Keel {keel.get('version')}: {keel}")
    w("")
    if "peer" in cmp:
        out.extend(peer_section(cmp["peer"], runs))
    ok_runs = [r for r in runs if "error" not in r]
    for r in runs:
        if "error" in r:
            w(f"- **FAILED** at {r.get('count')} agents: {r['error']}. No figure for that N.")
    if not ok_runs:
        w("No run of ours succeeded: no figure.")
        w("")
        return out
    out.extend(cluster_settings())
    w("### Ours against the ceiling")
    w("")
    head = " | ".join(f"{r['count']:,} agent{'s' if r['count'] != 1 else ''} ({3 * r['count']:,} Deployments)"
                      for r in ok_runs)
    w(f"| figure | {head} | target |")
    w("|---|" + "---|" * len(ok_runs) + "---|")

    def row(figure, cells, target=""):
        w(f"| {figure} | " + " | ".join(cells) + f" | {target} |")
    row("all created → all pinned / all Ready, s",
        [f"{r['converge']['deployments_pinned_s']:.1f} / {r['converge']['ready_s']:.1f}" for r in ok_runs], "≤ 60 s at 1,000")
    row("tag push → all re-pinned, **with the registry's notification**, s",
        [f"{r['push_notified']['repinned_s']:.2f}" for r in ok_runs])
    row("ceiling: a plain client loop patches the same Deployments' image → all seen, s "
        f"({ok_runs[0].get('ceiling', {}) and ok_runs[0]['ceiling']['in_flight']} in flight)",
        [f"{r['ceiling']['repinned_s']:.2f} (responses {r['ceiling']['responses_s']:.2f})" if r.get("ceiling") else "not run"
         for r in ok_runs])
    ratios = {r["count"]: r["push_notified"]["repinned_s"] / r["ceiling"]["repinned_s"]
              for r in ok_runs if r.get("ceiling") and r["ceiling"]["repinned_s"] > 0}
    row("ours (notified) ÷ ceiling", [f"**{ratios[r['count']]:.2f}×**" if r["count"] in ratios else "—" for r in ok_runs],
        f"≤ {CEILING_TARGET}× at 1,000")
    row("tag push → all re-pinned, by polling alone, s (interval)",
        [f"{r['push_polled']['repinned_s']:.1f} ({r['push_polled']['interval_s']} s)" for r in ok_runs])
    row("registry manifest requests per polling interval",
        [f"{r['polling']['per_interval']:.1f}" for r in ok_runs], "1")
    row("operator CPU s over the whole run / peak RSS MB",
        [f"{r.get('operator_cpu_s', float('nan')):.1f} / {r['hwm_kib'] * 1024 / 1e6:.0f}" for r in ok_runs], "≤ 150 MB")
    row("API server writes per update (push → agent Ready, which includes the operator's 60 s verification "
        "window), per agent: all (the operator's)",
        [f"{r['lifecycle']['update_notified']['writes_total_per_unit']:.1f} "
         f"({r['lifecycle']['update_notified']['writes_operator_per_unit']:.1f})" for r in ok_runs])
    row("API server writes of the ceiling's update, per 3 Deployments: all (the client's)",
        [f"{3 * r['ceiling']['phase']['writes_total_per_unit']:.1f} "
         f"({3 * r['ceiling']['phase']['writes'].get('PATCH deployments (apps)', 0) / r['ceiling']['deployments']:.1f})"
         if r.get("ceiling") else "—" for r in ok_runs])
    row("API server writes per idle polling interval (all)",
        [f"{r['polling']['phase_per_interval']['writes_total_per_unit']:.1f}" for r in ok_runs], "0")
    w("")
    big = max(ok_runs, key=lambda r: r["count"])
    n = big["count"]
    if big.get("ceiling") and n in ratios:
        ratio = ratios[n]
        nf = big["lifecycle"].get("update_notified_until_repinned") or big["lifecycle"]["update_notified"]
        ce = big["ceiling"]["phase"]
        verdict_text = "within" if ratio <= CEILING_TARGET else f"**MISS**: {ratio / CEILING_TARGET:.2f}× over"
        w(f"At {n:,} agents ours takes {big['push_notified']['repinned_s']:.2f} s to re-pin what the plain loop "
          f"re-pins in {big['ceiling']['repinned_s']:.2f} s: {ratio:.2f}× the ceiling, {verdict_text} the "
          f"{CEILING_TARGET}× target. Where the time goes (same run): from the push until every Deployment carried "
          f"the digest ({nf['elapsed_s']:.1f} s, counted from just before the push) the API server answered {nf['writes_total']:,.0f} writes "
          f"({writes_text(nf['writes'], 1)}), CPU seconds by process: {cpu_text(nf['cpu_s'])}; during the ceiling "
          f"({ce['elapsed_s']:.1f} s) {ce['writes_total']:,.0f} writes ({writes_text(ce['writes'], 1)}), CPU seconds: "
          f"{cpu_text(ce['cpu_s'])}.")
        w("")
    w(f"### API server writes per agent lifecycle ({n:,} agents; part 5)")
    w("")
    lc = big["lifecycle"]
    ch = lc["children_per_agent"]
    children = ch["deployments"] + ch["services"] + ch["poddisruptionbudgets"]
    w(f"Each agent owns {ch['deployments']:.0f} Deployments, {ch['services']:.0f} Service(s) and "
      f"{ch['poddisruptionbudgets']:.0f} PodDisruptionBudget(s). The minimum a phase requires of the operator: "
      "one write per object it creates or changes, plus one status write when the agent's status changes; "
      "deleting needs none (the children carry owner references, so the garbage collector removes them). "
      "*All* counts every writer in the cluster (controller-manager: ReplicaSets, Deployment status; the "
      "garbage collector; the bench's own create and delete of the agent), from `apiserver_request_total` "
      "(POST, PUT, PATCH, APPLY, DELETE; the heartbeats, Leases and kwok's node status, left out; a refused write is kept and marked with its code).")
    w("")
    w("| phase | the operator's writes per agent | minimum | all writes per agent | largest kinds of write, per agent |")
    w("|---|---|---|---|---|")
    for name, label, minimum in (("create", "create → all Ready", children + 1),
                                 ("update_notified", "tag push (notified) → all Ready", ch["deployments"] + 1),
                                 ("update_polled", "tag push (polled) → all Ready", ch["deployments"] + 1),
                                 ("delete", "delete → children gone", 0)):
        ph = lc[name]
        w(f"| {label} | {ph['writes_operator_per_unit']:.2f} | {minimum:.0f} | {ph['writes_total_per_unit']:.2f} | "
          f"{writes_text(ph['writes'], n)} |")
    total_ops = sum(lc[k]["writes_operator_per_unit"] for k in ("create", "update_notified", "delete"))
    w("")
    w(f"One lifecycle (create, one update, delete): {total_ops:.2f} writes of the operator per agent against a "
      f"minimum of {children + 1 + ch['deployments'] + 1:.0f}.")
    w("")
    return out




FREQTRADE_HEADING = "## Backtest: ours against freqtrade"
FREQTRADE_NAMES = {"sma": "SMA(10)/SMA(30) crossover", "rsi": "RSI(14) leaving 30 / 70"}


def freqtrade_section(ft, machine):
    """The freqtrade comparison's section (tests/bench/freqtrade/bench.sh), from its JSON: figures
    per strategy, or the failure. Never an earlier run's figure."""
    out = [FREQTRADE_HEADING, ""]
    w = out.append
    w(f"Measured by `tests/bench/freqtrade/bench.sh` on {machine.get('date', '?')}, commit {machine.get('commit', '?')}, "
      f"{machine.get('nproc', '?')} CPUs, load average {machine.get('load_start', '?')} at start; freqtrade 2026.9 "
      "from PyPI (`tests/bench/freqtrade/requirements.txt`), our release build.")
    w("")
    if "skipped" in ft:
        w(f"Not run ({ft['skipped']}): no figure.")
        w("")
        return out
    if "error" in ft or not ft.get("strategies"):
        w(f"**FAILED**: {ft.get('error', 'no figures were written')}. This run has no figure; none from an "
          "earlier run is shown.")
        w("")
        return out
    pairs, per_pair = ft.get("pairs", 0), ft.get("candles_per_pair", 0)
    w(f"{pairs} pairs x {per_pair:,} five-minute candles ({pairs * per_pair:,} candles), the same candles for both; "
      "fee 0.1 % per side, no slippage, stake 100, one trade per pair. Times are wall and CPU (user + system) "
      "seconds of the whole process (ours: CSV parsing included; freqtrade: start-up, data loading, indicators, "
      "the backtest loop, its result files); memory is peak RSS.")
    try:
        busy = float(machine.get("load_start", "0").split()[0]) > float(machine.get("nproc", "1"))
    except ValueError:
        busy = False
    if busy:
        w("")
        w("**Taken on a busy machine** (load average above the CPU count: other work shared the CPUs). Both "
          "processes spent much of their wall time waiting for a CPU, by amounts that depend on what else ran "
          "meanwhile; the CPU-time ratio is the steadier comparison.")
    w("")
    w("| strategy | trades: ours / freqtrade | exact matches | documented differences | differences explained | unexplained "
      "| wall s: ours / freqtrade | speed ratio (wall) | CPU s: ours / freqtrade (ratio) | peak RSS MB: ours / freqtrade |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for name, r in ft["strategies"].items():
        label = FREQTRADE_NAMES.get(name, name)
        if "error" in r:
            w(f"| {label} | **FAILED** | | | | | | | | |")
            notes.append(f"- {label}: FAILED: {r['error']}")
            continue
        explained = sum(c["trades"] for cls, c in r.get("explained", {}).items() if "unexplained" not in cls)
        w(f"| {label} | {r['our_trades']:,} / {r['freqtrade_trades']:,} | {r['exact_matches']:,} "
          f"| {r['documented_differences']} | {explained} of {r['differing_trades']} "
          f"| {r['unexplained_count']} | {r['ours_seconds']:.1f} / {r['freqtrade_seconds']:.1f} "
          f"| **{r['speed_ratio']}×** | {r.get('ours_cpu_seconds', float('nan')):.1f} / {r.get('freqtrade_cpu_seconds', float('nan')):.1f} "
          f"({r.get('cpu_ratio')}×) "
          f"| {r['ours_peak_rss_mb']:,} / {r['freqtrade_peak_rss_mb']:,} |")
        for cls, counts in r.get("explained", {}).items():
            notes.append(f"- {label}: {counts['trades']} differing trade(s) from {counts['signals']} differing signal(s): {cls}")
        for line in r.get("unexplained", []):
            notes.append(f"- {label}: unexplained: {line}")
    w("")
    w("A trade matches exactly with the same pair, entry and exit candle and price. *Documented*: trades still "
      "open at the end here, which freqtrade force-exits at its last candle. Every other difference is traced to "
      "the candle where the two sides' signals differ, with both sides' indicator values (`compare.py`).")
    w("")
    if not notes:
        w("No other difference: every trade that is closed on both sides matches exactly.")
        w("")
    if notes:
        w("Differences, by cause (`tests/bench/freqtrade/compare.py`; `tests/bench/freqtrade/README.md` explains each):")
        w("")
        out.extend(notes)
        w("")
    return out


LEVEL3_HEADING = "## Level 3: one desk's pods on the real node, ours against the peer (issue 20)"


def level3_section(l3):
    """tests/bench/level3.sh: push -> every pod of one desk serving the new digest on the real
    kubelet node, ours (notified, polled) against Argo CD Image Updater (polled). A failed run
    says FAILED, never an older figure."""
    out = [LEVEL3_HEADING, ""]
    w = out.append
    if "skipped" in l3:
        return out + [f"Not run ({l3['skipped']}): no figure.", ""]
    if "error" in l3:
        return out + [f"**FAILED**: {l3['error']}. No figure from this run.", ""]
    ours, peer, node = l3["ours"], l3["peer"], l3["node"]
    w(f"Measured by `tests/bench/level3.sh` on {l3.get('date', '?')}, commit {l3.get('commit', '?')}, load average "
      f"{l3.get('load_start', '?')} at start and {l3.get('load_end', '?')} at the end, on the harness's real node "
      f"{node['name']} ({node['ip']}: containerd pulls the image, runc starts it, the kubelet probes it). One desk: "
      f"the operator's three Deployments of one TradingAgent ({ours['pods']} pods: api, bot, strategy); the peer "
      f"runs the very same three Deployments ({peer['pods']} pods), copied from the operator's and synced by one "
      "Argo CD Application from a local git repository, the image followed by the Image Updater (digest strategy). "
      "Same image, same docker-registry on the node's address, each tool on its own PostgreSQL database, one tool's "
      f"pods on the node at a time. Each push changes only the image config (a label), so the node pulls a config "
      f"and a manifest, as after a rebuild of the same code. {l3['rounds']} pushes per tool and mode; medians, "
      "each round in brackets. Times from the push's completion, sampled with kubectl every 0.25 s (about 0.3 s "
      "of resolution).")
    w("")
    interval = l3["interval_s"]

    def cells(mode, key):
        m = mode["rounds"]
        return f"**{mode[key + '_median']:.2f}** (" + ", ".join(f"{r[key]:.2f}" for r in m) + ")"
    w("| push → | ours, notified | ours, polled | peer, polled | peer ÷ ours (polled) | peer ÷ ours (notified) |")
    w("|---|---|---|---|---|---|")
    for key, label in (("pinned_s", "every Deployment pinned to the new digest, s"),
                       ("serving_s", "**every pod Ready on the new digest**, old pods gone, s")):
        polled = peer["polled"][key + "_median"] / ours["polled"][key + "_median"]
        notified = peer["polled"][key + "_median"] / ours["notified"][key + "_median"]
        w(f"| {label} | {cells(ours['notified'], key)} | {cells(ours['polled'], key)} | "
          f"{cells(peer['polled'], key)} | {polled:.2f}× | {notified:.2f}× |")
    w(f"| first rollout (resource applied → every pod serving), s | {ours['first_serving_s']:.1f} | — | "
      f"{peer['first_serving_s']:.1f} | | |")
    usage = ours["usage"]["operator"]
    peer_cpu = sum(u["cpu_s"] for u in peer["usage"].values())
    peer_rss = sum(u["peak_rss_mb"] for u in peer["usage"].values())
    w(f"| CPU s over its whole phase / peak RSS MB | operator: {usage['cpu_s']:.1f} / {usage['peak_rss_mb']:.0f} | | "
      f"{len(peer['usage'])} processes: {peer_cpu:.1f} / {peer_rss:.0f} | | |")
    w("")
    w(f"- Both tools poll every {interval} s in the polled rows: a push lands at a random point of each tool's "
      f"polling cycle, so each polled figure carries 0 to {interval} s of waiting for the next poll (both tools get "
      "the same seeded pauses before their pushes, but their cycles are their own). A polled ratio near 1× means "
      "the tools are level within that noise. The notified column is what the operator does when the registry "
      f"tells it; the peer (Image Updater {peer.get('updater_version', '?')}) has no webhook, so it has no such "
      "column, and its polled figure is the one a user of it gets.")
    w("- From pinned to serving is the same work for both, done by Kubernetes: a new ReplicaSet, the pull, the "
      "start, the readiness probe, the old pods' termination. What differs is how long each tool takes to pin, "
      "and the peer's path to the Deployment: the Image Updater writes the Application, Argo CD renders it "
      "(repo-server, kustomize) and applies it.")
    w("")
    return out


def update_section(path, heading, section, failed):
    """Rewrites one section of an existing RESULTS.md (a step run alone)."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Benchmarks\n\nWritten by `tests/bench/run.sh` (`make bench`); do not edit by hand.\n"
    lines = text.split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section
    elif "## How it was measured" in lines:
        at = lines.index("## How it was measured")
        lines[at:at] = section
    else:
        lines += [""] + section
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    import os
    os.replace(path + ".tmp", path)
    if failed:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", help="required except with --compare-section")
    for name in ("results", "startup", "after", "criterion"):
        ap.add_argument(f"--{name}")
    ap.add_argument("--profile")
    ap.add_argument("--operator")
    ap.add_argument("--scale")
    ap.add_argument("--dashboard")
    ap.add_argument("--dashboard-section", help="tests/bench/dashboard.sh alone: its JSON")
    ap.add_argument("--freqtrade")
    ap.add_argument("--freqtrade-section", help="tests/bench/freqtrade/bench.sh alone: its JSON")
    ap.add_argument("--compare", help="tests/bench/compare.sh's JSON")
    ap.add_argument("--compare-section", help="tests/bench/compare.sh alone: its JSON")
    ap.add_argument("--level3", help="tests/bench/level3.sh's JSON")
    ap.add_argument("--level3-section", help="tests/bench/level3.sh alone: its JSON")
    ap.add_argument("--update", help="with --*-section: the RESULTS.md whose section is rewritten")
    a = ap.parse_args()
    if a.compare_section:
        cmp = json.load(open(a.compare_section))
        peer = cmp.get("peer", {})
        failed = (any("error" in r for r in cmp.get("runs", [])) or "error" in peer
                  or any("error" in r for r in peer.get("runs", [])))
        update_section(a.update, COMPARE_HEADING, compare_section(cmp), failed)
        return
    if a.level3_section:
        l3 = json.load(open(a.level3_section))
        update_section(a.update, LEVEL3_HEADING, level3_section(l3), "error" in l3)
        return
    if a.freqtrade_section:
        ft = json.load(open(a.freqtrade_section))
        failed = "error" in ft or any("error" in r for r in ft.get("strategies", {}).values())
        update_section(a.update, FREQTRADE_HEADING, freqtrade_section(ft, json.load(open(a.machine))), failed)
        return
    if a.dashboard_section:
        update_dashboard_section(a.update, json.load(open(a.dashboard_section)), json.load(open(a.machine)))
        return
    for name in ("machine", "results", "startup", "after", "criterion"):
        if not getattr(a, name):
            ap.error(f"--{name} is required")
    m = json.load(open(a.machine))
    results = load_jsonl(a.results)
    startup = load_jsonl(a.startup)
    after = json.load(open(a.after))
    criterion = json.load(open(a.criterion))

    by = defaultdict(list)  # (scenario, server) -> runs
    for r in results:
        by[(r["scenario"], r["server"])].append(r)

    def rps(scenario, server):
        return [r["rps"] for r in by[(scenario, server)]]

    def p99(scenario, server):
        return [r["p99_us"] / 1000 for r in by[(scenario, server)]]

    def cpu_us(scenario, server):
        return [r["cpu_s"] * 1e6 / r["requests"] for r in by[(scenario, server)] if r["requests"]]

    def failures(scenario, server):
        return sum(r["non_2xx"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
                   for r in by[(scenario, server)])

    rows = []
    missed = []

    def row(figure, rust, fastapi, hyper, measured, target, ok):
        rows.append(f"| {figure} | {rust} | {fastapi} | {hyper} | {measured} | {target} | {ok} |")

    def check(name, ok, detail):
        if not ok:
            missed.append(f"- {name}: {detail}")
        return verdict(ok)

    # /healthz
    h_rust, h_py, h_hyper = rps("healthz", "rust"), rps("healthz", "fastapi"), rps("healthz", "hyper")

    def healthz_miss(ratio):
        ceiling = med(h_hyper) / med(h_py)
        cpu = med(cpu_us("healthz", "fastapi")) / med(cpu_us("healthz", "rust"))
        hyper_cpu = med(cpu_us("healthz", "fastapi")) / med(cpu_us("healthz", "hyper"))
        text = (f"{ratio:.1f}× instead of 10× ({ratio / 10:.0%} of the target). Two limits. (1) The machine: wrk "
                f"and the server share {m['nproc']} CPUs and most of a fast server's CPU is the kernel's loopback TCP "
                f"(profiles below): bare hyper, with no work per request at all, reaches {ceiling:.1f}× FastAPI in req/s in this run. "
                f"(2) Our own cost per request: measured as server CPU per request, which does not depend on where "
                f"the load generator runs, we are {cpu:.1f}× cheaper than FastAPI while bare hyper is "
                f"{hyper_cpu:.1f}× cheaper; closing the gap to hyper (see the next line) is what would take us past 10×.")
        return text
    ratio = med(h_rust) / med(h_py)
    row("`GET /healthz` req/s", mmm(h_rust), mmm(h_py), mmm(h_hyper), f"{ratio:.1f}× FastAPI",
        "≥ 10× FastAPI", check("/healthz vs FastAPI", ratio >= 10, healthz_miss(ratio)))
    share = med(h_rust) / med(h_hyper)
    row("`GET /healthz` vs bare hyper", "", "", "", f"{share:.0%} of hyper", "≥ 80 % of hyper",
        check("/healthz vs hyper", share >= 0.8,
              f"{share:.0%} of bare hyper instead of 80 %. Per request our `/healthz` costs "
              f"{med(cpu_us('healthz', 'rust')):.1f} µs of CPU against hyper's {med(cpu_us('healthz', 'hyper')):.1f} µs "
              f"({med(cpu_us('healthz', 'hyper')) / med(cpu_us('healthz', 'rust')):.0%}): what is left is axum's router "
              "(route lookup and boxed service clones), hyper_util's HTTP/1-or-2 detection that the bare server skips, "
              "the JSON body with its timestamp and malloc; the rest of the gap is "
              "scheduling noise on a shared machine (compare min and max)."))
    l_rust, l_py, l_hyper = p99("healthz", "rust"), p99("healthz", "fastapi"), p99("healthz", "hyper")
    row(f"`GET /healthz` p99 ms at {m['conns']} connections", mmm(l_rust, "{:.2f}"), mmm(l_py, "{:.2f}"),
        mmm(l_hyper, "{:.2f}"), f"{med(l_py) / med(l_rust):.1f}× lower", "lower than FastAPI",
        check("/healthz p99", med(l_rust) < med(l_py), "p99 not lower than FastAPI's"))

    c_rust, c_py, c_hyper = cpu_us("healthz", "rust"), cpu_us("healthz", "fastapi"), cpu_us("healthz", "hyper")
    row("`GET /healthz` server CPU µs per request (user + sys)", mmm(c_rust, "{:.1f}"), mmm(c_py, "{:.1f}"),
        mmm(c_hyper, "{:.1f}"), f"{med(c_py) / med(c_rust):.1f}× less than FastAPI", "reported (no target)", "—")

    # trades list
    t_rust, t_py = rps("trades", "rust"), rps("trades", "fastapi")
    ratio = med(t_rust) / med(t_py)
    row(f"`GET /api/v2/trades?limit=100` req/s ({m['trades_rows']:,} rows, bearer auth)", mmm(t_rust), mmm(t_py), "—",
        f"{ratio:.1f}× FastAPI", "≥ 5× FastAPI",
        check("trades list vs FastAPI", ratio >= 5, f"{ratio:.1f}× instead of 5× ({ratio / 5:.0%} of the target). PostgreSQL runs on the same "
              f"{m['nproc']} CPUs and does the same work per request for both servers (it is counted in neither "
              "server's CPU row), which compresses the ratio; our own CPU per request is "
              f"{med(cpu_us('trades', 'fastapi')) / med(cpu_us('trades', 'rust')):.1f}× lower than FastAPI's, and "
              "what is left of ours is sqlx's row handling (column lookup by name, row buffers) and ~30 KB of JSON per request"))
    l_rust, l_py = p99("trades", "rust"), p99("trades", "fastapi")
    row(f"`GET /api/v2/trades?limit=100` p99 ms at {m['conns']} connections", mmm(l_rust, "{:.2f}"),
        mmm(l_py, "{:.2f}"), "—", f"{med(l_py) / med(l_rust):.1f}× lower", "lower than FastAPI",
        check("trades p99", med(l_rust) < med(l_py), "p99 not lower than FastAPI's"))

    c_rust, c_py = cpu_us("trades", "rust"), cpu_us("trades", "fastapi")
    row("`GET /api/v2/trades?limit=100` server CPU µs per request", mmm(c_rust, "{:.0f}"), mmm(c_py, "{:.0f}"), "—",
        f"{med(c_py) / med(c_rust):.1f}× less than FastAPI", "reported (no target)", "—")

    # candle upsert
    batch = m["batch"]
    u_rust = [x * batch for x in rps("upsert", "rust")]
    u_py = [x * batch for x in rps("upsert", "fastapi")]
    ratio = med(u_rust) / med(u_py)
    row(f"`PUT /api/v2/candles` rows/s ({batch:,} candles per request, {m['upsert_conns']} connections)",
        mmm(u_rust), mmm(u_py), "—", f"{ratio:.1f}× FastAPI", "reported (no target)", "—")
    l_rust, l_py = p99("upsert", "rust"), p99("upsert", "fastapi")
    row(f"`PUT /api/v2/candles` p99 ms at {m['upsert_conns']} connections", mmm(l_rust, "{:.1f}"),
        mmm(l_py, "{:.1f}"), "—", f"{med(l_py) / med(l_rust):.1f}× lower", "lower than FastAPI",
        check("upsert p99", med(l_rust) < med(l_py), "p99 not lower than FastAPI's"))

    # FastAPI with 2 uvicorn workers (this machine's cores): the same scenarios, CPU per request summed
    # over its worker processes; the primary comparison stays CPU per request.
    if by[("healthz", "fastapi2")]:
        for scenario, label, fmt in (("healthz", "`GET /healthz`", "{:.1f}"),
                                     ("trades", "`GET /api/v2/trades?limit=100`", "{:.0f}")):
            r2, c2 = rps(scenario, "fastapi2"), cpu_us(scenario, "fastapi2")
            row(f"{label} req/s, FastAPI with 2 uvicorn workers", mmm(rps(scenario, "rust")), mmm(r2), "—",
                f"{med(rps(scenario, 'rust')) / med(r2):.1f}× FastAPI ×2", "reported (CPU per request is the primary ratio)", "—")
            row(f"{label} server CPU µs per request, FastAPI with 2 uvicorn workers (both workers' CPU)",
                mmm(cpu_us(scenario, "rust"), fmt), mmm(c2, fmt), "—",
                f"{med(c2) / med(cpu_us(scenario, 'rust')):.1f}× less than FastAPI ×2", "reported (no target)", "—")
        u2 = [x * batch for x in rps("upsert", "fastapi2")]
        row(f"`PUT /api/v2/candles` rows/s, FastAPI with 2 uvicorn workers", mmm(u_rust), mmm(u2), "—",
            f"{med(u_rust) / med(u2):.1f}× FastAPI ×2", "reported (no target)", "—")

    # start-up and memory
    s_rust = [s["ready_ms"] for s in startup if s["label"] == "rust" and "ready_ms" in s]
    s_py = [s["ready_ms"] for s in startup if s["label"] == "fastapi" and "ready_ms" in s]
    ok = bool(s_rust) and med(s_rust) <= 300
    row(f"process start → `/readyz` 200, ms (database up, {m['startup_runs']} runs)", mmm(s_rust, "{:.0f}"),
        mmm(s_py, "{:.0f}"), "—", f"{med(s_rust):.0f} ms", "≤ 300 ms",
        check("start → ready", ok, f"median {med(s_rust):.0f} ms"))
    r_rust = [s["rss_kb"] / 1024 for s in startup if s["label"] == "rust" and "rss_kb" in s]
    r_py = [s["rss_kb"] / 1024 for s in startup if s["label"] == "fastapi" and "rss_kb" in s]
    row("RSS at rest, MiB (1 s after ready, fresh process)", mmm(r_rust, "{:.1f}"), mmm(r_py, "{:.1f}"),
        f"{m['rest_kb']['hyper'] / 1024:.1f}", f"{med(r_py) / med(r_rust):.1f}× less than FastAPI", "reported (no target)", "—")
    if "fastapi2" in after:
        row("RSS after all load runs, FastAPI with 2 uvicorn workers (supervisor + workers summed), MiB (peak VmHWM)",
            f"{after['rust']['VmRSS'] / 1024:.1f} ({after['rust']['VmHWM'] / 1024:.1f})",
            f"{after['fastapi2']['VmRSS'] / 1024:.1f} ({after['fastapi2']['VmHWM'] / 1024:.1f})", "—", "",
            "reported (no target)", "—")
    row("RSS after all load runs, MiB (peak VmHWM)",
        f"{after['rust']['VmRSS'] / 1024:.1f} ({after['rust']['VmHWM'] / 1024:.1f})",
        f"{after['fastapi']['VmRSS'] / 1024:.1f} ({after['fastapi']['VmHWM'] / 1024:.1f})",
        f"{after['hyper']['VmRSS'] / 1024:.1f} ({after['hyper']['VmHWM'] / 1024:.1f})", "", "reported (no target)", "—")

    # strategy runner
    for name, label in (("indicators", "all indicator series"), ("evaluate", "`StrategyParams::evaluate`, 3 strategies")):
        samples = [ns / 1e6 for ns in criterion.get(name, [])]
        if samples:
            ok = med(samples) <= 100
            row(f"strategy tick, 1,000 symbols × 500 candles: {label}, ms (Criterion, {len(samples)} samples)",
                mmm(samples, "{:.2f}"), "—", "—", f"{med(samples):.2f} ms", "≤ 100 ms (ours: 1 % of the 10 s tick)",
                check(f"strategy tick ({name})", ok, f"median {med(samples):.2f} ms"))
        else:
            row(f"strategy tick: {label}", "not run", "—", "—", "", "≤ 100 ms", "—")

    # operator: one by one
    op = json.load(open(a.operator)) if a.operator else {}
    lat = sorted(op.get("latencies_ms", []))

    def pcts(values):
        values = sorted(values)

        def pct(p):
            return values[min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1)]
        return values[0], pct(50), pct(99), values[-1]

    if lat:
        lo, p50, p99, hi = pcts(lat)
        row(f"operator: apply → three Deployments, ms, settled (min / p50 / p99 / max of {len(lat)} applied one by one, "
            "each after the previous agent is Ready)",
            f"{lo:.0f} / {p50:.0f} / {p99:.0f} / {hi:.0f}", "—", "—", f"p50 {p50:.0f} ms", "p50 ≤ 50 ms",
            check("operator apply → Deployments", p50 <= 50, f"p50 {p50:.0f} ms, {p50 / 50:.1f}× the target"))
        first = op.get("first_deployment_ms", [])
        if first:
            row("operator: apply → first of the three Deployments, ms, settled (min / median / max)", mmm(first, "{:.0f}"),
                "—", "—", "", "reported (where the time goes)", "—")
        stream = op.get("back_to_back_ms", [])
        if stream:
            lo, p50b, p99b, hi = pcts(stream)
            row(f"operator: apply → three Deployments, ms, back to back (min / p50 / p99 / max of {len(stream)}, each "
                "as soon as the previous one's Deployments exist)",
                f"{lo:.0f} / {p50b:.0f} / {p99b:.0f} / {hi:.0f}", "—", "—", f"p50 {p50b:.0f} ms",
                "reported (under a stream of applies)", "—")
        yard = op.get("api_create_ms", [])
        if yard:
            row("API server: one ConfigMap create round trip, ms (min / median / max of 20; yardstick)",
                mmm(yard, "{:.1f}"), "—", "—", "", "reported", "—")
        row("operator RSS after that run, MiB (peak VmHWM)",
            f"{op['rss_kb'] / 1024:.1f} ({op['hwm_kb'] / 1024:.1f})", "—", "—", "", "reported", "—")
    elif op.get("error"):
        row("operator: apply → three Deployments", f"**FAILED** ({op['error']})", "—", "—", "no figure", "p50 ≤ 50 ms",
            "**FAILED**")
        missed.append(f"- operator apply one by one: FAILED ({op['error']}); no figure, none from an earlier run")
    else:
        row("operator: apply → three Deployments", "not run", "—", "—", "", "p50 ≤ 50 ms", "—")

    # operator: at scale
    sc = json.load(open(a.scale)) if a.scale else {}

    def cpu_split(cv):
        by = cv.get("cpu_s_by_process") or {}
        if not by:
            return ""
        parts = ", ".join(f"{PROCESS_NAMES.get(k, k)} {v:.1f} s" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))
        return (f" (CPU seconds by process over the {cv.get('elapsed_s', 0):.0f} s, of "
                f"{int(m['nproc']) * cv.get('elapsed_s', 0):.0f} available: {parts})")
    if sc.get("count"):
        n, cv = sc["count"], sc["converge"]
        converge_s = max(cv["deployments_pinned_s"], cv["ready_s"])
        row(f"operator: {n:,} TradingAgents ({3 * n:,} Deployments) created at once → all pinned and Ready, s",
            f"{cv['deployments_pinned_s']:.1f} pinned, {cv['ready_s']:.1f} Ready", "—", "—", f"{converge_s:.1f} s", "≤ 60 s",
            check("1,000 agents converge", converge_s <= 60,
                  f"{converge_s:.1f} s, {converge_s / 60:.0%} of the target. The machine's CPUs were "
                  f"{cv['machine_cpu_busy']:.0%} busy throughout and the operator used {cv['operator_cpu_s']:.1f} s of CPU "
                  "of that" + cpu_split(cv) + ": the rest is the API server, etcd and the controller-manager storing "
                  "and serving the ReplicaSets, Services, endpoints and status updates that 3,000 Deployments bring, "
                  "so the limit is the two CPUs the whole cluster shares, not the operator (see Operator below)"))
        hwm_mb = sc["hwm_kib"] * 1024 / 1e6
        row(f"operator peak RSS over the whole {n:,}-agent run, MB (VmHWM; {sc['rss_idle_kib'] / 1024:.1f} MiB before any agent)",
            f"{hwm_mb:.0f}", "—", "—", f"{hwm_mb:.0f} MB", "≤ 150 MB",
            check("operator peak RSS", hwm_mb <= 150, f"{hwm_mb:.0f} MB"))
        pl = sc["polling"]
        row(f"registry manifest requests per polling interval, {n:,} agents on one tag "
            f"(interval {pl['interval_s']} s, counted over {pl['intervals']} intervals; {pl['reconciliations']:,.0f} "
            "reconciliations in that time)",
            f"{pl['manifest_requests']} in {pl['intervals']}", "—", "—", f"{pl['per_interval']:.1f} per interval", "1",
            check("registry requests per interval", pl["per_interval"] <= 1.0 + 1e-9, f"{pl['per_interval']:.1f} per interval"))
        pn, pp = sc["push_notified"], sc["push_polled"]
        row(f"tag push → all {3 * n:,} Deployments re-pinned, with the registry's notification, s",
            f"{pn['repinned_s']:.1f} ({pn['manifest_requests']} manifest requests)", "—", "—",
            f"{pn['repinned_s']:.1f} s", "reported (< 1 s is the promise for one agent; tests/e2e/digest_controller.rs)", "—")
        row(f"tag push → all {3 * n:,} Deployments re-pinned, by polling alone (interval {pp['interval_s']} s), s",
            f"{pp['repinned_s']:.1f}", "—", "—", f"{pp['repinned_s']:.1f} s", "reported", "—")
    elif sc.get("error"):
        row("operator: 1,000 TradingAgents at once", f"**FAILED** ({sc['error']})", "—", "—", "no figure",
            "≤ 60 s, ≤ 150 MB, 1 request per interval", "**FAILED**")
        missed.append(f"- operator at scale: FAILED ({sc['error']}); this run has no figure and none from an earlier run is shown")
    else:
        row("operator: 1,000 TradingAgents at once", "not run", "—", "—", "", "≤ 60 s, ≤ 150 MB, 1 request per interval", "—")

    failures_text = []
    for (scenario, server) in sorted(by):
        n = failures(scenario, server)
        if n:
            failures_text.append(f"- {scenario} / {server}: {n} failed requests (non-2xx or socket errors): "
                                 "that figure is not valid")

    dash = json.load(open(a.dashboard)) if a.dashboard else None
    busy = float(m["load_start"].split()[0]) > 1 or float(m["load_measure"].split()[0]) > 1
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Written by `tests/bench/run.sh` (`make bench`); do not edit by hand. Issue 7 says what is measured and why.")
    w("")
    w("## Machine")
    w("")
    w(f"- date: {m['date']}; commit {m['commit']}")
    w(f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, Linux {m['kernel']}")
    w(f"- load average (1/5/15 min): {m['load_start']} at start, {m['load_measure']} when measuring began, "
      f"{m['load_end']} at the end")
    if busy:
        w("- **These figures were taken on a shared, busy machine** (load average above 1: other test runs "
          "shared the CPUs). Ratios measured in the same run are meaningful; absolute figures are low.")
    w(f"- {m['rustc']}; {m['python']} ({m['python_packages'].strip()}); {m['postgres']}; {m['wrk']}")
    w("")
    w("## Results")
    w("")
    w(f"min / median / max of {m['runs']} runs of {m['duration']} each (interleaved: each run measures every server "
      "in turn), after a 3 s warm-up per server and scenario; ratios and PASS/MISS on the medians.")
    w("")
    w("| figure | trading-agent (Rust) | FastAPI (seed's stack) | bare hyper | measured | target | result |")
    w("|---|---|---|---|---|---|---|")
    out.extend(rows)
    w("")
    if missed:
        w("### Missed targets")
        w("")
        out.extend(missed)
        w("")
    if failures_text:
        w("### Failed requests")
        w("")
        out.extend(failures_text)
        w("")
    if dash is not None:
        out.extend(dashboard_section(dash, m))
    if a.freqtrade:
        out.extend(freqtrade_section(json.load(open(a.freqtrade)), m))
    cmp = json.load(open(a.compare)) if a.compare else None
    if cmp is not None:
        if "skipped" in cmp:
            out.extend([COMPARE_HEADING, "", f"Not run ({cmp['skipped']}): no figure.", ""])
        else:
            out.extend(compare_section(cmp))
    if a.level3:
        out.extend(level3_section(json.load(open(a.level3))))
    w("## How it was measured")
    w("")
    w(f"- One throwaway PostgreSQL for all (Debian's server, `initdb` in a temporary directory, loopback port; "
      "`fsync=off`, `synchronous_commit=off`, `full_page_writes=off` as in the tests: the database's own "
      "durability costs are left out so the figures compare the two API stacks). Schema from "
      f"`trading-agent migrate`; {m['trades_rows']:,} closed trades over 20 instruments seeded with SQL.")
    w(f"- Load: wrk on 127.0.0.1, `-t{m['threads']} -c{m['conns']}` for the GETs, `-t{m['threads']} "
      f"-c{m['upsert_conns']}` for the upserts ({m['batch']:,} candles per request, each wrk thread cycling over 8 "
      "instruments of its own; after the first round every request replaces existing rows). wrk runs on the same "
      f"{m['nproc']} CPUs as the server it measures. p99 is compared at the same concurrency, not at a fixed rate "
      "(wrk2 is not packaged in Debian), so the faster server is also the one carrying more requests.")
    w("- trading-agent: `cargo build --release`, `trading-agent api` with its defaults (Tokio multi-threaded, "
      "one worker per CPU, pool of 10), `LOG_LEVEL=warn`.")
    w("- FastAPI: `tests/bench/fastapi_app/` (same tables, same SQL, pydantic models, bearer dependency, asyncpg "
      "pool of 10), `uvicorn --workers 1 --loop uvloop --http httptools --no-access-log`. One worker is one "
      f"process on one core, against our one process on {m['nproc']} cores: the comparison is per process, "
      "as deployed (one container each). It is measured a second time with `--workers 2` (this machine's "
      f"{m['nproc']} cores, the most that can help here): req/s may rise, but wrk shares those cores, so the "
      "primary ratio stays server CPU per request (for 2 workers: the CPU of the supervisor and both worker "
      "processes together).")
    w("- bare hyper: `tests/bench/hyper-hello/` (hyper 1 HTTP/1.1 on the same Tokio runtime, a fixed "
      "`{\"status\":\"ok\"}` body, no routing).")
    w(f"- Response sizes checked equal in content before timing: the trades page is "
      f"{m['trades_bytes']['rust']:,} bytes from trading-agent and {m['trades_bytes']['fastapi']:,} from FastAPI "
      "(the same rows, compared field by field).")
    w("- Start-up: `tests/bench/startup.py` spawns the process and polls `/readyz` every millisecond with a fresh "
      "connection; the database is up and already migrated (the run still takes the migration lock and checks). "
      "RSS is VmRSS from /proc one second after ready.")
    w("- Strategy runner: `cargo bench -p trading-agent --bench indicators` (api/benches/indicators.rs): per "
      "tick, for each of 1,000 symbols with 500 closes, either every indicator series (SMA 5/20, EMA 8/21, RSI 14) "
      "or the runner's own `StrategyParams::evaluate` for the three demo strategies. Single-threaded. "
      "min / median / max over Criterion's samples.")
    w("")
    profile = open(a.profile).read() if a.profile else ""
    if profile.strip():
        w("## Profiles under load (perf record, 499 Hz, 4 s, by shared object and by symbol)")
        w("")
        w("The release binaries are stripped, so their own code shows as one DSO with raw addresses; the split "
          "between kernel (loopback TCP, epoll, syscalls) and user space is what matters here.")
        w("")
        out.append(profile.rstrip())
        w("")
    if cmp is None or "skipped" in cmp:
        out.extend(cluster_settings())
    if lat or sc.get("count"):
        w("## Operator")
        w("")
        w("Both parts run against the local harness (real kube-apiserver, etcd, controller-manager, scheduler and kwok "
          "nodes on loopback, on the same CPUs) with the release `trading-agent-operator` as its own process, "
          "`--namespace <its own namespace> --leader-election=false`, default settings otherwise.")
        w("")
        w("- `tests/bench/operator.py` (apply one by one): TradingAgents by digest (`mode: Pin`, no registry traffic), "
          "one replica per role, each timed from just before its create request to the watch event of its third "
          "Deployment. *Settled*: the next agent is created once the previous one is Ready and 200 ms have passed, "
          "so each apply meets a quiet cluster: this is the latency of one apply and the figure held against the "
          "target. *Back to back*: the next agent is created as soon as the previous one's Deployments exist, so it "
          "competes with the controller-manager, kwok and the operator still working on the previous agent "
          "(ReplicaSets, pods, status): reported to show the cost of a busy API server on two cores.")
        w("- `ta-bench-operator` (`tests/src/bin/ta-bench-operator.rs`, at scale): a real `docker-registry` with "
          "notifications to the operator's webhook, a counting proxy in front of it (the operator resolves through "
          "the proxy, so every manifest request is counted) and a second registry process on the same storage "
          "that notifies no one. The TradingAgents follow one tag with `interval: 10s` and 0 replicas per role, "
          "so the figures are the operator's and the API server's work, not the scheduler starting 3,000 pods. "
          "They are created at once, 50 requests in flight; *pinned* is when the bench's own watch has seen every "
          "Deployment carry the digest, *Ready* when every agent's status says Ready for its current generation.")
        if sc.get("count"):
            w(f"- That run made {sc['reconciliations']:,.0f} reconciliations in all; they sent "
              f"{sc['applies']:,.0f} server-side applies of children and skipped {sc['applies_skipped']:,.0f} because the "
              "cached child already was the desired state (`trading_agent_operator_applies_total` / "
              "`_applies_skipped_total`): every Deployment status change reconciles its agent, and those "
              "reconciliations write nothing.")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
