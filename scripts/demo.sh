#!/usr/bin/env bash
# `make demo`: the local stack at work. Until the operator lands, this shows the cluster the demo
# will run on and how to reach it.
set -euo pipefail
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
kubeconfig="$cache/cluster/kubeconfig"
kubectl="$cache/bin/kubectl --kubeconfig $kubeconfig"

echo "==> local Kubernetes is up"
$kubectl version
echo
echo "==> simulated nodes (kwok)"
$kubectl get nodes -o wide
echo
cat <<EOT
Reach it with:
  export KUBECONFIG=$kubeconfig
  $cache/bin/kubectl get nodes
Stop it with:
  make cluster-down
EOT
