// The audit entry point of the wasm API (`Session.audit`), in Node, on the
// build the page loads, against images made by qemu-img: a shared base under
// two linked clones, an orphan, several domains in one text and a broken one.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, qemuImg, probeFile } from '../support/images.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
// The on-demand module: the edits, and a session with audit (issue 18).
const meta = await import(join(PKG, 'backing_chain_meta.js'));
const skip = haveQemuImg() ? false : 'qemu-img is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
  meta.initSync({ module: readFileSync(join(PKG, 'backing_chain_meta_bg.wasm')) });
});

/** @param {string} name @param {string} file */
function domain(name, file) {
  return `<domain type='kvm'><name>${name}</name><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/${file}'/><target dev='vda' bus='virtio'/></disk></devices></domain>\n`;
}

test('Session.audit: users, verdicts, hazard, a broken domain with its position', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-audit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'golden.qcow2'), '16M');
  for (const n of ['a.qcow2', 'b.qcow2', "orphan 'x'.qcow2"]) {
    qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'golden.qcow2', join(dir, n));
  }
  const s = new meta.Session(); // the audit is the on-demand module's (issue 18)
  const sizes = {};
  for (const n of ['golden.qcow2', 'a.qcow2', 'b.qcow2', "orphan 'x'.qcow2"]) {
    probeFile(s, n, join(dir, n));
    sizes[n] = statSync(join(dir, n)).size;
  }
  const bad = "<domain><name>bad</name>\n<devices><disk></devices></domain>\n";
  const text = domain('va', 'a.qcow2') + bad + domain('vb', 'b.qcow2');
  const { report, csv, script } = s.audit([{ label: 'all.xml', text }], { sizes });
  const idx = (/** @type {string} */ n) => report.images.findIndex((e) => e.filename === n);
  const golden = report.images[idx('golden.qcow2')];
  assert.equal(golden.role, 'layer');
  assert.deepEqual(golden.users.map((u) => `${u.name}:${u.disk}@${u.depth}`).sort(), ['va:vda@1', 'vb:vda@1']);
  assert.equal(golden['dependents-count'], 3);
  assert.equal(golden.delete.verdict, 'breaks-others');
  assert.equal(golden['file-size'], sizes['golden.qcow2']);
  assert.equal(report.images[idx("orphan 'x'.qcow2")].role, 'orphan-top');
  assert.equal(report.images[idx("orphan 'x'.qcow2")].delete.verdict, 'safe');
  const commit = report.images[idx('a.qcow2')].commit;
  assert.equal(commit['hazard-count'], 2);
  assert.equal(commit['hazard-disks-count'], 1);
  assert.deepEqual(report.vms.map((v) => v.name), ['va', 'vb']);
  assert.deepEqual(report.vms[0].exclusive, [idx('a.qcow2')]);
  assert.equal(report['domain-errors'].length, 1);
  const e = report['domain-errors'][0];
  assert.equal(e.line, 3);
  assert.ok(e.position > text.indexOf(bad) && e.position <= text.indexOf('</devices>', text.indexOf(bad)) + 10);
  assert.equal(csv.split('\r\n').filter(Boolean).length, 5);
  assert.ok(script.startsWith('#!/bin/sh\n') && script.includes('set -eu'));
});
