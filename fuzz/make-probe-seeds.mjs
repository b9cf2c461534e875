// Make the `probe` fuzz target's seed corpus: an image of every format and
// variant qemu-img creates, plus small headers built from the specs for the
// formats it cannot create, each encoded in the target's sparse layout so
// that headers far into a file (vhdx at 64 KiB..3 MiB, footers at the end)
// fit in a short input. Run from the project root:
//
//   node fuzz/make-probe-seeds.mjs      # rewrites fuzz/corpus/probe/*.sparse
//
// Sparse layout (see fuzz_targets/probe.rs): byte 0 = mode with bit 1 set
// (bit 0 clear: the file length is known), u32 LE file length, then segments
// of u32 LE offset, u16 LE length and the bytes; holes read as zeros.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OUT = 'fuzz/corpus/probe';
const BLOCK = 512;
/** Of a longer run of nonzero blocks only the start is kept: no probe reads
 * key material, grain directories or tables past their first 4 KiB. */
const RUN = 4096;
const MAX_INPUT = 65536; // the fuzz runs' -max_len

/** The nonzero 512-byte blocks of `file`, coalesced (the first RUN bytes of
 * each run), in the sparse layout. */
function sparse(file) {
  const parts = [];
  const head = Buffer.alloc(5);
  head[0] = 2;
  head.writeUInt32LE(file.length, 1);
  parts.push(head);
  for (let at = 0; at < file.length; ) {
    const end = Math.min(at + BLOCK, file.length);
    if (!file.subarray(at, end).some((b) => b !== 0)) {
      at = end;
      continue;
    }
    let stop = end;
    while (stop < file.length) {
      const next = Math.min(stop + BLOCK, file.length);
      if (!file.subarray(stop, next).some((b) => b !== 0)) break;
      stop = next;
    }
    const keep = Math.min(stop, at + RUN);
    const seg = Buffer.alloc(6);
    seg.writeUInt32LE(at, 0);
    seg.writeUInt16LE(keep - at, 4);
    parts.push(seg, file.subarray(at, keep));
    at = stop;
  }
  return Buffer.concat(parts);
}

const dir = mkdtempSync(join(tmpdir(), 'seeds-'));
const q = (...args) => execFileSync('qemu-img', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const seeds = [];
const take = (name, file) => seeds.push([name, file]);

// What qemu-img creates (the same options tests/formats.rs checks against
// qemu-img info).
q('create', '-q', '-f', 'qcow2', 'base.qcow2', '1G');
const made = [
  ['qcow2-v3-backing', ['-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2'], 'x.qcow2'],
  ['qcow2-v2', ['-f', 'qcow2', '-o', 'compat=0.10'], 'x.qcow2', '1G'],
  ['qcow2-extl2-zstd-data-file', ['-f', 'qcow2', '-o', 'extended_l2=on,compression_type=zstd,data_file=x.raw'], 'x.qcow2', '1G'],
  ['qcow2-luks', ['-f', 'qcow2', '--object', 'secret,id=s,data=x', '-o', 'encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10'], 'x.qcow2', '64M'],
  ['qcow', ['-f', 'qcow', '-F', 'qcow2', '-b', 'base.qcow2'], 'x.qcow'],
  ['qed', ['-f', 'qed', '-F', 'qcow2', '-b', 'base.qcow2'], 'x.qed'],
  ['vmdk-monolithicSparse', ['-f', 'vmdk'], 'x.vmdk', '1G'],
  ['vmdk-streamOptimized', ['-f', 'vmdk', '-o', 'subformat=streamOptimized'], 'x.vmdk', '1G'],
  ['vmdk-monolithicFlat', ['-f', 'vmdk', '-o', 'subformat=monolithicFlat'], 'x.vmdk', '1M'],
  ['vpc-dynamic', ['-f', 'vpc'], 'x.vhd', '1G'],
  ['vpc-fixed', ['-f', 'vpc', '-o', 'subformat=fixed'], 'x.vhd', '1M'],
  ['vhdx', ['-f', 'vhdx'], 'x.vhdx', '1G'],
  ['vdi', ['-f', 'vdi'], 'x.vdi', '1G'],
  ['parallels', ['-f', 'parallels'], 'x.hdd', '1G'],
  ['luks', ['-f', 'luks', '--object', 'secret,id=s,data=x', '-o', 'key-secret=s,iter-time=10'], 'x.luks', '1M'],
];
for (const [name, args, file, size] of made) {
  for (const f of readdirSync(dir)) if (f.startsWith('x.')) unlinkSync(join(dir, f));
  q('create', '-q', ...args, file, ...(size ? [size] : []));
  take(name, readFileSync(join(dir, file)));
}
rmSync(dir, { recursive: true, force: true });

// Formats qemu-img cannot create: their magic and the fields the probe reads,
// after the layouts qemu's block drivers document (little data, the fuzzer
// does the rest).
const put = (b, at, v) => Buffer.from(v).copy(b, at);
{
  // cow (User-Mode Linux v2): magic 'OOOM', version 2 (BE), backing name at
  // 8 (1024 bytes), mtime, size (u64 BE at 1036), sector size (u32 BE, 1044).
  const b = Buffer.alloc(2048);
  put(b, 0, [0x4f, 0x4f, 0x4f, 0x4d, 0, 0, 0, 2]);
  put(b, 8, Buffer.from('/var/lib/uml/root_fs'));
  b.writeBigUInt64BE(3n << 30n, 1036);
  b.writeUInt32BE(512, 1044);
  take('cow', b);
}
{
  // bochs: "Bochs Virtual HD Image", type "Redolog", subtype "Growing",
  // version 0x00020000 at 92, header size 512, disk size at 512 + 16.
  const b = Buffer.alloc(4096);
  put(b, 0, Buffer.from('Bochs Virtual HD Image'));
  put(b, 32, Buffer.from('Redolog'));
  put(b, 48, Buffer.from('Growing'));
  b.writeUInt32LE(0x20000, 64);
  b.writeUInt32LE(512, 68);
  b.writeUInt32LE(512, 72);
  b.writeUInt32LE(1, 76);
  b.writeUInt32LE(4096, 80);
  b.writeBigUInt64LE(2n << 20n, 88);
  take('bochs', b);
}
{
  // cloop: the shell preamble, then block size and count (BE) at 128.
  const b = Buffer.alloc(4096);
  put(b, 0, Buffer.from('#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'));
  b.writeUInt32BE(65536, 128);
  b.writeUInt32BE(16, 132);
  take('cloop', b);
}
{
  // dmg: the 512-byte 'koly' trailer at the end: version, header size, the
  // plist offset and length (216, 224), sector count (492).
  const b = Buffer.alloc(8192);
  const k = b.length - 512;
  put(b, k, Buffer.from('koly'));
  b.writeUInt32BE(4, k + 4);
  b.writeUInt32BE(512, k + 8);
  b.writeBigUInt64BE(4096n, k + 216);
  b.writeBigUInt64BE(1024n, k + 224);
  b.writeBigUInt64BE(20480n, k + 492);
  take('dmg', b);
}
{
  // iso (ECMA-119 §8.4): the primary volume descriptor at sector 16, volume
  // space size and block size both-endian (80, 128).
  const b = Buffer.alloc(40 * 2048);
  const d = 16 * 2048;
  put(b, d, [1, ...Buffer.from('CD001'), 1]);
  b.writeUInt32LE(40, d + 80);
  b.writeUInt32BE(40, d + 84);
  b.writeUInt16LE(2048, d + 128);
  b.writeUInt16BE(2048, d + 130);
  take('iso', b);
}

for (const f of readdirSync(OUT)) if (f.endsWith('.sparse')) unlinkSync(join(OUT, f));
for (const [name, file] of seeds) {
  const s = sparse(file);
  if (s.length > MAX_INPUT) throw new Error(`${name}: ${s.length} bytes in the sparse layout, above ${MAX_INPUT}`);
  writeFileSync(join(OUT, `${name}.sparse`), s);
  console.log(`${name}: ${file.length} bytes → ${s.length}`);
}
