#!/usr/bin/env python3
"""Validates every object of a rendered kustomization offline; scripts/check-kubernetes.sh runs it
with the venv of requirements.txt:

    python validate.py RENDERED.yaml

- Kubernetes' own kinds: against the Kubernetes JSON schemas that kubernetes-validate ships, for
  every Kubernetes version it has (1.25 to 1.37 with 1.37.0), strict (an unknown field is an
  error, as with `kubectl apply`'s default strict field validation).
- prometheus-operator's kinds (monitoring.coreos.com/v1 ServiceMonitor, PrometheusRule):
  kubernetes-validate has no CRD schemas; crds.mjs checks them against the JSON schemas and
  TypeScript types of @kubernetes-models/prometheus-operator (package.json here), both generated
  from prometheus-operator's monitoring.coreos.com/v1 Go API types (the types its CRDs are
  generated from).
- Any other kind is an error: nothing would have validated it.

Prints one line per object validated; exits 1 on any error.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml
import kubernetes_validate
from kubernetes_validate.utils import all_versions

HERE = os.path.dirname(os.path.abspath(__file__))
CRD_GROUP = "monitoring.coreos.com/"


def name(obj):
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} RENDERED.yaml")
    with open(sys.argv[1], encoding="utf-8") as f:
        objects = [o for o in yaml.safe_load_all(f) if o]
    if not objects:
        sys.exit("error: no object in the rendered output")
    versions = all_versions()
    failed = 0
    crds = []
    for obj in objects:
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            print(f"error: not a Kubernetes object: {str(obj)[:200]}")
            failed += 1
            continue
        if obj["apiVersion"].startswith(CRD_GROUP):
            crds.append(obj)
            continue
        errors = []
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(the object)"
                errors.append(f"Kubernetes {version}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                errors.append(f"Kubernetes {version}: {e.message}")
        if errors:
            failed += 1
            # The same error in every version is printed once.
            shown = []
            for e in errors:
                tail = e.split(": ", 1)[1]
                if all(tail != s.split(": ", 1)[1] for s in shown):
                    shown.append(e)
            for e in shown:
                print(f"error: {name(obj)}: {e}")
        else:
            span = f"Kubernetes {versions[0]} to {versions[-1]}"
            tool = f"kubernetes-validate {kubernetes_validate.__version__}"
            print(f"ok {name(obj)}: {obj['apiVersion']} schema of {span}, strict ({tool})")
    if crds:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(crds, f)
        try:
            command = ["node", os.path.join(HERE, "crds.mjs"), f.name]
            run = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
        finally:
            os.unlink(f.name)
        sys.stdout.write(run.stdout)
        # Lines "error: KIND/NAME: ...": one object may have several.
        errors = [line[len("error: ") :] for line in run.stdout.splitlines() if line.startswith("error: ")]
        bad = {e.split(": ", 1)[0] for e in errors}
        if run.returncode != 0:
            failed += max(len(bad), 1)
    if failed:
        print(f"kubernetes: FAILED, {failed} of {len(objects)} objects")
        sys.exit(1)
    kinds = sorted({o["kind"] for o in objects})
    print(f"kubernetes: OK, {len(objects)} objects ({', '.join(kinds)})")


if __name__ == "__main__":
    main()
