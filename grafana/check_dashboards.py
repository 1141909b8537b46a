#!/usr/bin/env python3
"""List every panel query of the llm-loadtest Grafana dashboards, ready for Prometheus.

Prints one JSON object per line and per query:

    {"dashboard": "llm-loadtest-overview", "file": "...", "panel": "Overall verdict",
     "type": "state-timeline", "refId": "A", "instant": false, "expr": "<PromQL>"}

with the dashboard variables substituted the way "All" would be: `$target`, `${target}`,
`${target:regex}`, `[[target]]` -> `.*` (every query variable), `${datasource}` ->
`prometheus`; and Grafana's built-ins: `$__rate_interval` -> 1m, `$__range` -> 5m,
`$__interval` -> 15s (the `_s` / `_ms` forms likewise). Only panel queries are listed (row
panels included), not the annotation queries (unless --annotations) or the variables' own queries.

Options:
  --prometheus URL   also run each expr as an instant query against URL (/api/v1/query)
                     and add "series" (result count) and "ok" (at least one series) to
                     each line; exit 1 when a query returned nothing or failed (an
                     annotation query: when it failed; "Failed runs" is rightly empty).
  --annotations      also list (and with --prometheus run) the annotation queries, as
                     rows with "panel": "annotation: NAME" and "type": "annotation".
  --lint             check the dashboard conventions (schemaVersion 39, datasource /
                     target / model variables, every panel and query on ${datasource},
                     every query with a refId and an expr, unique refIds per panel, unique
                     panel ids, panels inside the 24-column grid and not overlapping, no
                     `[$__rate_interval]` / `[$__interval]` window on an llm_loadtest_*
                     series (the daemon's counters and histograms step once per run:
                     such a window shows only gaps and spikes), every annotation but the
                     built-in one in the current form: the query in `target` (expr,
                     refId) on ${datasource}, no legacy top-level `expr` / `step`);
                     exit 2 on a violation (messages on stderr).
  --coverage FILE    with FILE = src/exporter/metrics.rs: report on stderr every
                     llm_loadtest_* metric it defines (plus --extra-metric NAMEs) that no
                     panel query uses, and which of those no rule in --rules uses either;
                     exit 3 when a metric is on neither.
  --rules GLOB       rule files for --coverage (default: alerts/*.yml beside grafana/).

Dashboards default to grafana/dashboards/*.json next to this script. Standard library only.

    python3 grafana/check_dashboards.py
    python3 grafana/check_dashboards.py --prometheus http://127.0.0.1:9090
    python3 grafana/check_dashboards.py --lint --coverage src/exporter/metrics.rs \\
        --extra-metric llm_loadtest_history_write_errors_total
"""

import argparse
import glob
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

BUILTINS = {
    "__rate_interval": "1m",
    "__range": "5m",
    "__interval": "15s",
    "__range_s": "300",
    "__range_ms": "300000",
    "__interval_ms": "15000",
    "__rate_interval_ms": "60000",
}

# ${name}, ${name:format}, $name, [[name]], [[name:format]]
VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")

DATASOURCE_REF = "${datasource}"

# A range selector of a Grafana interval variable right after an llm_loadtest_* series:
# rate(llm_loadtest_x_total{...}[$__rate_interval]) and the like.
SHORT_WINDOW_RE = re.compile(
    r"(llm_loadtest_[A-Za-z0-9_]+)\s*(?:\{[^}]*\})?\s*\[\s*(\$\{?__(?:rate_)?interval\}?)\s*\]")


def variable_values(dashboard):
    """What each dashboard variable stands for when "All" (or the Prometheus source) is chosen."""
    values = dict(BUILTINS)
    for v in dashboard.get("templating", {}).get("list", []):
        name = v.get("name")
        if not name:
            continue
        if v.get("type") == "datasource":
            values[name] = "prometheus"
        elif v.get("type") == "constant":
            values[name] = str(v.get("query", ""))
        else:
            values[name] = v.get("allValue") or ".*"
    return values


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))  # unknown ($1 of label_replace, ...) stays

    return VAR_RE.sub(repl, expr)


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def annotation_queries(d):
    """The Prometheus annotations (not the built-in one) and their query."""
    for a in (d.get("annotations") or {}).get("list") or []:
        if a.get("builtIn"):
            continue
        yield a, (a.get("target") or {})


def queries(path, annotations=False):
    with open(path) as f:
        d = json.load(f)
    values = variable_values(d)
    if annotations:
        for a, t in annotation_queries(d):
            if "expr" not in t:
                continue
            yield d, a, t, {
                "dashboard": d.get("uid") or os.path.basename(path),
                "file": os.path.relpath(path),
                "panel": "annotation: " + a.get("name", ""),
                "type": "annotation",
                "refId": t.get("refId", ""),
                "instant": False,
                "expr": substitute(t["expr"], values),
            }
    for p in walk_panels(d.get("panels")):
        for t in p.get("targets") or []:
            if "expr" not in t:
                continue
            yield d, p, t, {
                "dashboard": d.get("uid") or os.path.basename(path),
                "file": os.path.relpath(path),
                "panel": p.get("title", ""),
                "type": p.get("type", ""),
                "refId": t.get("refId", ""),
                "instant": bool(t.get("instant")) and not t.get("range"),
                "expr": substitute(t["expr"], values),
            }


def lint(path, d):
    errors = []
    where = os.path.basename(path)
    if d.get("schemaVersion") != 39:
        errors.append(f"{where}: schemaVersion is {d.get('schemaVersion')}, not 39")
    names = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = names.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append(f"{where}: no datasource variable of type datasource, query prometheus")
    for name, q in (("target", "label_values(llm_loadtest_target_info, target)"),
                    ("model", 'label_values(llm_loadtest_target_info{target=~"$target"}, model)')):
        v = names.get(name)
        if not v:
            errors.append(f"{where}: no {name} variable")
            continue
        query = v.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if query != q or not v.get("multi") or not v.get("includeAll"):
            errors.append(f"{where}: variable {name} must be {q}, multi, include All")
        if (v.get("datasource") or {}).get("uid") != DATASOURCE_REF:
            errors.append(f"{where}: variable {name} does not use {DATASOURCE_REF}")
    for a, t in annotation_queries(d):
        name = a.get("name", "")
        for legacy in ("expr", "step"):
            if legacy in a:
                errors.append(f"{where}: annotation {name!r} has a top-level {legacy!r} (legacy form): "
                              "put the query in target: {expr, refId}")
        if not t.get("expr") or not t.get("refId"):
            errors.append(f"{where}: annotation {name!r} has no target with an expr and a refId")
        if (a.get("datasource") or {}).get("uid") != DATASOURCE_REF:
            errors.append(f"{where}: annotation {name!r} does not use {DATASOURCE_REF}")
        if t and (t.get("datasource") or {}).get("uid", DATASOURCE_REF) != DATASOURCE_REF:
            errors.append(f"{where}: annotation {name!r} target does not use {DATASOURCE_REF}")
        for m in SHORT_WINDOW_RE.finditer(t.get("expr", "")):
            errors.append(f"{where}: annotation {name!r}: {m.group(1)}[{m.group(2)}]: the daemon's series "
                          "step once per run; use a last-run gauge or a window longer than the schedule")
    errors += layout_errors(where, d.get("panels") or [])
    ids = set()
    for p in walk_panels(d.get("panels")):
        title = p.get("title", "")
        if p.get("id") in ids:
            errors.append(f"{where}: duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            errors += layout_errors(where, p.get("panels") or [])
            continue
        if (p.get("datasource") or {}).get("uid") != DATASOURCE_REF:
            errors.append(f"{where}: panel {title!r} does not use {DATASOURCE_REF}")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"{where}: panel {title!r} has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            errors.append(f"{where}: panel {title!r} has missing or repeated refIds {refs}")
        for t in targets:
            if not t.get("expr"):
                errors.append(f"{where}: panel {title!r} query {t.get('refId')} has no expr")
            if (t.get("datasource") or {}).get("uid") != DATASOURCE_REF:
                errors.append(f"{where}: panel {title!r} query {t.get('refId')} does not use {DATASOURCE_REF}")
            if re.search(r'instance\s*=~?\s*"[^"$]', t.get("expr", "")):
                errors.append(f"{where}: panel {title!r} query {t.get('refId')} hard-codes an instance")
            for m in SHORT_WINDOW_RE.finditer(t.get("expr", "")):
                errors.append(f"{where}: panel {title!r} query {t.get('refId')}: {m.group(1)}[{m.group(2)}]: "
                              "the daemon's counters and histograms step once per run; draw the last-run "
                              "gauge, or use [$__range] or a fixed window longer than the schedule interval")
    return errors


def layout_errors(where, panels):
    """Panels (of one level: the top, or a collapsed row) inside the 24 columns, not overlapping."""
    errors = []
    taken = {}
    for p in panels:
        g = p.get("gridPos") or {}
        title = p.get("title", "")
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
            errors.append(f"{where}: panel {title!r} has gridPos {g} outside the 24-column grid")
            continue
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                other = taken.setdefault((cx, cy), (id(p), title))
                if other[0] != id(p):
                    errors.append(f"{where}: panel {title!r} overlaps panel {other[1]!r} at x={cx}, y={cy}")
                    break
            else:
                continue
            break
    return errors


def run_query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except Exception:  # noqa: BLE001 - report whatever came back
            return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, body.get("error", "query failed")
    result = body["data"]["result"]
    return (len(result) if isinstance(result, list) else 1), None


def metric_names(metrics_rs):
    with open(metrics_rs) as f:
        return re.findall(r'name:\s*"(llm_loadtest_[a-z0-9_]+)"', f.read())


def uses(text, name):
    return re.search(r"(?<![A-Za-z0-9_:])" + re.escape(name) + r"(?:_bucket|_sum|_count)?(?![A-Za-z0-9_:])", text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboards", nargs="*", help="dashboard JSON files (default: grafana/dashboards/*.json)")
    ap.add_argument("--prometheus", metavar="URL")
    ap.add_argument("--annotations", action="store_true")
    ap.add_argument("--lint", action="store_true")
    ap.add_argument("--coverage", metavar="METRICS_RS")
    ap.add_argument("--extra-metric", action="append", default=[], metavar="NAME")
    ap.add_argument("--rules", action="append", metavar="GLOB")
    args = ap.parse_args()

    paths = args.dashboards or sorted(glob.glob(os.path.join(HERE, "dashboards", "*.json")))
    if not paths:
        print("no dashboards found", file=sys.stderr)
        return 2
    status = 0
    exprs = []
    for path in paths:
        for d, _p, _t, row in queries(path, annotations=args.annotations):
            exprs.append(row["expr"])
            if args.prometheus:
                n, err = run_query(args.prometheus, row["expr"])
                row["series"] = n or 0
                row["ok"] = bool(n)
                if err:
                    row["error"] = err
                # An annotation may rightly be empty ("Failed runs" while nothing failed).
                if err or (not n and row["type"] != "annotation"):
                    status = status or 1
            print(json.dumps(row), flush=True)
        if args.lint:
            with open(path) as f:
                errors = lint(path, json.load(f))
            for e in errors:
                print(f"lint: {e}", file=sys.stderr)
            if errors:
                status = 2

    if args.coverage:
        names = list(dict.fromkeys(metric_names(args.coverage) + args.extra_metric))
        rule_globs = args.rules or [os.path.join(HERE, "..", "alerts", "*.yml")]
        rules_text = ""
        for g in rule_globs:
            for rf in sorted(glob.glob(g)):
                with open(rf) as f:
                    rules_text += f.read() + "\n"
        panels_text = "\n".join(exprs)
        off_panels = [n for n in names if not uses(panels_text, n)]
        for n in off_panels:
            where = "used by a rule only" if uses(rules_text, n) else "NOT USED by any panel or rule"
            print(f"coverage: {n}: not on a panel ({where})", file=sys.stderr)
        print(f"coverage: {len(names) - len(off_panels)}/{len(names)} metrics on a panel", file=sys.stderr)
        if any(not uses(rules_text, n) for n in off_panels):
            status = status or 3
    return status


if __name__ == "__main__":
    sys.exit(main())
