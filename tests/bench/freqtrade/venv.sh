#!/usr/bin/env bash
# Installs freqtrade (requirements.txt: `pip freeze` of freqtrade 2026.9, every package pinned)
# into a venv outside the clone, keyed by that file's hash (the pattern of scripts/pydeps.sh).
# Prints the venv's bin folder.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
key=$(sha256sum "$here/requirements.txt" | cut -c1-16)
venv="$cache/venv-freqtrade-$key"
if [[ ! -f $venv/.complete ]]; then
    echo "==> installing freqtrade (tests/bench/freqtrade/requirements.txt) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt" >&2
    "$venv/bin/pip" check >&2
    touch "$venv/.complete"
fi
echo "$venv/bin"
