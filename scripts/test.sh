#!/usr/bin/env bash
# The test command (README, .ci/run). Installs and starts what the tests need
# on a fresh Debian machine (run as root), then runs every test, including the
# end-to-end tests against a real vLLM server.
#   LLM_LOADTEST_SHARED   where shared/ is (default: ../shared beside the repo)
#   REAL_VLLM_PORT        port for the real vLLM (default 8011)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${LLM_LOADTEST_SHARED:-$root/../shared}
port=${REAL_VLLM_PORT:-8011}
cd "$root"

step() { printf '\n==> %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

if [ ! -x "$shared/real-vllm/start.sh" ]; then
  echo "error: $shared/real-vllm/start.sh not found; set LLM_LOADTEST_SHARED to the shared/ directory" >&2
  exit 1
fi

step "build the tests"
cargo test --locked --no-run

step "start a real vLLM server on 127.0.0.1:$port"
"$shared/real-vllm/start.sh" --port "$port" --name llm-loadtest-test-vllm
trap '"$shared/real-vllm/stop.sh" --name llm-loadtest-test-vllm' EXIT
export LLM_LOADTEST_REAL_VLLM_URL="http://127.0.0.1:$port"
export LLM_LOADTEST_REAL_VLLM_MODEL=tiny

step "tests (unit, integration against the simulator, end-to-end against the real vLLM)"
# --include-ignored runs the end-to-end tests that need the real server;
# they fail (never skip) when it is missing.
cargo test --locked -- --include-ignored

step "lint"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
