#!/usr/bin/env bash
# Installs, idempotently, the Debian packages the project's commands need: PostgreSQL and the CNCF
# Distribution registry for the tests, openssl and curl for the cluster harness, umoci and skopeo to
# build and push images without a daemon, GNU time for build figures, Debian's chromium for the
# dashboard's browser tests (driven by playwright-core, which never downloads a browser); containerd,
# runc, the CNI plugins, iptables and iproute2 for the harness's real node (level 3, `NODE=real`).
# Packages already present are left alone; apt is touched only when something is missing.
set -euo pipefail

packages=(postgresql docker-registry openssl curl time ca-certificates umoci skopeo binutils chromium
    containerd runc containernetworking-plugins iptables iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Debian's python3 makes virtualenvs only with python3-venv (a pyenv or other python has it built in).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi

# The Rust components `make test` uses, when rustup manages the toolchain and lacks them.
if command -v rustup >/dev/null; then
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
            echo "==> rustup component add $component" >&2
            rustup component add "$component" >&2
        fi
    done
fi

if ((${#missing[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "==> installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# policy-rc.d keeps package scripts from starting system services (a PostgreSQL on :5432, a registry
# on :5000): the tests start their own, on free loopback ports.
policy=/usr/sbin/policy-rc.d
created_policy=
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
[[ -z $created_policy ]] || rm -f "$policy"
echo "==> installed: ${missing[*]}" >&2
