// Cockpit example: show the backing chains of a VM's disks, reading only the
// image headers on the host through the element's custom reader.
//
// Install (as the user who logs into Cockpit):
//   mkdir -p ~/.local/share/cockpit/backing-chain
//   cp -r www/*.js www/pkg www/cockpit/* ~/.local/share/cockpit/backing-chain/
// The element's modules (www/*.js: the element and its parts) then sit next
// to this file.
/* global cockpit */
import { register } from './backing-chain-editor.js';

// A bundler that turns this into a classic script cannot use import.meta.url:
// it must pass wasmUrl. Here (an ES module) this is just explicit.
register({ wasmUrl: new URL('./pkg/backing_chain_bg.wasm', import.meta.url).href });

const editor = document.querySelector('backing-chain-editor');
const select = document.getElementById('domain');
const status = document.getElementById('status');

const run = (argv) => cockpit.spawn(argv, { superuser: 'try', err: 'message' });

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

/** Probe the disks of the domain, then follow missing backing files that are
 *  absolute local paths (the element never opens anything on its own). The
 *  element is `untrusted` (index.html): a backing name the core flags as
 *  reaching outside the image directories is never in missingBackings(), so
 *  never read here — the caller decides what may be opened. */
async function show(domain) {
  status.textContent = `reading ${domain}…`;
  editor.clear();
  const xml = await run(['virsh', '-c', 'qemu:///system', 'dumpxml', '--inactive', domain]);
  editor.domainXml = xml;
  const sources = [...new DOMParser().parseFromString(xml, 'application/xml').querySelectorAll('disk[type=file] > source[file]')].map((s) => s.getAttribute('file'));
  const seen = new Set();
  let todo = sources;
  for (let round = 0; todo.length && round < 64; round++) {
    for (const path of todo) seen.add(path);
    await Promise.all(todo.map(async (path) => editor.addImage(path, hostReader(path), { size: await fileSize(path).catch(() => -1) })));
    todo = editor.missingBackings().filter((p) => !seen.has(p));
  }
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

run(['virsh', '-c', 'qemu:///system', 'list', '--all', '--name']).then((out) => {
  for (const name of out.split('\n').filter(Boolean)) select.append(new Option(name, name));
}, (e) => (status.textContent = `virsh: ${e.message ?? e}`));
