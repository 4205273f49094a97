#!/usr/bin/env bash
# Installs, idempotently, the Python tools the tests use into a virtualenv outside the clone:
# schemathesis (fuzzes the API against its own OpenAPI document). Prints the venv's bin folder.
set -euo pipefail
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
venv="$cache/venv"
schemathesis_version=4.32.5
# (Not `pip show | grep -q`: grep's early exit would fail the pipeline under pipefail.)
if [[ -x $venv/bin/schemathesis && $("$venv/bin/pip" show schemathesis 2>/dev/null) == *"Version: $schemathesis_version"* ]]; then
    echo "$venv/bin"
    exit 0
fi
echo "==> installing schemathesis $schemathesis_version into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version" >&2
echo "$venv/bin"
