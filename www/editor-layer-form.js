// @ts-check
// The form under a layer of "Chains in the XML": edit the layer or insert one
// (type file/block/dir, network with protocol, name and hosts, a pool volume,
// an NVMe namespace; format), or set/remove its seclabel for one model. It
// builds the core's edit operation (`xml::edit::Op`) and hands it on.

import { h } from './render.js';
import { parseHosts } from './editor-wasm.js';

const MODELS = ['selinux', 'dac', 'apparmor'];
const TYPES = ['file', 'block', 'dir', 'network', 'volume', 'nvme'];
const PROTOCOLS = ['nbd', 'iscsi', 'rbd', 'gluster', 'nfs', 'http', 'https', 'ftp', 'ftps', 'ssh', 'sheepdog', 'vxhs', 'tftp'];
const FORMATS = ['qcow2', 'raw', 'qed', 'vmdk', 'vpc', 'vhdx', 'vdi', 'luks', 'parallels', 'qcow', 'cloop', 'dmg', 'bochs'];

/**
 * @typedef {import('./backing-chain-editor').EditOp} EditOp
 * @typedef {{ id: string, disk: number, name: string, depth: number, kind: 'edit' | 'insert' | 'seclabel', layer: any, labels: any[] }} FormSpec
 * @typedef {{ edit(op: EditOp): void, refused(e: unknown): void, cancel(): void }} FormActions
 */

/** `[v6]:port` for an IPv6 host name, as parseHosts reads it back. @param {{ name?: string, port?: number, socket?: string }} x */
const hostText = (x) => (x.socket ? x.socket : `${x.name?.includes(':') ? `[${x.name}]` : x.name ?? ''}${x.port ? `:${x.port}` : ''}`);

/** @param {FormSpec} spec @param {FormActions} act */
export function layerForm(spec, act) {
  const form = spec.kind === 'seclabel' ? seclabelForm(spec, act) : layerFields(spec, act);
  // Escape closes the form.
  form.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape') return;
    ev.preventDefault();
    act.cancel();
  });
  return form;
}

/** @param {string} id @param {string} name @param {string[]} values @param {(v: string) => string} [text] */
const select = (id, name, values, text = (v) => v) => h('select', { id, name }, ...values.map((v) => h('option', { value: v }, text(v))));

/** @param {FormSpec} spec @param {FormActions} act */
function seclabelForm({ id, disk, name, depth, labels }, act) {
  const cancel = h('button', { type: 'button', onclick: () => act.cancel() }, 'Cancel');
  const model = select(`${id}-model`, 'model', MODELS);
  const relabel = select(`${id}-relabel`, 'relabel', ['yes', 'no', ''], (v) => v || '(not set)');
  const label = h('input', { type: 'text', id: `${id}-label`, name: 'label', spellcheck: false, placeholder: 'system_u:object_r:svirt_image_t:s0:c1,c2 (empty: no <label>)' });
  // Prefill from the seclabel of the chosen model, when the layer has one.
  const fill = () => {
    const cur = labels.find((l) => l.model === model.value);
    relabel.value = cur ? (cur.relabel ?? '') : 'yes';
    label.value = cur?.label ?? '';
  };
  if (labels[0]?.model && MODELS.includes(labels[0].model)) model.value = labels[0].model;
  model.addEventListener('change', fill);
  fill();
  const form = h(
    'form',
    { class: 'edit seclabel', 'aria-label': `Seclabel of layer ${depth} of ${name}` },
    h('div', { class: 'field' }, h('label', { for: model.id }, 'Model'), model, h('label', { for: relabel.id }, 'Relabel'), relabel),
    h('div', { class: 'field' }, h('label', { for: label.id }, 'Label'), label),
    h(
      'div',
      { class: 'buttons' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('button', { type: 'button', 'data-act': 'remove-seclabel', onclick: () => act.edit({ op: 'remove-seclabel', disk, depth, model: model.value }) }, 'Remove this model’s seclabel'),
      cancel,
    ),
    h('p', { class: 'hint meta' }, 'Only the seclabel of this model changes; its other children and the other seclabels are kept.'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    act.edit({
      op: 'set-seclabel',
      disk,
      depth,
      seclabel: { model: model.value, relabel: relabel.value === '' ? null : relabel.value === 'yes', label: label.value === '' ? null : label.value },
    });
  });
  return form;
}

/** @param {FormSpec} spec @param {FormActions} act */
function layerFields({ id, disk, name: diskName, depth, kind, layer }, act) {
  const cancel = h('button', { type: 'button', onclick: () => act.cancel() }, 'Cancel');
  const editing = kind === 'edit';
  const src = layer?.source ?? {};
  const type = select(`${id}-type`, 'type', TYPES);
  type.value = editing ? (layer?.type ?? 'file') : 'file';
  /** @param {string | undefined} x */
  const v = (x) => (editing ? x ?? '' : '');
  const path = h('input', { type: 'text', id: `${id}-path`, name: 'path', spellcheck: false, value: v(src.path), placeholder: '/var/lib/libvirt/images/base.qcow2' });
  const protocol = select(`${id}-proto`, 'protocol', PROTOCOLS);
  if (editing && src.protocol) protocol.value = src.protocol;
  const name = h('input', { type: 'text', id: `${id}-name`, name: 'name', spellcheck: false, value: v(src.name), placeholder: 'pool/image, export, iqn…/1' });
  const hosts = h('input', { type: 'text', id: `${id}-hosts`, name: 'hosts', spellcheck: false, value: v((src.hosts ?? []).map(hostText).join(', ')), placeholder: 'host:port, [v6addr]:port, host2 (or /path/to/socket)' });
  const format = select(`${id}-format`, 'format', [...(editing ? [''] : []), ...FORMATS], (t) => t || '(unchanged)');
  format.value = editing ? (layer?.format ?? '') : 'qcow2';
  const local = h('div', { class: 'field' }, h('label', { for: path.id }, 'Path'), path);
  const net = h('div', { class: 'field net' }, h('label', { for: protocol.id }, 'Protocol'), protocol, h('label', { for: name.id }, 'Name'), name, h('label', { for: hosts.id }, 'Hosts'), hosts);
  // volume (pool, volume, mode) and nvme (PCI address, namespace, managed):
  // the core keeps these in `extras`; an empty choice writes nothing.
  /** @type {Record<string, string>} */
  const extra = Object.fromEntries(editing ? src.extras ?? [] : []);
  /** @type {Record<string, HTMLInputElement | HTMLSelectElement>} key → its input or select, read on submit */
  const fields = {};
  /** @param {string} key @param {string} label @param {Record<string, string>} [more] */
  const input = (key, label, more) => {
    const el = (fields[key] = h('input', { type: 'text', id: `${id}-${key}`, name: key, spellcheck: false, value: extra[key] ?? '', ...more }));
    return [h('label', { for: el.id }, label), el];
  };
  /** @param {string} key @param {string} label @param {string[]} values */
  const choice = (key, label, values) => {
    const el = (fields[key] = select(`${id}-${key}`, key, ['', ...values], (t) => t || '(none)'));
    el.value = extra[key] ?? '';
    return [h('label', { for: el.id }, label), el];
  };
  const vol = h('div', { class: 'field net' }, ...input('pool', 'Pool'), ...input('volume', 'Volume'), ...choice('mode', 'Mode', ['host', 'direct']));
  const nvme = h('div', { class: 'field net' }, ...input('pci', 'PCI address', { placeholder: '0000:01:00.0' }), ...input('namespace', 'Namespace', { inputmode: 'numeric', placeholder: '1' }), ...choice('managed', 'Managed', ['yes', 'no']));
  /** @type {Record<string, HTMLElement>} */
  const groups = { network: net, volume: vol, nvme };
  const sync = () => {
    for (const [k, g] of Object.entries(groups)) g.hidden = type.value !== k;
    local.hidden = type.value in groups;
  };
  type.addEventListener('change', sync);
  sync();
  const title = editing ? `Edit layer ${depth} of ${diskName}` : `New layer at depth ${depth} of ${diskName}`;
  const form = h(
    'form',
    { class: 'edit layer', 'aria-label': title },
    h('h4', null, title),
    h('div', { class: 'field' }, h('label', { for: type.id }, 'Type'), type, h('label', { for: format.id }, 'Format'), format),
    local,
    net,
    vol,
    nvme,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, editing ? 'Apply' : 'Insert'), cancel),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    /** @type {Record<string, unknown>} */
    const layerSpec = { type: type.value, format: format.value === '' ? null : format.value };
    if (type.value === 'network') {
      layerSpec.protocol = protocol.value;
      layerSpec.name = name.value || null;
      try {
        layerSpec.hosts = parseHosts(hosts.value);
      } catch (e) {
        act.refused(e);
        return;
      }
    } else if (type.value === 'volume' || type.value === 'nvme') {
      const val = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value.trim() || null]));
      if (type.value === 'volume') Object.assign(layerSpec, { pool: val.pool, volume: val.volume, mode: val.mode });
      else Object.assign(layerSpec, { pci: val.pci, namespace: val.namespace === null ? null : Number(val.namespace), managed: val.managed === null ? null : val.managed === 'yes' });
    } else layerSpec.path = path.value;
    act.edit({ op: editing ? 'set-layer' : 'insert-layer', disk, depth, layer: /** @type {any} */ (layerSpec) });
  });
  return form;
}
