// Cockpit example: every VM of a libvirt connection with its disks, and the
// backing chains of a chosen VM's disks, reading only the image headers on the
// host through the element's custom reader.
//
// Install (as the user who logs into Cockpit):
//   mkdir -p ~/.local/share/cockpit/backing-chain
//   cp -r www/*.js www/audit.css www/pkg www/cockpit/* ~/.local/share/cockpit/backing-chain/
// The element's modules (www/*.js: the element and its parts) then sit next
// to this file. (Not the npm package's files: this example imports the
// element's own modules — editor-wasm.js, reader.js, editor-audit.js — which
// the package bundles into backing-chain-editor.js or leaves out.)
/* global cockpit */
import { register } from './backing-chain-editor.js';
import { loadMeta, newMetaSession } from './editor-wasm.js';
import { probeMany } from './reader.js';
import { layout, picture, details, table as auditTable } from './editor-audit.js';

// A bundler that turns this into a classic script cannot use import.meta.url:
// it must pass wasmUrl. Here (an ES module) this is just explicit.
register({ wasmUrl: new URL('./pkg/backing_chain_bg.wasm', import.meta.url).href });

const editor = document.querySelector('backing-chain-editor');
const connection = /** @type {HTMLSelectElement} */ (document.getElementById('connection'));
const select = /** @type {HTMLSelectElement} */ (document.getElementById('domain'));
const status = document.getElementById('status');
const table = document.getElementById('vms');

const run = (argv) => cockpit.spawn(argv, { superuser: 'try', err: 'message' });
const virsh = (...args) => run(['virsh', '-c', connection.value, ...args]);

/** reader(offset, length) for a file on the host: `dd` reads just that range. */
function hostReader(path) {
  return async (offset, length) => {
    const out = await cockpit.spawn(
      ['dd', `if=${path}`, 'iflag=skip_bytes,count_bytes', `skip=${offset}`, `count=${length}`, 'status=none'],
      { superuser: 'try', binary: true, err: 'message' },
    );
    return out instanceof Uint8Array ? out : new Uint8Array(out);
  };
}

async function fileSize(path) {
  return Number((await run(['stat', '-L', '-c', '%s', path])).trim());
}

/** A VM's disks from its XML: target dev and what backs it (a file, a block device, a network source…). */
function disksOf(xml) {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  return [...doc.querySelectorAll('devices > disk')].map((d) => {
    const src = d.querySelector(':scope > source');
    const type = d.getAttribute('type') ?? 'file';
    const where = src?.getAttribute('file') ?? src?.getAttribute('dev') ?? src?.getAttribute('name') ?? src?.getAttribute('volume') ?? src?.getAttribute('dir') ?? '';
    return { target: d.querySelector(':scope > target')?.getAttribute('dev') ?? '?', type, source: where, device: d.getAttribute('device') ?? 'disk' };
  });
}

/** Every VM of the connection with its state and disks, in the table and the select. */
async function listVms() {
  status.textContent = `listing ${connection.value}…`;
  select.replaceChildren();
  const body = table.querySelector('tbody');
  body.replaceChildren();
  const names = (await virsh('list', '--all', '--name')).split('\n').map((n) => n.trim()).filter(Boolean);
  for (const name of names) {
    const [state, xml] = await Promise.all([virsh('domstate', name).catch(() => '?'), virsh('dumpxml', '--inactive', name).catch(() => '')]);
    const tr = document.createElement('tr');
    tr.dataset.vm = name;
    const disks = document.createElement('ul');
    for (const d of disksOf(xml)) {
      const li = document.createElement('li');
      // Names from the host are text, never HTML.
      li.textContent = `${d.target} (${d.device}, ${d.type}): ${d.source || 'no source'}`;
      disks.append(li);
    }
    const cells = [name, state.trim()].map((t) => Object.assign(document.createElement('td'), { textContent: t }));
    const dcell = document.createElement('td');
    dcell.append(disks);
    tr.append(...cells, dcell);
    body.append(tr);
  }
  table.hidden = names.length === 0;
  // The choice is offered once the list is complete (no race with a `show`).
  for (const name of names) select.append(new Option(name, name));
  status.textContent = names.length ? `${names.length} virtual machine(s)` : `no virtual machine on ${connection.value}`;
}

/** Probe the disks of the domain, then follow missing backing files that are
 *  absolute local paths (the element never opens anything on its own). The
 *  element is `untrusted` (index.html): a backing name the core flags as
 *  reaching outside the image directories is never in missingBackings(), so
 *  never read here — the caller decides what may be opened. */
async function show(domain) {
  status.textContent = `reading ${domain}…`;
  editor.clear();
  const xml = await virsh('dumpxml', '--inactive', domain);
  editor.domainXml = xml;
  const sources = disksOf(xml).filter((d) => (d.type === 'file' || d.type === 'block') && d.source.startsWith('/')).map((d) => d.source);
  const seen = new Set();
  let todo = [...new Set(sources)];
  for (let round = 0; todo.length && round < 64; round++) {
    for (const path of todo) seen.add(path);
    await Promise.all(todo.map(async (path) => editor.addImage(path, hostReader(path), { size: await fileSize(path).catch(() => -1) })));
    todo = editor.missingBackings().filter((p) => !seen.has(p));
  }
  for (const tr of table.querySelectorAll('tbody tr')) tr.toggleAttribute('aria-current', tr.dataset.vm === domain);
  status.textContent = `${seen.size} image(s) read`;
}

editor.addEventListener('backing-chain-editor-change', (e) => console.debug('backing-chain XML', e.detail.xml.length, 'bytes'));

// Alerts at the top (PatternFly's inline alerts): what is wrong with the
// VM's chains, in one line per severity; the element lists the details.
const alerts = document.getElementById('alerts');
editor.addEventListener('backing-chain-editor-diagnostics', (e) => {
  const errors = e.detail.diagnostics.filter((d) => d.severity === 'error');
  const warnings = e.detail.diagnostics.filter((d) => d.severity === 'warning');
  alerts.replaceChildren(
    ...[['danger', errors, 'error'], ['warning', warnings, 'warning']]
      .filter(([, list]) => list.length)
      .map(([kind, list, word]) => {
        const box = document.createElement('div');
        box.className = `alert ${kind}`;
        box.setAttribute('role', kind === 'danger' ? 'alert' : 'status');
        const title = document.createElement('p');
        title.className = 'title';
        title.textContent = `${list.length} ${word}${list.length === 1 ? '' : 's'} in the disk chains`;
        const first = document.createElement('p');
        first.textContent = list[0].message; // text, never HTML
        box.append(title, first);
        return box;
      }),
  );
});

// Confirmation before a destructive edit: the element's edit event is
// cancelable; the edit is vetoed, and made from script once confirmed.
const dialog = document.getElementById('confirm');
const DESTRUCTIVE = { 'remove-layer': 'Remove this layer from the chain?', 'remove-seclabel': 'Remove this seclabel?' };
editor.addEventListener('backing-chain-editor-edit', (e) => {
  const { op } = e.detail;
  if (!DESTRUCTIVE[op.op]) return;
  e.preventDefault();
  document.getElementById('confirm-title').textContent = DESTRUCTIVE[op.op];
  document.getElementById('confirm-text').textContent = `Layer ${op.depth} of disk ${op.disk + 1}: the domain XML shown loses it (the images are not touched). Undo brings it back.`;
  dialog.onclick = (ev) => {
    const v = ev.target.value;
    if (!v) return;
    dialog.close();
    if (v === 'ok') editor.edit(op);
  };
  dialog.showModal();
  dialog.querySelector('button[value=cancel]').focus();
});

document.getElementById('pick').addEventListener('submit', (ev) => {
  ev.preventDefault();
  show(select.value).catch((e) => (status.textContent = String(e.message ?? e)));
});

// The image-store audit: every VM's domain XML and every image file in the
// directories their disks live in (plus libvirt's default images directory),
// headers read on the host with dd; which VM uses which file, what is left
// over, and what deleting or committing a file would break.
const auditOut = document.getElementById('audit-out');

/** Image files (size, path) directly in `dir`, NUL-separated so any name
 *  survives (as bytes: Cockpit's text channels refuse NUL). */
async function filesIn(dir) {
  const out = await cockpit.spawn(['find', dir, '-maxdepth', '1', '-type', 'f', '-printf', '%s\\t%p\\0'], { superuser: 'try', binary: true, err: 'message' })
    .catch(() => new Uint8Array(0));
  return new TextDecoder().decode(out instanceof Uint8Array ? out : new Uint8Array(out)).split('\0').filter(Boolean).map((line) => {
    const tab = line.indexOf('\t');
    return { size: Number(line.slice(0, tab)), path: line.slice(tab + 1) };
  });
}

async function audit() {
  status.textContent = `auditing ${connection.value}…`;
  const names = [...select.options].map((o) => o.value);
  const domains = [];
  const dirs = new Set(['/var/lib/libvirt/images']);
  for (const name of names) {
    const text = await virsh('dumpxml', '--inactive', name);
    domains.push({ label: name, text });
    for (const d of disksOf(text)) if (d.type === 'file' && d.source.startsWith('/')) dirs.add(d.source.slice(0, d.source.lastIndexOf('/')) || '/');
  }
  const files = (await Promise.all([...dirs].map(filesIn))).flat().filter((f) => !/\.(xml|json|log|iso\.part)$/i.test(f.path));
  // The audit is in the element's second wasm module (issue 18): its own session.
  const session = newMetaSession(await loadMeta());
  session.setUntrusted(true);
  const sizes = Object.fromEntries(files.map((f) => [f.path, f.size]));
  await probeMany(/** @type {any} */ (session), files.map((f) => ({ name: f.path, size: f.size, reader: hostReader(f.path) })),
    (done, total) => (status.textContent = `audit: read ${done} of ${total} image header(s)…`));
  const { report } = session.audit(domains, { sizes });
  const g = layout(report);
  const side = document.createElement('div');
  side.className = 'audit-details';
  side.setAttribute('aria-live', 'polite');
  side.append(details(report, null));
  const select1 = (n) => side.replaceChildren(details(report, n));
  const byIndex = new Map(g.nodes.filter((n) => n.kind === 'image').map((n) => [n.index, n]));
  const body = document.createElement('div');
  body.className = 'audit-body';
  body.append(picture(g, select1), side);
  auditOut.replaceChildren(body, auditTable(report, (i) => { const n = byIndex.get(i); if (n) select1(n); }));
  const sm = report.summary;
  status.textContent = `audit: ${sm.images} images, ${sm.vms} VMs: ${sm['in-use']} in use, ${sm.layers} layers, ${sm['orphan-tops']} orphan tops, ${sm['unused-bases']} unused bases, ${sm.broken} broken`;
}

document.getElementById('audit').addEventListener('click', () => {
  audit().catch((e) => (status.textContent = `audit: ${e.message ?? e}`));
});

const refresh = () => listVms().catch((e) => (status.textContent = `virsh: ${e.message ?? e}`));
connection.addEventListener('change', refresh);
refresh();
