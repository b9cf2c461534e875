// Images made by qemu-img for the JS tests, and a Node reader for the probe loop.
import { openSync, readSync, closeSync, fstatSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function qemuImg(...args) {
  return execFileSync('qemu-img', args, { encoding: 'utf8' });
}

/**
 * Is `name` installed? A test without its oracle is skipped visibly — or,
 * when BACKING_CHAIN_REQUIRE_ORACLES is set (`.ci/test` sets it), fails:
 * CI never passes a test that did not run.
 */
export function haveTool(name) {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    requireOracle(`${name} is not installed`);
    return false;
  }
}

/** Throw when oracles are required; otherwise let the caller skip. */
export function requireOracle(why) {
  if (process.env.BACKING_CHAIN_REQUIRE_ORACLES) {
    throw new Error(`${why} (BACKING_CHAIN_REQUIRE_ORACLES is set: every oracle must run)`);
  }
}

export function haveQemuImg() {
  return haveTool('qemu-img');
}

/** `qemu-img info --output=json` of one file (no chain); `format` adds `-f`. */
export function qemuInfo(path, format) {
  return JSON.parse(qemuImg('info', '--output=json', '-U', ...(format ? ['-f', format] : []), path));
}

/**
 * base ← mid ← top (qcow2, backing formats recorded) in `dir`. With
 * `baseFormat` other than qcow2 the base must exist already (made by the
 * caller in that format).
 */
export function makeChain(dir, { base = 'base.qcow2', mid = 'mid.qcow2', top = 'top.qcow2', size = '1G', baseFormat = 'qcow2' } = {}) {
  if (baseFormat === 'qcow2') qemuImg('create', '-q', '-f', 'qcow2', join(dir, base), size);
  qemuImg('create', '-q', '-f', 'qcow2', '-F', baseFormat, '-b', base, join(dir, mid));
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', mid, join(dir, top));
  return { base: join(dir, base), mid: join(dir, mid), top: join(dir, top) };
}

/**
 * Make the backing-format header extension of a qcow2 unknown to everyone
 * (current qemu-img refuses to create an overlay without -F; older ones did,
 * and such images are common). Returns the patched offset.
 */
export function forgetBackingFormat(path) {
  const buf = readFileSync(path);
  const magic = Buffer.from([0xe2, 0x79, 0x2a, 0xca]);
  const at = buf.subarray(0, 4096).indexOf(magic);
  if (at < 0) throw new Error(`${path}: no backing format extension`);
  Buffer.from([0x0b, 0xad, 0xf0, 0x0d]).copy(buf, at);
  writeFileSync(path, buf);
  return at;
}

/** Run the probe loop of a wasm Session on a real file with positioned reads;
 *  records every range read. */
export function probeFile(session, name, path) {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const chunks = [];
    const ranges = [];
    for (let round = 0; round < 64; round++) {
      const answer = session.probe(name, size, chunks);
      if (!answer.need) return { answer, ranges, size };
      for (const { offset, len } of answer.need) {
        const buf = Buffer.alloc(len);
        const got = readSync(fd, buf, 0, len, offset);
        ranges.push({ offset, len, got });
        chunks.push([offset, new Uint8Array(buf.buffer, buf.byteOffset, got), len]);
      }
    }
    throw new Error('too many rounds');
  } finally {
    closeSync(fd);
  }
}

/** qemu-img map of one layer alone (its backing cut), summed by kind. @param {string} path */
export function layerOracle(path) {
  const spec = JSON.stringify({ driver: 'qcow2', file: { driver: 'file', filename: path }, backing: null });
  const map = JSON.parse(qemuImg('map', '--output=json', `json:${spec}`));
  const sum = (f) => map.filter(f).reduce((s, e) => s + e.length, 0);
  return {
    data: sum((e) => e.present && e.data && !e.compressed),
    compressed: sum((e) => e.present && e.compressed),
    zero: sum((e) => e.present && e.zero && !e.data),
    unallocated: sum((e) => !e.present),
  };
}
