// Bytes-read budget (issue 7, benchmark 5): probing an image through the wasm
// build reads at most the per-format budget (BYTES_BUDGET in
// bench-support.mjs), for one image of every format this qemu-img can create
// and for 100 GB sparse images (raw, and qcow2 with its metadata
// preallocated). Needs the wasm build (`bash .ci/build`); skips without
// qemu-img.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bigImages, budgetFor, formatImages, hasQemuImg, loadWasm, probeFile } from './bench-support.mjs';
import { qemuInfo } from '../support/images.mjs';

test('probes read within the per-format budget', { skip: !hasQemuImg() && 'qemu-img is not installed' }, async (t) => {
  const { probeStep } = await loadWasm();
  const step = (size, chunks) => {
    try {
      return probeStep(size, chunks);
    } catch (e) {
      return { error: e.message };
    }
  };
  const dir = mkdtempSync(join(tmpdir(), 'bytes-read-'));
  try {
    const images = [...formatImages(join(dir, 'formats')), ...bigImages(join(dir, 'big'))];
    // Every format the issue names is among them (qemu-img 10 creates all).
    const made = new Set(images.map((i) => i.format));
    for (const f of ['qcow2', 'qcow', 'qed', 'vmdk', 'vpc', 'vhdx', 'vdi', 'parallels', 'luks', 'raw']) {
      assert.ok(made.has(f), `no ${f} image was made: ${[...made].join(', ')}`);
    }
    const over = [];
    const wrong = [];
    for (const { label, format, path } of images) {
      const { bytesRead, result } = probeFile(step, path);
      const got = result.info?.format ?? `error: ${result.error}`;
      t.diagnostic(`${label}: ${bytesRead} B read (budget ${budgetFor(format)}), probed as ${got}`);
      if (bytesRead > budgetFor(format)) over.push(`${label}: ${bytesRead} B > ${budgetFor(format)} B`);
      // Within budget and right: the format is the one qemu-img sees. A
      // fixed VHD has only a footer, at the end, which qemu's format probe
      // does not look at (it says raw); we read the footer, and qemu-img
      // opens the file as vpc when told so.
      const theirs = qemuInfo(path, label === 'vpc-fixed' ? 'vpc' : undefined).format;
      if (got !== theirs) wrong.push(`${label}: ${got}, qemu-img says ${theirs}`);
    }
    assert.deepEqual(over, [], 'images read past their budget');
    assert.deepEqual(wrong, [], 'images probed as another format than qemu-img sees');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
