#!/usr/bin/env bash
# The test command (README, .ci/run). Installs and starts what the tests need
# on a fresh Debian machine (run as root), then runs every test, including the
# end-to-end tests against a real vLLM server in a real Docker container.
#   LLM_LOADTEST_SHARED   where shared/ is (default: ../shared beside the repo)
#   REAL_VLLM_PORT        port for the real vLLM (default 8011)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${LLM_LOADTEST_SHARED:-$root/../shared}
port=${REAL_VLLM_PORT:-8011}
# Where the tests' OTLP receiver listens; the real vLLM exports its spans there.
otlp=${REAL_VLLM_OTLP:-127.0.0.1:4317}
vllm_name=llm-loadtest-test-vllm
cd "$root"

step() { printf '\n==> %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

if [ ! -x "$shared/real-vllm/start.sh" ]; then
  echo "error: $shared/real-vllm/start.sh not found; set LLM_LOADTEST_SHARED to the shared/ directory" >&2
  exit 1
fi

step "system packages and the Docker Engine"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1 \
  || ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager chromium >/dev/null
fi
"$shared/docker/ensure-dockerd.sh"

step "build the tests and the binary"
cargo test --locked --no-run
cargo build --locked

step "build the llm-loadtest:local image (simulator in a container)"
scripts/build-sim-image.sh "$root/target/debug/llm-loadtest"

step "start a real vLLM server in a container on 127.0.0.1:$port"
# vLLM exports its llm_request spans over OTLP/gRPC; between the tests that
# receive them nothing listens, and vLLM only logs an unparsed "Failed to
# export" line (not an ERROR event).
"$shared/real-vllm/start.sh" --docker --port "$port" --name "$vllm_name" \
  -- --otlp-traces-endpoint "http://$otlp" --enable-log-requests
trap '"$shared/real-vllm/stop.sh" --name "$vllm_name"' EXIT
export LLM_LOADTEST_REAL_VLLM_URL="http://127.0.0.1:$port"
export LLM_LOADTEST_REAL_VLLM_MODEL=tiny
export LLM_LOADTEST_REAL_VLLM_CONTAINER="$vllm_name"
export LLM_LOADTEST_REAL_VLLM_OTLP="$otlp"
export LLM_LOADTEST_REAL_VLLM_OTLP_PROTOCOL=grpc
# A receiver that is not ours checks the tool's own spans (tests/own_traces.rs):
# the OpenTelemetry project's Python opentelemetry-proto + grpcio, from vLLM's venv.
export LLM_LOADTEST_OTLP_PYTHON="${REAL_VLLM_HOME:-/var/tmp/real-vllm}/venv/bin/python"
# A fresh vLLM's first requests are slow outside its engine (lazy set-up in
# the HTTP frontend): warm it so the tests measure a server in steady state.
warm() {
  target/debug/llm-loadtest run --target "$LLM_LOADTEST_REAL_VLLM_URL" --model tiny \
    --requests 8 --concurrency 2 --max-tokens 8 --skip-validation --quiet >/dev/null
}
warm

step "tests (unit, simulator, Docker Engine, real vLLM)"
# --include-ignored runs the tests that need the real server, the Docker
# Engine or promtool; they fail (never skip) when those are missing.
# The OTLP/HTTP test needs the server restarted with the other transport (below).
status=0
cargo test --locked --no-fail-fast -- --include-ignored --skip over_otlp_http || status=$?

step "restart the real vLLM (no container) exporting spans over OTLP/HTTP"
# Two cores: never two vLLMs at once.
"$shared/real-vllm/stop.sh" --name "$vllm_name"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf "$shared/real-vllm/start.sh" --port "$port" --name "$vllm_name" \
  -- --otlp-traces-endpoint "http://$otlp/v1/traces" --enable-log-requests
warm
LLM_LOADTEST_REAL_VLLM_OTLP_PROTOCOL=http/protobuf \
  cargo test --locked --test real_vllm_traces over_otlp_http -- --include-ignored || status=$?
[ "$status" = 0 ] || { echo "tests failed" >&2; exit "$status"; }

step "lint"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
