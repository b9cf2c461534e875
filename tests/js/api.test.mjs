// The JS API of the wasm module, in Node, on the same --target web build the
// page loads (initSync with the bytes), against images made by qemu-img.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, haveTool, makeChain, qemuImg, qemuInfo, probeFile, forgetBackingFormat } from '../support/images.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
const skip = haveQemuImg() ? false : 'qemu-img is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
});

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bce-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Evaluate an XPath with xmllint (an independent XML parser). */
function xpath(xml, expr) {
  try {
    return execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    if (e.status === 10 || /XPath set is empty/.test(String(e.stderr))) return '';
    throw e;
  }
}

function haveXmllint() {
  return haveTool('xmllint');
}

test('probe facts match qemu-img info for a base/mid/top qcow2 set', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir, { size: '3G' });
  const s = new wasm.Session();
  for (const [name, path] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) {
    const { answer, ranges, size } = probeFile(s, name, path);
    assert.ok(answer.info, `${name}: ${JSON.stringify(answer)}`);
    const q = qemuInfo(path);
    assert.equal(answer.info.format, q.format);
    assert.equal(answer.info['virtual-size'], q['virtual-size']);
    assert.equal(answer.info['virtual-size'], 3 * 1024 ** 3);
    assert.equal(answer.info['cluster-size'], q['cluster-size']);
    assert.equal(answer.info['backing-filename'], q['backing-filename']);
    assert.equal(answer.info['backing-filename-format'], q['backing-filename-format']);
    assert.equal(answer.info['dirty-flag'], q['dirty-flag']);
    // Only headers: a handful of KiB, far less than the file.
    const read = ranges.reduce((a, r) => a + r.got, 0);
    assert.ok(read <= 64 * 1024, `${name}: read ${read} bytes`);
    assert.ok(read < size, `${name}: read ${read} of ${size}`);
  }
  assert.equal(s.length, 3);
  const forest = s.forest();
  const names = forest.images.map((i) => i.filename);
  assert.equal(forest.chains.length, 1);
  const ch = forest.chains[0];
  assert.deepEqual(ch.layers.map((i) => names[i]), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  assert.equal(ch.status, 'ok');
  assert.deepEqual(ch.diagnostics, []);
  assert.deepEqual(forest.overlays[names.indexOf('base.qcow2')].map((i) => names[i]), ['mid.qcow2']);
  // bytes-read is what the caller handed in.
  for (const img of forest.images) assert.ok(img['bytes-read'] > 0 && img['bytes-read'] <= 64 * 1024);
});

test('a long backing name (600+ bytes, nested directories) is read in full', { skip }, (t) => {
  const dir = tmp(t);
  // qemu caps backing names at 1023 bytes; a long one still has to come out whole.
  const longDir = join(dir, 'd'.repeat(200), 'e'.repeat(200));
  execFileSync('mkdir', ['-p', longDir]);
  const base = join(longDir, `${'b'.repeat(200)}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', base, '64M');
  const top = join(dir, 'top.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, top);
  const s = new wasm.Session();
  const { answer, ranges } = probeFile(s, top, top);
  assert.equal(answer.info['backing-filename'], qemuInfo(top)['backing-filename']);
  assert.equal(answer.info['backing-filename'], base);
  for (const r of ranges) assert.ok(r.len <= 1024 * 1024, `a read of ${r.len} bytes`);
});

test('nested XML: paths, formats and the terminator, checked with xmllint', { skip: skip || (!haveXmllint() && 'xmllint missing') }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const s = new wasm.Session();
  for (const [n, p] of [['base.qcow2', f.base], ['top.qcow2', f.top], ['mid.qcow2', f.mid]]) probeFile(s, n, p);
  const out = s.xml(undefined, { layout: 'nested', 'base-dir': '/var/lib/libvirt/images' });
  const xml = out.xml;
  assert.equal(xpath(xml, 'string(/disk/source/@file)'), '/var/lib/libvirt/images/top.qcow2');
  assert.equal(xpath(xml, 'string(/disk/driver/@type)'), 'qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/source/@file)'), '/var/lib/libvirt/images/mid.qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/format/@type)'), 'qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/backingStore/source/@file)'), '/var/lib/libvirt/images/base.qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/backingStore/format/@type)'), 'qcow2');
  // The terminator: an empty <backingStore/> under the base.
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore/backingStore)'), '1');
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore/backingStore/*)'), '0');
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore/backingStore/@*)'), '0');
  assert.deepEqual(out.diagnostics, [], 'absolute paths: no relative-path warnings');
});

test('flat XML: one <backingStore> per layer plus the terminator, aliases chain the parents', { skip: skip || (!haveXmllint() && 'xmllint missing') }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const s = new wasm.Session();
  for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) probeFile(s, n, p);
  const xml = s.xml(null, { layout: 'flat', 'base-dir': '/img' }).xml;
  assert.equal(xpath(xml, 'count(/disk/backingStore)'), '3');
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore)'), '0');
  assert.equal(xpath(xml, 'string(/disk/backingStore[1]/source/@file)'), '/img/mid.qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore[2]/source/@file)'), '/img/base.qcow2');
  const dev = xpath(xml, 'string(/disk/target/@dev)');
  assert.equal(xpath(xml, 'string(/disk/backingStore[1]/alias/@parent)'), dev);
  assert.equal(xpath(xml, 'string(/disk/backingStore[2]/alias/@parent)'), xpath(xml, 'string(/disk/backingStore[1]/alias/@name)'));
  assert.equal(xpath(xml, 'string(/disk/backingStore[3]/alias/@parent)'), xpath(xml, 'string(/disk/backingStore[2]/alias/@name)'));
  assert.equal(xpath(xml, 'count(/disk/backingStore[3]/source)'), '0');
});

test('a missing base: chain status and an error diagnostic naming it', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const s = new wasm.Session();
  probeFile(s, 'top.qcow2', f.top);
  probeFile(s, 'mid.qcow2', f.mid);
  const forest = s.forest();
  assert.equal(forest.chains.length, 1);
  const ch = forest.chains[0];
  assert.equal(ch.status, 'missing');
  assert.equal(ch.layers.length, 2);
  const d = ch.diagnostics.find((x) => x.code === 'missing-backing');
  assert.ok(d, JSON.stringify(ch.diagnostics));
  assert.equal(d.severity, 'error');
  assert.match(d.message, /base\.qcow2/);
  // No terminator for an open chain.
  const xml = s.xml(null, { 'base-dir': '/x' }).xml;
  assert.doesNotMatch(xml, /<backingStore\/>/);
  assert.match(xml, /<source file='\/x\/mid\.qcow2'\/>/);
});

test('an unrecorded backing format is flagged, and its fix command really fixes it', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  forgetBackingFormat(f.top);
  assert.equal(qemuInfo(f.top)['backing-filename-format'], undefined, 'qemu-img no longer sees a backing format');
  const s = new wasm.Session();
  for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) probeFile(s, n, p);
  const forest = s.forest();
  const top = forest.images.find((i) => i.filename === 'top.qcow2');
  assert.equal(top['backing-filename-format'], undefined);
  const d = forest.chains[0].diagnostics.find((x) => x.code === 'backing-format-not-recorded');
  assert.ok(d, JSON.stringify(forest.chains[0].diagnostics));
  // mid has a backing file of its own: libvirt refuses to start → error.
  assert.equal(d.severity, 'error');
  assert.match(d.fix, /^qemu-img rebase -u /);
  // Run the fix (with the real path in place of the dropped name).
  const argv = d.fix.split(' ').slice(1);
  argv[argv.length - 1] = f.top;
  execFileSync('qemu-img', argv, { cwd: dir });
  assert.equal(qemuInfo(f.top)['backing-filename-format'], 'qcow2');
});

test('a domain XML: the matching disk gets its chain; the rest of the document is kept', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const s = new wasm.Session();
  for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) probeFile(s, n, p);
  const domain = `<domain type='kvm'>
  <name>vm1</name>
  <!-- keep me -->
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/iso/other.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
  </devices>
</domain>
`;
  const out = s.xml(domain, {});
  const xml = out.xml;
  assert.ok(xml.includes('<!-- keep me -->'));
  // Untouched but for its number: libvirt numbers every disk's source.
  assert.match(xml, /<source file='\/iso\/other\.iso' index='\d+'\/>/);
  if (haveXmllint()) {
    assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/backingStore/source/@file)"), '/var/lib/libvirt/images/mid.qcow2');
    assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/backingStore/backingStore/source/@file)"), '/var/lib/libvirt/images/base.qcow2');
    assert.equal(xpath(xml, "count(//disk[target/@dev='sda']/backingStore)"), '0');
  }
  // The top's number as a freshly started VM's (libvirt 11.3: pass 1 from
  // the last disk, sda 1, vda 2).
  assert.ok(xml.includes("<source file='/var/lib/libvirt/images/top.qcow2' index='2'/>"));
  // Removing the inserted lines and the numbers gives the input back.
  const stripped = xml.replace(/\n *<backingStore[\s\S]*<\/backingStore>/, '').replace(" index='2'", '').replace(" index='1'", '');
  assert.equal(stripped, domain);
  assert.ok(out.diagnostics.some((d) => d.code === 'disk-not-matched' && d.message.includes('other.iso')));
});

test('malformed XML throws an Error with a byte position at the problem', () => {
  const s = new wasm.Session();
  const good = "<domain><devices><disk type='file'><source file='/a/top.qcow2'/></disk></devices>";
  const bad = `${good}\n<oops`;
  assert.throws(
    () => s.xml(bad, {}),
    (e) => {
      assert.ok(e instanceof Error);
      assert.equal(typeof e.position, 'number');
      assert.ok(e.position >= good.length && e.position <= bad.length, `position ${e.position}`);
      assert.match(e.message, /XML/);
      // The reason alone, as a field: no prefix for callers to strip.
      assert.equal(typeof e.reason, 'string');
      assert.ok(e.reason.length > 0);
      assert.equal(e.message, `XML error at byte ${e.position}: ${e.reason}`);
      return true;
    },
  );
  // Non-ASCII before the error: the position is in UTF-8 bytes.
  const utf = `<domain><name>é</name>\n<oops`;
  assert.throws(() => s.xml(utf, {}), (e) => e.position >= Buffer.byteLength('<domain><name>é</name>\n'));
});

test('a truncated header and an unreadable file are kept with their error; the chain reaching them says so', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const trunc = join(dir, 'trunc.qcow2');
  writeFileSync(trunc, readFileSync(f.mid).subarray(0, 40));
  const s = new wasm.Session();
  probeFile(s, 'top.qcow2', f.top);
  const { answer } = probeFile(s, 'mid.qcow2', trunc);
  assert.ok(answer.error, JSON.stringify(answer));
  s.addUnreadable('other.qcow2', 'permission denied');
  const forest = s.forest();
  const mid = forest.images.find((i) => i.filename === 'mid.qcow2');
  assert.ok(mid.error);
  const other = forest.images.find((i) => i.filename === 'other.qcow2');
  assert.equal(other.error, 'permission denied');
  const ch = forest.chains.find((c) => forest.images[c.top].filename === 'top.qcow2');
  assert.notEqual(ch.status, 'ok');
  assert.ok(ch.diagnostics.some((d) => d.severity === 'error'));
});

test('remove() replaces a re-dropped image; clear() empties the session', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  const s = new wasm.Session();
  probeFile(s, 'top.qcow2', f.top);
  probeFile(s, 'mid.qcow2', f.mid);
  assert.equal(s.forest().chains[0].status, 'missing');
  assert.equal(s.remove('mid.qcow2'), true);
  assert.equal(s.remove('mid.qcow2'), false);
  probeFile(s, 'mid.qcow2', f.mid);
  probeFile(s, 'base.qcow2', f.base);
  assert.equal(s.length, 3);
  assert.equal(s.forest().chains[0].status, 'ok');
  s.clear();
  assert.equal(s.length, 0);
  assert.deepEqual(s.forest().chains, []);
});

test('setUntrusted flags backing names that reach outside (as chain --untrusted), only while set', { skip }, (t) => {
  const dir = tmp(t);
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(dir, 'fine.qcow2'));
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '../../etc/x.qcow2', '-u', join(dir, 'up.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/shadow', '-u', join(dir, 'etc.qcow2'), '1G');
  // The names as qemu-img recorded them.
  assert.equal(qemuInfo(join(dir, 'up.qcow2'))['backing-filename'], '../../etc/x.qcow2');
  const s = new wasm.Session();
  for (const n of ['fine.qcow2', 'base.qcow2', 'up.qcow2', 'etc.qcow2']) probeFile(s, n, join(dir, n));
  const flagged = () =>
    s.forest().chains.flatMap((c) => c.diagnostics.filter((d) => d.code === 'untrusted-backing-name').map((d) => s.forest().images[d.image].filename)).sort();
  assert.deepEqual(flagged(), []);
  s.setUntrusted(true);
  // '../../etc/x.qcow2' climbs out of the image's folder, '/etc/shadow' is no
  // image directory; 'base.qcow2' next to its overlay is fine.
  assert.deepEqual(flagged(), ['etc.qcow2', 'up.qcow2']);
  s.setUntrusted(false);
  assert.deepEqual(flagged(), []);
});

test('orderAdded puts the images last added in the order given', { skip }, (t) => {
  const dir = tmp(t);
  const a = makeChain(dir, { base: 'a0.qcow2', mid: 'a1.qcow2', top: 'a2.qcow2' });
  const s = new wasm.Session();
  probeFile(s, 'old.qcow2', a.base); // before the batch: stays first
  // A batch whose probes finished base, top, mid.
  probeFile(s, 'base.qcow2', a.base);
  probeFile(s, 'top.qcow2', a.top);
  probeFile(s, 'mid.qcow2', a.mid);
  const order = () => s.forest().images.map((i) => i.filename).join(' ');
  assert.equal(order(), 'old.qcow2 base.qcow2 top.qcow2 mid.qcow2');
  s.orderAdded(Uint32Array.of(1, 2, 0)); // top, mid, base
  assert.equal(order(), 'old.qcow2 top.qcow2 mid.qcow2 base.qcow2');
  // A longer cycle: the whole session, rotated.
  s.orderAdded(Uint32Array.of(3, 0, 1, 2));
  assert.equal(order(), 'base.qcow2 old.qcow2 top.qcow2 mid.qcow2');
  // Not a permutation (repeated, out of range, longer than the session):
  // nothing moves, nothing is lost.
  for (const bad of [[1, 1, 0], [0, 1, 9], [0, 1, 2, 3, 4, 5]]) {
    s.orderAdded(Uint32Array.from(bad));
    assert.equal(order(), 'base.qcow2 old.qcow2 top.qcow2 mid.qcow2', String(bad));
  }
});

test('probeMany: images whose reads end in any order come out in the order given', { skip }, async (t) => {
  const { probeMany } = await import('../../www/reader.js');
  const dir = tmp(t);
  const f = makeChain(dir);
  // The top's reads are the slowest, the base's the fastest: the session
  // adds base, mid, top; the batch was given top, mid, base (and a file
  // whose reader fails, added as unreadable, in between).
  const reader = (path, ms) => async (offset, length) => {
    await new Promise((ok) => setTimeout(ok, ms));
    return new Uint8Array(readFileSync(path).subarray(offset, offset + length));
  };
  const jobs = [
    { name: 'top.qcow2', size: -1, reader: reader(f.top, 60) },
    { name: 'gone.qcow2', size: -1, reader: async () => { throw new Error('no such file'); } },
    { name: 'mid.qcow2', size: -1, reader: reader(f.mid, 30) },
    { name: 'base.qcow2', size: -1, reader: reader(f.base, 0) },
  ];
  const s = new wasm.Session();
  const results = await probeMany(s, jobs);
  assert.deepEqual(results.map((r) => r.name), ['top.qcow2', 'gone.qcow2', 'mid.qcow2', 'base.qcow2']);
  assert.match(results[1].result.error, /no such file/);
  const forest = s.forest();
  const names = forest.images.map((i) => i.filename);
  assert.deepEqual(names, ['top.qcow2', 'gone.qcow2', 'mid.qcow2', 'base.qcow2']);
  // Chains in that order too: the good one first, then the unreadable file.
  assert.deepEqual(forest.chains.map((c) => c.layers.map((i) => names[i]).join(' ')), ['top.qcow2 mid.qcow2 base.qcow2', 'gone.qcow2']);
});

test('bad arguments are JS Errors with a message, not traps', () => {
  const s = new wasm.Session();
  assert.throws(() => s.probe('x', 10, [[0, 'not bytes', 4]]), (e) => e instanceof Error && /Uint8Array/.test(e.message));
  assert.throws(() => s.xml(null, { layout: 'sideways' }), (e) => e instanceof Error && /options/.test(e.message));
  // probeStep without a session.
  const step = wasm.probeStep(-1, []);
  assert.ok(Array.isArray(step.need) && step.need[0].offset === 0);
});

test('a copy of an image under another name is matched by the name the overlay records', { skip }, (t) => {
  const dir = tmp(t);
  const f = makeChain(dir);
  copyFileSync(f.base, join(dir, 'unrelated.qcow2'));
  const s = new wasm.Session();
  for (const n of ['top.qcow2', 'mid.qcow2', 'base.qcow2', 'unrelated.qcow2']) probeFile(s, n, join(dir, n));
  const forest = s.forest();
  const names = forest.images.map((i) => i.filename);
  const tops = forest.chains.map((c) => names[c.top]).sort();
  assert.deepEqual(tops, ['top.qcow2', 'unrelated.qcow2']);
});
