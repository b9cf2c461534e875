// @ts-check
// The audit page (audit.html): images and domain XML in (drop, pickers,
// paste), the core's `Session.audit` report out, drawn by editor-audit.js;
// downloads of the fix script, the CSV and the JSON.
import { loadMeta, loadWasm, newMetaSession, errorText, wasmModule } from './editor-wasm.js';
import { blobReader, collectDrop, filesFromList, isDocument, probeMany, readText } from './reader.js';
import { h } from './render.js';
import { layout, picture, details, table } from './editor-audit.js';

/** @typedef {import('./backing-chain-wasm').AuditReport} Report */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @type {Array<{ label: string, text: string }>} */
const domains = [];
/** @type {Record<string, number>} */
const sizes = {};
/** @type {ReturnType<typeof newMetaSession> | null} the on-demand module's session: it has the audit (and probes) */
let session = null;
/** @type {{ report: Report, csv: string, script: string } | null} */
let last = null;

/** @param {string} text */
const status = (text) => ($('audit-status').textContent = text);

/** @param {string} name @param {string} type @param {string} text */
function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/** The core module, compiled, for the probe worker (the element's way of
 *  reading a drop: reads and probe loops off this thread, many files' slices
 *  in one read); null when it cannot be had (the probes then run here).
 *  @type {Promise<WebAssembly.Module | null>} */
const probeModule = loadWasm().then(
  () => wasmModule(),
  () => null,
);

/** @param {Array<{ file: File | Promise<File>, path: string }>} entries */
async function add(entries) {
  if (!session) return;
  const jobs = [];
  for (const e of entries) {
    if (isDocument(e.path)) {
      try {
        domains.push({ label: e.path, text: await readText(await e.file) });
      } catch (err) {
        status(errorText(err));
      }
    } else {
      // The size (a round trip in Chromium) is asked for in the probe, among its reads.
      jobs.push({ name: e.path, file: e.file, get size() { return Promise.resolve(e.file).then((f) => f.size); }, reader: blobReader(e.file) });
    }
  }
  status(`Reading ${jobs.length} image header(s)…`);
  const results = await probeMany(/** @type {any} */ (session), jobs, (done, total) => status(`Read ${done} of ${total} image header(s)…`), { module: await probeModule });
  for (const r of results) if (r.size >= 0) sizes[r.name] = r.size;
  run();
}

function run() {
  if (!session) return;
  try {
    last = session.audit(domains, { sizes });
  } catch (e) {
    status(errorText(e));
    return;
  }
  const r = last.report;
  const s = r.summary;
  status(`${s.images} images, ${s.vms} VMs: ${s['in-use']} in use, ${s.layers} layers, ${s['orphan-tops']} orphan tops, ${s['unused-bases']} unused bases, ${s.broken} broken; ${s['domain-errors']} domain error(s).`);
  draw(r);
}

/** @param {Report} r */
function draw(r) {
  const out = $('audit-out');
  const g = layout(r);
  const side = h('div', { class: 'audit-details', 'aria-live': 'polite' }, details(r, null));
  /** @type {SVGElement | null} */
  let svgEl = null;
  /** @param {import('./editor-audit.js').GNode} n */
  const select = (n) => {
    svgEl?.querySelector('.node.selected')?.classList.remove('selected');
    svgEl?.querySelector(`.node[data-id="${n.id}"]`)?.classList.add('selected');
    side.replaceChildren(details(r, n));
  };
  const byIndex = new Map(g.nodes.filter((n) => n.kind === 'image').map((n) => [n.index, n]));
  svgEl = picture(g, select);
  const errors = r['domain-errors'].map((e) => h('li', { class: 'broken' }, `${e.input}: line ${e.line}, column ${e.column} (byte ${e.position}): ${e.message}`));
  out.replaceChildren(
    h('div', { class: 'audit-tools' },
      h('button', { type: 'button', onclick: () => last && download('fix.sh', 'text/x-shellscript', last.script) }, 'Download the fix script'),
      h('button', { type: 'button', onclick: () => last && download('audit.csv', 'text/csv', last.csv) }, 'Download CSV'),
      h('button', { type: 'button', onclick: () => last && download('audit.json', 'application/json', JSON.stringify(last.report, null, 2)) }, 'Download JSON'),
      h('span', null, 'Zoom: Ctrl + wheel or + / −; pan: wheel, drag or arrow keys; 0 resets. On a node: arrow keys move along the links and columns, Enter selects.')),
    h('ul', { class: 'audit-errors', hidden: !errors.length }, errors),
    h('div', { class: 'audit-body' }, svgEl, side),
    h('details', { class: 'audit-findings' }, h('summary', null, `Findings (${r.findings.length})`),
      h('ul', null, r.findings.map((d) => h('li', null, `${d.severity} [${d.code}]: ${d.message}`)))),
    h('details', { open: true }, h('summary', null, 'Table view'), table(r, (i) => {
      const n = byIndex.get(i);
      if (n) select(n);
    })),
  );
}

async function main() {
  try {
    session = newMetaSession(await loadMeta());
  } catch (e) {
    $('boot').textContent = errorText(e);
    return;
  }
  session.setUntrusted(true);
  $('boot').remove();
  const drop = $('audit-drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer) collectDrop(e.dataTransfer).then(add, (err) => status(errorText(err)));
  });
  for (const id of ['audit-folder', 'audit-files']) {
    const input = /** @type {HTMLInputElement} */ ($(id));
    input.addEventListener('change', () => {
      if (input.files) add(filesFromList(input.files));
      input.value = '';
    });
  }
  $('audit-paste-add').addEventListener('click', () => {
    const t = /** @type {HTMLTextAreaElement} */ ($('audit-paste'));
    if (!t.value.trim()) return;
    domains.push({ label: `pasted ${domains.length + 1}`, text: t.value });
    t.value = '';
    run();
  });
}

main();
