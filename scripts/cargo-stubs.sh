#!/bin/sh
# Writes stub sources for every workspace member and every target path its Cargo.toml names, so a
# Dockerfile can compile the dependency layer from manifests alone (see api/Dockerfile).
set -eu
for member in api operator tests; do
    mkdir -p "$member/src"
    echo 'fn main() {}' >"$member/src/main.rs"
    : >"$member/src/lib.rs"
    grep -o 'path = "[^"]*\.rs"' "$member/Cargo.toml" | cut -d'"' -f2 | while read -r target; do
        mkdir -p "$member/$(dirname "$target")"
        echo 'fn main() {}' >"$member/$target"
    done
done
