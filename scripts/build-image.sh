#!/usr/bin/env bash
# Builds an OCI image from a compiled binary without any container daemon, and pushes it.
#
#   scripts/build-image.sh --binary target/release/trading-agent --ref 127.0.0.1:5000/trading-agent:latest \
#       [--port 8000] [--label key=value]... [--env KEY=VALUE]... [--insecure]
#
# The image is assembled from the binary, exactly the shared libraries it links (found with ldd, taken
# from this Debian system), CA certificates, and a passwd/group naming an unprivileged user 65532. It
# runs as that user, with the binary as entrypoint. umoci writes the OCI layout, skopeo pushes it.
# Every build starts from an empty layout, so nothing stale can be carried over. Prints the pushed
# manifest digest on the last line.
set -euo pipefail

binary= ref= port= insecure= labels=() envs=()
while (($#)); do
    case "$1" in
    --binary) binary=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --label) labels+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --insecure) insecure=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n $binary && -n $ref ]] || { echo "build-image: --binary and --ref are required (see --help)" >&2; exit 2; }
[[ -x $binary ]] || { echo "build-image: $binary is not an executable" >&2; exit 2; }
for tool in umoci skopeo ldd; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool missing (make deps installs it)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout="$work/layout"
bundle="$work/bundle"
name=$(basename "$binary")

umoci init --layout "$layout"
umoci new --image "$layout:build"
umoci unpack --rootless --image "$layout:build" "$bundle" >/dev/null
rootfs="$bundle/rootfs"

install -D -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
strip --strip-debug "$rootfs/usr/local/bin/$name" 2>/dev/null || true
# The dynamic loader and every library the binary links, at the paths it expects.
ldd "$binary" | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}' | while read -r lib; do
    [[ -n $lib && -e $lib ]] || continue
    install -D -m 0644 "$(readlink -f "$lib")" "$rootfs$lib"
done
chmod 0755 "$rootfs"/lib*/ld-linux* "$rootfs"/lib64/ld-linux* 2>/dev/null || true
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

umoci repack --image "$layout:build" "$bundle" >/dev/null
config=(--config.entrypoint "/usr/local/bin/$name" --config.user 65532:65532 --config.workingdir /
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    --architecture amd64 --os linux
    --config.label "org.opencontainers.image.title=$name"
    --config.label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
[[ -n $port ]] && config+=(--config.exposedports "$port/tcp")
for label in "${labels[@]}"; do config+=(--config.label "$label"); done
for env in "${envs[@]}"; do config+=(--config.env "$env"); done
umoci config --image "$layout:build" "${config[@]}"

tls=()
[[ -n $insecure ]] && tls=(--dest-tls-verify=false)
skopeo copy --quiet "${tls[@]}" --digestfile "$work/digest" "oci:$layout:build" "docker://$ref" >&2
echo "==> pushed $ref ($(du -sh "$rootfs" | cut -f1) unpacked)" >&2
cat "$work/digest"
echo
