#!/usr/bin/env bash
# Checks the Kubernetes base (deploy/kubernetes/) offline, with no cluster:
#   1. scripts/gen-prometheusrule.py --check: the PrometheusRule and the dashboards' copies are
#      what the generator writes from alerts/llm-loadtest.*.yml and grafana/dashboards/*.json;
#   2. `kubectl kustomize` renders the kustomization (kubectl's built-in kustomize);
#   3. deploy/kubernetes/check/validate.py validates every rendered object, one line each:
#      Kubernetes' own kinds against the Kubernetes JSON schemas of every version that
#      kubernetes-validate ships, strict (unknown fields are errors); the prometheus-operator
#      kinds (ServiceMonitor, PrometheusRule) with deploy/kubernetes/check/crds.mjs, against the
#      JSON schemas and TypeScript types of @kubernetes-models/prometheus-operator, generated from
#      prometheus-operator's monitoring.coreos.com/v1 API types. Any other kind is an error.
# Exits non-zero on any error.
#
# Installs what it needs on first use, then runs offline:
#   - a venv with deploy/kubernetes/check/requirements.txt (PyPI, every package pinned) in
#     $LLM_LOADTEST_K8S_VENV (default target/k8s-venv), made anew when requirements.txt changes;
#   - `npm ci` in deploy/kubernetes/check (the npm registry), again when package-lock.json changes.
# Needs kubectl, python3 with its venv module, node and npm.
#
#   scripts/check-kubernetes.sh        # deploy/kubernetes
#   scripts/check-kubernetes.sh DIR    # another kustomization (an overlay, a copy), same checks
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/deploy/kubernetes}
check="$root/deploy/kubernetes/check"
venv=${LLM_LOADTEST_K8S_VENV:-$root/target/k8s-venv}

for tool in kubectl python3 node npm flock; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found (kubectl renders the kustomization; python3, node and npm validate it)" >&2
    exit 2
  fi
done

# Installs happen under one lock: the tests run this script for several kustomizations at once,
# and two of them making the same venv (or running npm ci in the same folder) break each other.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

# The Python tools: made anew whenever requirements.txt differs from the one installed.
if ! cmp -s "$check/requirements.txt" "$venv/requirements.txt"; then
  echo "installing deploy/kubernetes/check/requirements.txt into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    echo "error: python3 -m venv failed (Debian's python3: apt-get install python3-venv)" >&2
    exit 2
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$check/requirements.txt"
  cp "$check/requirements.txt" "$venv/requirements.txt"
fi

# The Node.js tools: exactly package-lock.json's versions, again whenever it changes.
if ! cmp -s "$check/package-lock.json" "$check/node_modules/.installed-package-lock.json"; then
  echo "npm ci in deploy/kubernetes/check"
  (cd "$check" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$check/package-lock.json" "$check/node_modules/.installed-package-lock.json"
fi
flock -u 9

"$venv/bin/python" "$root/scripts/gen-prometheusrule.py" --check

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$dir" >"$rendered"
kustomize=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')
echo "rendered $dir with kubectl kustomize ${kustomize:-(version unknown)}: $(grep -c '^kind: ' "$rendered") objects"
"$venv/bin/python" "$check/validate.py" "$rendered"
