// @ts-check
// The image-store audit view (issue 16): the store as an SVG graph — VMs →
// disks → tops → … → bases, one horizontal lane per VM disk, a shared base
// drawn once with an edge from every lane that uses it, broken links red,
// images no VM uses in a band of their own — with zoom and pan (wheel, drag,
// keys), keyboard focus on every node, an accessible table of the same data
// and the verdicts of the selected node. The layout is computed here in one
// linear pass over the core's report (no layout library: lanes and depth
// columns are all it needs). Names are set as text only.
import { h, humanSize } from './render.js';

const NS = 'http://www.w3.org/2000/svg';
const COL = 240;
const ROW = 34;
const NODE_W = 200;
const NODE_H = 24;

/**
 * @typedef {import('./backing-chain-wasm').AuditReport} Report
 * @typedef {{ id: string, kind: 'vm' | 'disk' | 'image' | 'external', index: number, col: number, row: number, label: string, title: string, cls: string }} GNode
 * @typedef {{ from: string, to: string, cls: string }} GEdge
 */

/** @param {string} p */
const base = (p) => p.slice(p.lastIndexOf('/') + 1) || p;

/**
 * Lay the report out: a node per VM, disk, image and path outside the drop;
 * columns by kind and depth, rows by lane. Linear in the report's size.
 * @param {Report} r
 * @returns {{ nodes: GNode[], edges: GEdge[], cols: number, rows: number, unusedFrom: number }}
 */
export function layout(r) {
  /** @type {GNode[]} */
  const nodes = [];
  /** @type {GEdge[]} */
  const edges = [];
  /** @type {Map<string, GNode>} */
  const byId = new Map();
  const level = r.images.map((e) => e.chains.reduce((m, c) => Math.max(m, c.depth), 0));
  const extAt = new Map(r.external.map((x, k) => [x.path, k]));
  let row = 0;
  let cols = 3;
  /** @param {GNode} n */
  const add = (n) => {
    byId.set(n.id, n);
    nodes.push(n);
    cols = Math.max(cols, n.col + 1);
    return n;
  };
  /** @param {number} i @param {number} at */
  const image = (i, at) => {
    const id = `i${i}`;
    const got = byId.get(id);
    if (got) return got;
    const e = r.images[i];
    const cls = `image ${e.role}${e.broken ? ' broken' : ''}`;
    const title = `${e.filename} — ${e.role}${e.broken ? `, broken (${e.broken.status})` : ''}`;
    return add({ id, kind: 'image', index: i, col: 2 + level[i], row: at, label: base(e.filename), title, cls });
  };
  /** @param {string} path @param {number} at @param {number} col */
  const external = (path, at, col) => {
    const k = extAt.get(path) ?? -1;
    const id = `x${k}`;
    const got = byId.get(id);
    if (got) return got;
    const x = r.external[k];
    return add({ id, kind: 'external', index: k, col, row: at, label: base(path), title: `${path} — ${x?.state ?? 'outside-drop'}`, cls: `external ${x?.state ?? ''}` });
  };
  /** Follow `i` down to its base on lane `at`, adding what is new. @param {number} i @param {number} at */
  const chainFrom = (i, at) => {
    const seen = new Set();
    let cur = i;
    let n = image(cur, at);
    while (!seen.has(cur)) {
      seen.add(cur);
      const e = r.images[cur];
      if (e.backing !== null) {
        const b = image(e.backing, at);
        edges.push({ from: n.id, to: b.id, cls: e.broken ? 'broken' : '' });
        if (b.row !== at) break; // drawn already from another lane
        cur = e.backing;
        n = b;
      } else {
        if (e['backing-outside']) {
          const x = external(e['backing-outside'], at, n.col + 1);
          edges.push({ from: n.id, to: x.id, cls: `outside${e.broken ? ' broken' : ''}` });
        }
        break;
      }
    }
  };
  r.vms.forEach((vm, v) => {
    const vmNode = add({ id: `v${v}`, kind: 'vm', index: v, col: 0, row, label: vm.name, title: `VM ${vm.name}`, cls: 'vm' });
    vm.disks.forEach((d, k) => {
      const dn = add({ id: `d${v}.${k}`, kind: 'disk', index: v * 65536 + k, col: 1, row, label: d.name, title: `${vm.name} ${d.name}: ${d.source ?? '(no source)'}`, cls: `disk${d.network ? ' network' : ''}` });
      edges.push({ from: vmNode.id, to: dn.id, cls: '' });
      if (d.image !== null) {
        const top = image(d.image, row);
        edges.push({ from: dn.id, to: top.id, cls: d.status && d.status !== 'ok' && d.status !== 'remote' && !d['ends-outside'] ? 'broken' : '' });
        if (top.row === row) chainFrom(d.image, row);
      } else if (d.source && !d.network) {
        const x = external(d.source, row, 2);
        edges.push({ from: dn.id, to: x.id, cls: 'outside' });
      }
      row += 1;
    });
    if (!vm.disks.length) row += 1;
  });
  const unusedFrom = row;
  // Images no VM reached: from each unused top down, one lane each.
  r.images.forEach((e, i) => {
    if (!byId.has(`i${i}`) && e.overlays.length === 0) {
      chainFrom(i, row);
      row += 1;
    }
  });
  // What is left (loops no top reaches).
  r.images.forEach((_, i) => {
    if (!byId.has(`i${i}`)) {
      chainFrom(i, row);
      row += 1;
    }
  });
  return { nodes, edges, cols, rows: row, unusedFrom };
}

/** @param {string} tag @param {Record<string, string | number>} attrs */
function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * The picture: an <svg> with zoom and pan. `onSelect(node)` on click, Enter
 * or Space on a node.
 * @param {ReturnType<typeof layout>} g
 * @param {(n: GNode) => void} onSelect
 */
export function picture(g, onSelect) {
  const W = Math.max(g.cols * COL, 400);
  const H = Math.max(g.rows * ROW + ROW, 200);
  // A tall store opens on its first lanes at full width (readable); 0 comes back here.
  const H0 = Math.min(H, Math.max(W * 0.6, 200));
  const root = svg('svg', { class: 'audit-graph', viewBox: `0 0 ${W} ${H0}`, preserveAspectRatio: 'xMinYMin meet', role: 'group', 'aria-label': 'The store: VMs, disks and their chains', tabindex: 0 });
  const view = { x: 0, y: 0, w: W, h: H0 };
  const apply = () => root.setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
  /** @param {number} f @param {number} cx @param {number} cy */
  const zoom = (f, cx, cy) => {
    const w = Math.min(Math.max(view.w * f, 100), W * 4);
    const k = w / view.w;
    view.x = cx - (cx - view.x) * k;
    view.y = cy - (cy - view.y) * k;
    view.w = w;
    view.h *= k;
    apply();
  };
  const at = (/** @type {GNode} */ n) => ({ x: n.col * COL + 10, y: n.row * ROW + 10 });
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  // Keyboard moves between nodes: → along an edge (towards the base), ←
  // back along one, ↓ ↑ to the next node of the same column.
  /** @type {Map<string, string>} */
  const out = new Map();
  /** @type {Map<string, string>} */
  const into = new Map();
  for (const e of g.edges) {
    if (!out.has(e.from)) out.set(e.from, e.to);
    if (!into.has(e.to)) into.set(e.to, e.from);
  }
  /** @type {GNode[][]} */
  const columns = [];
  for (const n of g.nodes) (columns[n.col] ??= []).push(n);
  for (const c of columns) c?.sort((a, b) => a.row - b.row);
  /** @type {Map<string, SVGElement>} */
  const els = new Map();
  /** @param {GNode} n @param {string} key */
  const neighbour = (n, key) => {
    if (key === 'ArrowRight') return out.get(n.id);
    if (key === 'ArrowLeft') return into.get(n.id);
    const c = columns[n.col];
    const k = c.indexOf(n) + (key === 'ArrowDown' ? 1 : -1);
    return c[k]?.id;
  };
  if (g.unusedFrom < g.rows) {
    const y = g.unusedFrom * ROW + 4;
    root.append(svg('line', { x1: 0, y1: y, x2: W, y2: y, class: 'band' }));
    const t = svg('text', { x: 10, y: y + 14, class: 'band-label' });
    t.textContent = 'Not used by any VM given';
    root.append(t);
  }
  const edges = svg('g', { class: 'edges' });
  for (const e of g.edges) {
    const a = byId.get(e.from);
    const b = byId.get(e.to);
    if (!a || !b) continue;
    const p = at(a);
    const q = at(b);
    const x1 = p.x + NODE_W;
    const y1 = p.y + NODE_H / 2;
    const x2 = q.x;
    const y2 = q.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    edges.append(svg('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: `edge ${e.cls}`.trim() }));
  }
  root.append(edges);
  for (const n of g.nodes) {
    const p = at(n);
    const el = svg('g', { class: `node ${n.cls}`, transform: `translate(${p.x},${p.y})`, tabindex: 0, role: 'button', 'aria-label': n.title, 'data-id': n.id });
    const title = svg('title', {});
    title.textContent = n.title;
    const text = svg('text', { x: 8, y: 16 });
    text.textContent = n.label.length > 28 ? `${n.label.slice(0, 27)}…` : n.label;
    el.append(title, svg('rect', { width: NODE_W, height: NODE_H, rx: 4 }), text);
    el.addEventListener('click', () => onSelect(n));
    el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        onSelect(n);
      } else if (ev.key.startsWith('Arrow')) {
        ev.preventDefault();
        const next = neighbour(n, ev.key);
        const target = next && els.get(next);
        if (target) {
          target.focus();
          const m = /** @type {GNode} */ (byId.get(/** @type {string} */ (next)));
          const q = at(m);
          // Keep the focused node in view.
          if (q.x < view.x || q.x + NODE_W > view.x + view.w || q.y < view.y || q.y + NODE_H > view.y + view.h) {
            view.x = q.x - view.w / 4;
            view.y = q.y - view.h / 3;
            apply();
          }
        }
      }
    });
    els.set(n.id, el);
    root.append(el);
  }
  // Ctrl (or ⌘) + wheel zooms around the pointer; the wheel alone pans.
  root.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const box = root.getBoundingClientRect();
    if (ev.ctrlKey || ev.metaKey) {
      const cx = view.x + ((ev.clientX - box.left) / box.width) * view.w;
      const cy = view.y + ((ev.clientY - box.top) / box.height) * view.h;
      zoom(ev.deltaY > 0 ? 1.2 : 1 / 1.2, cx, cy);
    } else {
      view.x += (ev.deltaX / box.width) * view.w;
      view.y += (ev.deltaY / box.height) * view.h;
      apply();
    }
  }, { passive: false });
  /** @type {{ x: number, y: number, vx: number, vy: number } | null} */
  let drag = null;
  root.addEventListener('pointerdown', (ev) => {
    if (/** @type {Element} */ (ev.target).closest('.node')) return;
    drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
    root.setPointerCapture(ev.pointerId);
  });
  root.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const box = root.getBoundingClientRect();
    view.x = drag.vx - ((ev.clientX - drag.x) / box.width) * view.w;
    view.y = drag.vy - ((ev.clientY - drag.y) / box.height) * view.h;
    apply();
  });
  root.addEventListener('pointerup', () => (drag = null));
  root.addEventListener('keydown', (ev) => {
    const step = view.w / 10;
    const keys = /** @type {Record<string, () => void>} */ ({
      '+': () => zoom(1 / 1.2, view.x + view.w / 2, view.y + view.h / 2),
      '=': () => zoom(1 / 1.2, view.x + view.w / 2, view.y + view.h / 2),
      '-': () => zoom(1.2, view.x + view.w / 2, view.y + view.h / 2),
      0: () => Object.assign(view, { x: 0, y: 0, w: W, h: H0 }),
      ArrowLeft: () => (view.x -= step),
      ArrowRight: () => (view.x += step),
      ArrowUp: () => (view.y -= step),
      ArrowDown: () => (view.y += step),
    });
    const f = keys[ev.key];
    if (f && ev.target === root) {
      ev.preventDefault();
      f();
      apply();
    }
  });
  return root;
}

/** @param {import('./backing-chain-wasm').AuditUser[]} users */
const userList = (users) => (users.length ? h('ul', null, users.map((u) => h('li', null, `VM ${u.name}, disk ${u.disk}, depth ${u.depth}`))) : h('p', null, 'none'));

/**
 * The VM disks that use `into` not through image `i` (a commit's hazard).
 * @param {Report} r @param {number} i @param {number} into
 */
export function hazardDisks(r, i, into) {
  const through = new Set(r.images[i].users.map((u) => `${u.vm}\u0000${u.disk}`));
  return r.images[into].users.filter((u) => !through.has(`${u.vm}\u0000${u.disk}`));
}

/**
 * What is known of the selected node: its verdicts.
 * @param {Report} r @param {GNode | null} n
 */
export function details(r, n) {
  if (!n) return h('p', { class: 'hint' }, 'Select a node (click, or Tab and Enter) to see who uses it and what deleting or committing it would do.');
  const name = (/** @type {number} */ i) => r.images[i]?.filename ?? String(i);
  if (n.kind === 'vm' || n.kind === 'disk') {
    const vm = r.vms[n.kind === 'vm' ? n.index : Math.floor(n.index / 65536)];
    return h('div', null,
      h('h3', null, `VM ${vm.name}`),
      h('p', null, `${vm.disks.length} disk(s), ${humanSize(vm['total-file-size'])} in their chains; ${humanSize(vm['exclusive-file-size'])} used by this VM alone.`),
      h('ul', null, vm.disks.map((d) => h('li', null, `${d.name}: ${d.source ?? '(no source)'} — ${d['ends-outside'] ? 'continues outside the drop' : d.status ?? (d.network ? 'network disk' : 'not among the images')}${d.chain.length ? `, ${d.chain.length} layer(s)` : ''}`))),
      h('h4', null, 'Files only this VM uses'),
      vm.exclusive.length ? h('ul', null, vm.exclusive.map((i) => h('li', null, name(i)))) : h('p', null, 'none'));
  }
  if (n.kind === 'external') {
    const x = r.external[n.index];
    return h('div', null, h('h3', null, x.path), h('p', null, x.state === 'missing' ? 'Missing: it does not exist.' : 'Not among the images dropped (it may exist on the host).'),
      h('h4', null, 'Backing of'), h('ul', null, x['backing-of'].map((i) => h('li', null, name(i)))), h('h4', null, 'VM disks'), userList(x.disks));
  }
  const e = r.images[n.index];
  /** @param {string} title @param {import('./backing-chain-wasm').AuditPlan | null} p */
  const plan = (title, p) => p && h('section', null,
    h('h4', null, `${title} ${p.into === e.index ? '' : `into ${name(p.into)}`}`),
    p['hazard-count'] ? h('p', { class: 'hazard' }, `Shared-base hazard: ${p['hazard-count']} other image(s) stand on ${name(p.into)}: ${p['hazard-images'].map(name).join(', ')}`) : null,
    p['hazard-disks-count'] ? h('div', { class: 'hazard' }, `${p['hazard-disks-count']} VM disk(s) whose disk would change:`, userList(hazardDisks(r, e.index, p.into))) : null,
    h('p', null, 'VM disks whose XML must change:'), userList(p['xml-changes']),
    p.running.length ? h('p', null, 'Running VMs:') : null, p.running.map((c) => h('pre', null, c)),
    h('p', null, 'VMs shut off:'), p.offline.map((c) => h('pre', null, c)),
    h('p', { class: 'check' }, p['check-first']));
  return h('div', null,
    h('h3', null, e.filename),
    h('p', null, `${e.format ?? '?'}, virtual ${humanSize(e['virtual-size'])}, file ${humanSize(e['file-size'])}; ${e.role}`),
    e.broken ? h('p', { class: 'broken' }, `Broken (${e.broken.status}): ${e.broken.message}`) : null,
    h('h4', null, 'Used by'), userList(e.users),
    h('p', null, `${e['dependents-count']} image(s) stand on it.`),
    h('h4', null, `Can I delete it? ${e.delete.verdict}`),
    h('ul', null, e.delete.reasons.map((t) => h('li', null, t))),
    plan('Commit', e.commit), plan('Flatten', e.flatten));
}

/**
 * The same data as a table (for screen readers and for searching).
 * @param {Report} r @param {(i: number) => void} onSelect
 */
export function table(r, onSelect) {
  return h('table', { class: 'audit-table' },
    h('caption', null, `${r.images.length} images, ${r.vms.length} VMs`),
    h('thead', null, h('tr', null, ['Image', 'Role', 'Format', 'File size', 'Users', 'Delete'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, r.images.map((e, i) => h('tr', { class: e.broken ? 'broken' : null },
      h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => onSelect(i) }, e.filename)),
      h('td', null, e.broken ? `${e.role}, broken (${e.broken.status})` : e.role),
      h('td', null, e.format ?? '?'),
      h('td', null, humanSize(e['file-size'])),
      h('td', null, e.users.map((u) => `${u.name}:${u.disk}`).join(', ')),
      h('td', null, e.delete.verdict)))));
}
