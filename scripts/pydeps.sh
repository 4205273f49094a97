#!/usr/bin/env bash
# Installs, idempotently, the Python tools the tests use (tests/requirements.txt, every package
# pinned) into a virtualenv outside the clone, keyed by that file's hash: a changed pin makes a new
# venv, an unchanged one is reused. Prints the venv's bin folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}
requirements=$root/tests/requirements.txt
key=$(sha256sum "$requirements" | cut -c1-16)
venv="$cache/venv-$key"
# A stable name for the current pins ($cache/venv), for the tests that do not hash the file themselves.
link_current() {
    [[ -d $cache/venv && ! -L $cache/venv ]] && rm -rf "$cache/venv" # an unkeyed venv of older scripts
    ln -sfn "$venv" "$cache/venv"
}
if [[ -f $venv/.complete ]]; then
    [[ $(readlink "$cache/venv" 2>/dev/null) == "$venv" ]] || link_current
    echo "$venv/bin"
    exit 0
fi
echo "==> installing the Python test tools (tests/requirements.txt) into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" >&2
"$venv/bin/pip" check >&2
touch "$venv/.complete"
link_current
echo "$venv/bin"
