// @ts-check
// The selected image's details (under the tree): what its header says, how
// its backing name resolved, its overlays; remove it, or choose its backing
// image (reparent).

import { h, humanSize, formatCount } from './render.js';
import { combobox } from './editor-combobox.js';

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {{ id: string, select(idx: number): void, remove(name: string): void, setBacking(image: string, backing: string | null): void, alloc?(name: string): HTMLElement, prefetch?(): void }} DetailsActions `prefetch`: the user is about to choose a backing (the element starts loading what applying it may take)
 */

/**
 * @param {HTMLElement} box
 * @param {EditorModel} m
 * @param {string | null} selected the selected image's filename
 * @param {DetailsActions} act
 */
export function renderDetails(box, m, selected, act) {
  const f = m.f;
  const idx = f.images.findIndex((im) => im.filename === selected);
  if (idx < 0) {
    box.replaceChildren(); // the tree says "Select an image" (editor-tree.js)
    return;
  }
  const img = f.images[idx];
  const link = f.links[idx];
  const meta = m.meta.get(img.filename);
  /** @type {HTMLElement[]} */
  const rows = [];
  /** @param {string} k @param {unknown} v */
  const add = (k, v) => {
    if (v !== undefined && v !== null && v !== '') rows.push(h('dt', null, k), h('dd', null, v));
  };
  add('File', img.filename);
  if (img.error) add('Error', img.error);
  add('Format', img.format);
  if (img['virtual-size'] !== undefined) add('Virtual size', `${humanSize(img['virtual-size'])} (${formatCount(img['virtual-size'])} bytes)`);
  if (meta && meta.size >= 0) add('File size', `${humanSize(meta.size)} (${formatCount(meta.size)} bytes)`);
  if (img['cluster-size'] !== undefined) add('Cluster size', humanSize(img['cluster-size']));
  add('Backing name (as written)', img['backing-filename'] ?? (img.error ? undefined : '— none (a base)'));
  if (link?.kind === 'image') add('Resolved to', `${link.resolved} → ${f.images[/** @type {number} */ (link.index)].filename}`);
  else if (link?.kind === 'missing') add('Resolved to', `${link.resolved} (missing)`);
  else if (link?.kind === 'remote') add('Resolved to', `remote: ${JSON.stringify(link.source)}`);
  else if (link?.kind === 'unparsed') add('Resolved to', `cannot parse: ${link.error}`);
  if (img['backing-filename'] !== undefined) {
    add('Backing format (recorded)', img['backing-filename-format'] ?? '— not recorded');
    add('Backing format (detected)', link?.kind === 'image' ? (f.images[/** @type {number} */ (link.index)].format ?? 'unreadable') : 'unknown (not dropped)');
  }
  add('Data file', m.dataText(idx));
  if (img.identity) add('Identity', Object.entries(img.identity).map(([k, v]) => `${k}: ${v}`).join(', '));
  if (img.encrypted) add('Encrypted', 'yes');
  if (img['dirty-flag'] !== undefined) add('Dirty', img['dirty-flag'] ? 'yes' : 'no');
  add('Bytes read', `${formatCount(img['bytes-read'])} bytes${meta ? ` in ${meta.reads} range${meta.reads === 1 ? '' : 's'}` : ''}${meta?.fileReads ? ` (from the file: ${formatCount(meta.fileBytes ?? 0)} bytes in ${meta.fileReads} read${meta.fileReads === 1 ? '' : 's'})` : ''}`);
  const users = f.overlays[idx] ?? [];
  if (users.length) {
    add(
      users.length > 1 ? `Overlays (${users.length})` : 'Overlay',
      h(
        'span',
        null,
        users.flatMap((u, n) => [n ? ', ' : '', h('button', { type: 'button', class: 'linkish', onclick: () => act.select(u) }, f.images[u].filename)]),
      ),
    );
  }
  const remove = h('button', { type: 'button', class: 'edit-only', onclick: () => act.remove(img.filename) }, 'Remove from the set');
  // Reparent: the user's choice of backing image overrides every match (a
  // searchable combobox: there may be hundreds of images).
  const pick = combobox({
    id: `${act.id}-backing`,
    label: 'Backing images',
    describedby: `${act.id}-backing-hint`,
    options: [{ value: '', text: 'as its header says' }, ...f.images.filter((o, i) => i !== idx).map((o) => ({ value: o.filename, text: o.filename }))],
    value: m.mapping.get(img.filename) ?? '',
    choose: (v) => act.setBacking(img.filename, v || null),
  });
  if (act.prefetch) pick.input.addEventListener('focus', act.prefetch);
  const reparent = h(
    'div',
    { class: 'field edit-only' },
    h('label', { for: pick.input.id }, 'Backing image'),
    pick.el,
    h('span', { class: 'meta', id: `${act.id}-backing-hint` }, m.mapping.has(img.filename) ? 'your choice (overrides the header’s name)' : 'type to search the known images; choose one to reparent'),
  );
  box.replaceChildren(h('h3', null, img.filename), h('dl', null, rows), reparent, h('div', { class: 'field' }, remove), act.alloc && !img.error && meta?.job.reader ? act.alloc(img.filename) : '');
}
