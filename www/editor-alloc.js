// @ts-check
// "Inside the layers" in the selected image's details (issue 17): on demand
// (it reads metadata tables, not only headers) the chain from the selected
// image is walked; while it reads, a progress bar and Cancel; then per layer
// an allocation bar (data / zero / compressed / unallocated, with the figures
// as text), the chain map strip (which layer provides which part of the
// disk), the summary, qemu-img measure / commit estimates and the check
// results with qemu-img's advice. The rest of the element stays usable.

import { h, humanSize, formatCount } from './render.js';

/**
 * @typedef {Awaited<ReturnType<typeof import('./editor-meta.js').walkChain>>} ChainResult
 * @typedef {{ chainMap(top: string, o: { check?: boolean, signal?: AbortSignal }): Promise<ChainResult>, chainOf(top: string): string[], readers(top: string): unknown[] }} AllocActions
 * @typedef {{ state: 'running' | 'done' | 'error' | 'cancelled', ctl?: AbortController, image?: string, done: number, total: number, size: number, result?: ChainResult, error?: string, readers: unknown[] }} Run
 */

const KINDS = /** @type {const} */ (['data', 'compressed', 'zero', 'unallocated']);
const KIND_TEXT = { data: 'allocated', compressed: 'compressed', zero: 'zero', unallocated: 'unallocated' };

/** @param {number} n @param {number} of */
const pct = (n, of) => (of > 0 ? `${((100 * n) / of).toFixed(n && n < of ? 1 : 0)} %` : '0 %');

/** A span whose width is a share of a bar (set through CSSOM: the page's CSP allows no style attributes). @param {string} cls @param {number} share @param {string} label */
function seg(cls, share, label) {
  const s = h('span', { class: cls, title: label });
  s.style.width = `${(100 * share).toFixed(4)}%`;
  return s;
}

export class AllocView {
  /** @param {string} id @param {AllocActions} act */
  constructor(id, act) {
    this.id = id;
    this.act = act;
    /** @type {Map<string, Run>} by top image */
    this.runs = new Map();
    /** @type {Map<string, HTMLElement>} */
    this.boxes = new Map();
  }

  /** Forget every result (the images were cleared). */
  reset() {
    for (const r of this.runs.values()) r.ctl?.abort();
    this.runs.clear();
    this.boxes.clear();
  }

  /** Forget what was read for chains through `name` (it was removed). @param {string} name */
  forget(name) {
    for (const [top, r] of this.runs) {
      if (top === name || r.result?.layers.some((l) => l.image === name)) {
        r.ctl?.abort();
        this.runs.delete(top);
        this.boxes.delete(top);
      }
    }
    this.boxes.delete(name);
  }

  /**
   * The section for `name` (kept across renders of the details). A result
   * read through other readers than the chain has now (an image dropped
   * again, a reparent) is dropped.
   * @param {string} name
   */
  el(name) {
    /** @type {unknown[]} */
    let now = [];
    try {
      now = this.act.readers(name);
    } catch {
      // not known (any more)
    }
    let box = this.boxes.get(name);
    let redraw = !box;
    const run = this.runs.get(name);
    if (run && run.state !== 'running' && (run.readers.length !== now.length || run.readers.some((r, i) => r !== now[i]))) {
      this.runs.delete(name);
      redraw = true;
    }
    if (!box) {
      box = h('section', { class: 'alloc', 'aria-label': `Allocation of the chain from ${name}` });
      this.boxes.set(name, box);
    }
    // The button says how many layers the chain has now.
    if (box.dataset.layers !== String(now.length)) redraw = true;
    box.dataset.layers = String(now.length);
    if (redraw) this.draw(name);
    return box;
  }

  /** Read the chain's metadata (with check). @param {string} name */
  async start(name) {
    this.runs.get(name)?.ctl?.abort();
    const ctl = new AbortController();
    /** @type {Run} */
    const run = { state: 'running', ctl, done: 0, total: 0, size: 0, readers: this.act.readers(name) };
    this.runs.set(name, run);
    /** @type {Map<string, { done: number, total: number, size: number }>} */
    const per = new Map();
    /** @param {Event} ev */
    const onProgress = (ev) => {
      const d = /** @type {CustomEvent} */ (ev).detail;
      if (this.runs.get(name) !== run) return;
      per.set(d.image, { done: d.done, total: d.total, size: d.size ?? 0 });
      run.image = d.image;
      run.done = [...per.values()].reduce((s, x) => s + x.done, 0);
      run.total = [...per.values()].reduce((s, x) => s + x.total, 0);
      run.size = [...per.values()].reduce((s, x) => s + x.size, 0);
      this.progress(name);
    };
    const host = this.boxes.get(name)?.getRootNode();
    const target = host instanceof ShadowRoot ? host.host : null;
    target?.addEventListener('backing-chain-editor-progress', onProgress);
    this.draw(name);
    try {
      run.result = await this.act.chainMap(name, { check: true, signal: ctl.signal });
      run.state = 'done';
    } catch (e) {
      run.state = ctl.signal.aborted ? 'cancelled' : 'error';
      run.error = e instanceof Error ? e.message : String(e);
    } finally {
      target?.removeEventListener('backing-chain-editor-progress', onProgress);
      delete run.ctl;
    }
    if (this.runs.get(name) === run) this.draw(name);
  }

  /** Update the progress bar in place. @param {string} name */
  progress(name) {
    const box = this.boxes.get(name);
    const run = this.runs.get(name);
    if (!box || !run) return;
    const bar = box.querySelector('progress');
    const text = box.querySelector('.alloc-progress .meta');
    if (bar) {
      bar.max = Math.max(run.total, 1);
      bar.value = run.done;
    }
    if (text) text.textContent = `Reading the metadata of ${run.image ?? name}: ${humanSize(run.done)} read${run.total ? ` (will read ${humanSize(run.total)} of ${humanSize(run.size)} so far)` : ''}`;
  }

  /** @param {string} name */
  draw(name) {
    const box = this.boxes.get(name);
    if (!box) return;
    const run = this.runs.get(name);
    const head = h('h4', null, 'Inside the layers');
    if (!run || run.state !== 'running') {
      /** @type {string[]} */
      let chain = [];
      try {
        chain = this.act.chainOf(name);
      } catch {
        // not known (any more): the button says what it can
      }
      const label = chain.length > 1 ? `Show allocation (${chain.length} layers)` : 'Show allocation';
      const button = h('button', { type: 'button', class: 'show-alloc', onclick: () => this.start(name) }, run?.state === 'done' ? 'Read again' : label);
      const hint = h('span', { class: 'meta' }, ' Reads the metadata tables (about 0.01 % of a qcow2), not the data.');
      /** @type {HTMLElement[]} */
      const parts = [head, h('div', { class: 'field' }, button, hint)];
      if (run?.state === 'cancelled') parts.push(h('p', { class: 'meta', role: 'status' }, 'Cancelled.'));
      if (run?.state === 'error') parts.push(h('p', { class: 'diag error', role: 'alert' }, `Could not read the metadata: ${run.error}`));
      if (run?.state === 'done' && run.result) parts.push(...this.results(run.result));
      box.replaceChildren(...parts);
      return;
    }
    const bar = h('progress', { max: '1', value: '0', 'aria-label': 'Reading metadata' });
    const cancel = h('button', { type: 'button', class: 'cancel-alloc', onclick: () => run.ctl?.abort() }, 'Cancel');
    box.replaceChildren(head, h('div', { class: 'alloc-progress' }, bar, h('span', { class: 'meta', 'aria-live': 'polite' }, 'Reading the headers…'), cancel));
    this.progress(name);
  }

  /** @param {ChainResult} r */
  results(r) {
    const vs = r.summary['virtual-size'];
    const readTotal = r.layers.reduce((s, l) => s + l.bytesRead, 0);
    const fileTotal = r.layers.reduce((s, l) => s + l.size, 0);
    /** @type {HTMLElement[]} */
    const out = [];
    const names = r.layers.map((l) => l.image);
    // Per layer: the bar and its figures.
    const rows = r.layers.map(({ image, layer }) => {
      const a = layer.allocation;
      const v = a['virtual-size'] || 1;
      const words = KINDS.map((k) => `${KIND_TEXT[k]} ${humanSize(a[k])} (${pct(a[k], a['virtual-size'])})`).join(', ');
      const bar = h('div', { class: 'abar', role: 'img', 'aria-label': `${image}: ${words}` }, KINDS.filter((k) => a[k] > 0).map((k) => seg(`a-${k}`, a[k] / v, `${KIND_TEXT[k]}: ${formatCount(a[k])} bytes (${pct(a[k], a['virtual-size'])})`)));
      const note = a['fully-allocated-by-definition'] ? ' (a raw or fixed image: every byte counts as allocated; holes are invisible from here)' : '';
      return h('li', { 'data-image': image }, h('span', { class: 'name' }, image), bar, h('span', { class: 'meta figures' }, words + note));
    });
    out.push(h('ul', { class: 'alloc-layers', 'aria-label': 'Allocation per layer, top first' }, rows));
    out.push(h('p', { class: 'meta legend', 'aria-hidden': 'true' }, KINDS.flatMap((k) => [h('span', { class: `key a-${k}` }), ` ${KIND_TEXT[k]} `])));
    // The chain map strip: which layer provides which part of the disk.
    if (names.length) {
      const strip = h(
        'div',
        { class: 'mapstrip', role: 'img', 'aria-label': `Which layer provides each part of the disk: ${r.summary.provides.map((p) => `${names[p.depth] ?? `depth ${p.depth}`} ${pct(p.bytes, vs)}`).join(', ')}, never written ${pct(r.summary['never-written'], vs)}` },
        r.map.map((e) => {
          const who = e.present ? (names[e.depth] ?? `depth ${e.depth}`) : 'never written';
          const s = seg(e.present ? `d${Math.min(e.depth, 5)}${e.zero ? ' zero' : ''}` : 'none', e.length / (vs || 1), `${humanSize(e.start)}–${humanSize(e.start + e.length)}: ${who}${e.present && e.zero ? ' (zeroes)' : ''}`);
          s.dataset.depth = String(e.depth);
          return s;
        }),
      );
      const key = h(
        'p',
        { class: 'meta legend', 'aria-hidden': 'true' },
        names.flatMap((n, d) => [h('span', { class: `key d${Math.min(d, 5)}` }), ` ${n} `]),
        h('span', { class: 'key none' }),
        ' never written (lighter: zeroes)',
      );
      out.push(h('h5', null, 'Chain map (guest disk, left to right)'), strip, key);
    }
    const role = (/** @type {number} */ d) => (names.length < 2 ? '' : d === 0 ? ' (top)' : d === names.length - 1 ? ' (base)' : '');
    const provides = r.summary.provides.map((p) => `${names[p.depth] ?? `depth ${p.depth}`}${role(p.depth)} provides ${humanSize(p.bytes)}`);
    out.push(h('p', { class: 'summary-line' }, `${provides.join(', ')}; ${humanSize(r.summary['never-written'])} never written (of ${humanSize(vs)}).`));
    /** @type {HTMLElement[]} */
    const est = [];
    /** @param {string} k @param {string} v */
    const add = (k, v) => est.push(h('dt', null, k), h('dd', null, v));
    add('Flattened into one qcow2 (qemu-img measure)', `required ${humanSize(r.measure.required)} (${formatCount(r.measure.required)} bytes), fully allocated ${humanSize(r.measure['fully-allocated'])}${r.measure.bitmaps ? `, bitmaps ${humanSize(r.measure.bitmaps)}` : ''}`);
    r.commit.forEach((bytes, d) => add(`qemu-img commit of ${names[d]}`, `copies ${humanSize(bytes)} (${formatCount(bytes)} bytes) into ${names[d + 1]}`));
    add('Metadata read', `${humanSize(readTotal)} (${formatCount(readTotal)} bytes) of ${humanSize(fileTotal)} of files (${pct(readTotal, fileTotal)})`);
    out.push(h('dl', { class: 'estimates' }, est));
    // Check results as diagnostics.
    /** @type {HTMLElement[]} */
    const lines = [];
    for (const { image, layer } of r.layers) {
      const c = layer.check;
      if (!c) continue;
      const bad = (c.corruptions ?? 0) + (c.leaks ?? 0) + (c['check-errors'] ?? 0);
      if (!bad) {
        lines.push(h('li', { class: 'diag info', 'data-image': image }, h('span', { class: 'sev' }, 'ok'), ` ${image}: no errors were found (qemu-img check)`));
        continue;
      }
      const sev = c.corruptions || c['check-errors'] ? 'error' : 'warning';
      const what = [c.corruptions ? `${c.corruptions} corruption${c.corruptions === 1 ? '' : 's'}` : '', c.leaks ? `${c.leaks} leaked cluster${c.leaks === 1 ? '' : 's'}` : '', c['check-errors'] ? `${c['check-errors']} check error${c['check-errors'] === 1 ? '' : 's'}` : ''].filter(Boolean).join(', ');
      lines.push(
        h(
          'li',
          { class: `diag ${sev}`, 'data-image': image, 'data-code': 'check' },
          h('span', { class: 'sev' }, sev),
          ` ${image}: ${what}`,
          (c.problems ?? []).length ? h('ul', { class: 'problems' }, (c.problems ?? []).map((p) => h('li', null, `${p.class} at ${formatCount(p.offset)}: ${p.message}`))) : '',
          c.advice ? h('span', { class: 'fix' }, ' Repair (not run by us): ', h('code', null, c.advice)) : '',
        ),
      );
    }
    if (lines.length) out.push(h('h5', null, 'Check'), h('ul', { class: 'diags check' }, lines));
    return out;
  }
}
