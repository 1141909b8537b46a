// Validates prometheus-operator objects (monitoring.coreos.com/v1 ServiceMonitor and
// PrometheusRule) given as a JSON array in OBJECTS.json; validate.py runs it:
//
//   node crds.mjs OBJECTS.json
//
// Two checks, both from @kubernetes-models/prometheus-operator (pinned in package-lock.json),
// generated from prometheus-operator's monitoring.coreos.com/v1 Go API types, the types its CRDs
// are generated from:
//   1. its JSON schema validators (ajv): types, required fields, enums, patterns (durations);
//   2. its TypeScript types, with `tsc --strict`: generated/<n>-<Kind>-<name>.ts holds
//      `export const object: I<Kind> = <the object>;`, so an unknown field anywhere is an
//      excess-property error (the JSON schemas allow unknown fields; the API server rejects
//      them under kubectl's default strict field validation).
// Prints one line per object; exits 1 on any error. Needs `npm ci` here first.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(
  readFileSync(join(here, 'node_modules/@kubernetes-models/prometheus-operator/package.json'), 'utf8'),
);
const source = `@kubernetes-models/prometheus-operator ${pkg.version}`;

const KINDS = {
  ServiceMonitor: { model: ServiceMonitor, type: 'IServiceMonitor' },
  PrometheusRule: { model: PrometheusRule, type: 'IPrometheusRule' },
};
const API_VERSION = 'monitoring.coreos.com/v1';

if (process.argv.length !== 3) {
  console.error('usage: node crds.mjs OBJECTS.json');
  process.exit(2);
}
const objects = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const outDir = join(here, 'generated');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

const failed = new Set();
const checked = [];
objects.forEach((obj, i) => {
  const id = `${obj.kind}/${obj.metadata?.name}`;
  const kind = KINDS[obj.kind];
  if (obj.apiVersion !== API_VERSION || !kind) {
    console.log(`error: ${id}: no schema for ${obj.apiVersion} ${obj.kind} (known: ${API_VERSION} ${Object.keys(KINDS).join(', ')})`);
    failed.add(id);
    return;
  }
  try {
    new kind.model(obj).validate();
  } catch (e) {
    console.log(`error: ${id}: ${source} schema: ${e.message}`);
    failed.add(id);
  }
  const file = `${i}-${obj.kind}-${String(obj.metadata?.name).replace(/[^A-Za-z0-9_.-]/g, '_')}.ts`;
  const module = `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${obj.kind}`;
  writeFileSync(
    join(outDir, file),
    `import type { ${kind.type} } from '${module}';\nexport const object: ${kind.type} = ${JSON.stringify(obj, null, 2)};\n`,
  );
  checked.push({ id, file });
});

if (checked.length > 0) {
  const tsc = spawnSync(join(here, 'node_modules/.bin/tsc'), ['-p', here], { encoding: 'utf8' });
  const out = `${tsc.stdout ?? ''}${tsc.stderr ?? ''}`;
  if (tsc.error) {
    console.log(`error: tsc: ${tsc.error.message}`);
    checked.forEach((c) => failed.add(c.id));
  } else if (tsc.status !== 0) {
    let attributed = false;
    for (const c of checked) {
      const lines = out.split('\n').filter((l) => l.includes(c.file));
      if (lines.length > 0) {
        attributed = true;
        failed.add(c.id);
        // The excess-property errors name the field and the type that lacks it.
        for (const l of lines) console.log(`error: ${c.id}: ${source} types (tsc): ${l.trim()}`);
      }
    }
    if (!attributed) {
      console.log(`error: tsc failed:\n${out}`);
      checked.forEach((c) => failed.add(c.id));
    }
  }
}

for (const c of checked) {
  if (!failed.has(c.id)) console.log(`ok ${c.id}: ${API_VERSION} schema and types of ${source} (tsc --strict)`);
}
process.exit(failed.size > 0 ? 1 : 0);
