#!/usr/bin/env bash
# Build the local image llm-loadtest:local from our release binary, with no
# image pulls: FROM local/busybox:latest (imported by ensure-dockerd.sh) plus
# the binary and every shared library `ldd` lists (the dynamic loader too),
# copied to the same paths. Runs as a non-root user; the entrypoint is the binary.
#   scripts/build-sim-image.sh [BINARY]    (default target/release/llm-loadtest,
#                                           built with cargo build --release --locked if missing)
#   LLM_LOADTEST_SHARED   where shared/ is (default: ../shared beside the repo)
#   IMAGE                 tag to build (default llm-loadtest:local)
# Then: docker run -d --network host --name X llm-loadtest:local sim --port P --host 127.0.0.1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${LLM_LOADTEST_SHARED:-$root/../shared}
image=${IMAGE:-llm-loadtest:local}
binary=${1:-$root/target/release/llm-loadtest}

if [ ! -x "$binary" ]; then
  if [ $# -ge 1 ]; then
    echo "error: $binary is not an executable file" >&2
    exit 1
  fi
  (cd "$root" && cargo build --release --locked)
elif [ $# -eq 0 ] && [ -n "$(find "$root/src" "$root/Cargo.toml" "$root/Cargo.lock" -newer "$binary" -print -quit)" ]; then
  echo "warning: $binary is older than the sources; run cargo build --release --locked first for a fresh image" >&2
fi

if [ -x "$shared/docker/ensure-dockerd.sh" ]; then
  "$shared/docker/ensure-dockerd.sh" >/dev/null
fi
docker info >/dev/null 2>&1 || { echo "error: no Docker Engine (run shared/docker/ensure-dockerd.sh)" >&2; exit 1; }
docker image inspect local/busybox:latest >/dev/null 2>&1 \
  || { echo "error: base image local/busybox:latest is missing (run shared/docker/ensure-dockerd.sh)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/llm-loadtest" "$ctx/data"
cp "$binary" "$ctx/rootfs/usr/local/bin/llm-loadtest"
cp "$root/config/example.toml" "$ctx/rootfs/etc/llm-loadtest/config.toml"
# rustls verifies TLS against the system's CA bundle, and refuses to build an HTTP client
# without one (distroless ships it; busybox does not).
mkdir -p "$ctx/rootfs/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
# data/ becomes the history directory, owned by the image's user (COPY --chown).

# ldd prints "libx.so.6 => /path/libx.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
# and "linux-vdso.so.1 (0x...)" (in the kernel, nothing to copy).
# A static binary: ldd says "not a dynamic executable" and there is nothing to copy.
deps=$(ldd "$binary" 2>&1 || true)
if grep -q 'not found' <<<"$deps"; then
  echo "error: $binary links libraries that are missing here:" >&2
  grep 'not found' <<<"$deps" >&2
  exit 1
fi
libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$deps" | sort -u)
for lib in $libs; do
  # -L: the file itself, even when the listed path is a symlink; --parents: same path in the image.
  cp -L --parents "$lib" "$ctx/rootfs/"
done

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
# No buildx plugin here: the classic builder (DOCKER_BUILDKIT=0) needs nothing more.
DOCKER_BUILDKIT=0 docker build -q -f "$root/docker/Dockerfile.local" -t "$image" "$ctx" >/dev/null 2>"$ctx/build.err" || {
  cat "$ctx/build.err" >&2
  exit 1
}
new_id=$(docker image inspect -f '{{.Id}}' "$image")
# The image this tag named before would stay behind untagged: remove it (unless a container uses it).
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "built $image ($(docker image inspect -f '{{.Size}}' "$image") bytes) from $binary with: $(echo "$libs" | tr '\n' ' ')"
