// Types of the wasm API (`pkg/backing_chain.js`, the wasm-bindgen glue of the
// core): what each export takes and gives back. The element's modules see the
// glue through these types (editor-wasm.js); a test checks that every export
// named here exists. The metadata walks (`MetaWalk`, `MetaChain`), the XML
// edits (`editXml`, `adoptChain`) and a session's `audit` are in the second
// module (loaded when the user edits, audits or walks metadata), typed in
// backing-chain-wasm-meta.d.ts; their values (`MetaLayer`, `AuditReport`,
// …) here.

export type Severity = 'error' | 'warning' | 'info';

/** `{code, severity, message, fix?, image?}`: `image` is an index into `Forest.images` in the core's diagnostics. */
export interface Diagnostic {
  code: string;
  severity: Severity;
  message: string;
  fix?: string;
  image?: number | string | null;
  /** A chain's copy of one of its image's own probe notes. */
  'from-probe'?: boolean;
}

/** One probed image, keys as `qemu-img info --output=json` where they overlap. */
export interface Image {
  filename: string;
  format?: string;
  error?: string;
  'virtual-size'?: number;
  'cluster-size'?: number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  encrypted?: boolean;
  'dirty-flag'?: boolean;
  'format-specific'?: { type?: string; data?: Record<string, unknown> };
  identity?: Record<string, string | number>;
  'bytes-read': number;
  diagnostics?: Diagnostic[];
  [key: string]: unknown;
}

/** What image i's backing reference points at (`chain::Link`). */
export interface Link {
  kind: 'none' | 'image' | 'missing' | 'not-opened' | 'ambiguous' | 'remote' | 'unparsed' | 'unprobed';
  index?: number;
  resolved?: string;
  match?: string;
  candidates?: number[];
  source?: { type?: string; protocol?: string; name?: string; path?: string; [key: string]: unknown };
  error?: string;
}

export interface Chain {
  top: number;
  /** Image indices, top first. */
  layers: number[];
  status: string;
  diagnostics: Diagnostic[];
  end: string;
}

export interface Forest {
  images: Image[];
  links: Link[];
  chains: Chain[];
  overlays: number[][];
  diagnostics: Diagnostic[];
}

/** Options of `Session.xml` / `Session.diff` (`xml::Options`). */
export interface XmlOptions {
  layout?: 'nested' | 'flat';
  mode?: 'populate' | 'validate';
  replace?: boolean;
  'base-dir'?: string;
  'no-index'?: boolean;
  /** Without a domain: several bare disks come in a minimal `<domain>` (one document edits apply to). */
  wrap?: boolean;
}

/** A path written from an image named by a relative name (`xml::WrittenPath`). */
export interface WrittenPath {
  image: string;
  /** The directory it was made absolute with; null: written relative. */
  'base-dir': string | null;
  /** `base-dir` is the directory of the disk's own source: no base directory was given. */
  guessed: boolean;
}

export interface XmlOutput {
  xml: string;
  diagnostics: Diagnostic[];
  /** Validate mode: a chain differs from the images. */
  mismatch?: boolean;
  /** How many `<disk>` elements `xml` has. */
  disks: number;
  /** How the relative image names were written, each once. */
  paths: WrittenPath[];
  /** The document's disks whose source is one of the images, in document order. */
  targets: DiskTarget[];
}

/** A disk of the document and the image its source is (`xml::DiskTarget`). */
export interface DiskTarget {
  /** The disk's name: target dev, else alias, else `diskN`. */
  disk: string;
  /** Index into `Forest.images`. */
  image: number;
}

/** Which known image each place of a disk's stated chain is (`xml::DiskImages`; one per disk, in document order): indexes into `Forest.images`, null for none. */
export interface DiskImages {
  /** The image the disk's own source is. */
  source: number | null;
  /** Each layer of the main path, depth 1 first (terminator excluded). */
  layers: Array<number | null>;
  /** Does the document state a chain (a `<backingStore>`, a terminator alone too)? */
  stated: boolean;
}

/** An image's external data file (`chain::DataFile`). */
export interface DataFile {
  /** Index into `Forest.images`. */
  image: number;
  /** The name its header gives. */
  name: string;
  /** The known file (of the names given) it is. */
  file: string | null;
}

/** A chunk read for the probe: `[offset, bytes, askedLength]`. */
export type Chunk = [number, Uint8Array, number];
export type ProbeAnswer = { need: Array<{ offset: number; len: number }> } | { info: Image } | { error: string };
/** `Probe.stepQuiet` / `Session.probeQuiet`: the reads to make next, or finished (the image's facts not written). */
export type QuietProbeAnswer = { need: Array<{ offset: number; len: number }> } | { done: true };

/** The core's XML errors: `message` is "XML error at byte N: reason". */
export interface XmlError extends Error {
  /** Byte offset (UTF-8) of the problem in the document. */
  position: number;
  /** The message without its "XML error at byte N: " prefix. */
  reason: string;
}

export interface HostSpec {
  name?: string | null;
  port?: number | null;
  transport?: string | null;
  socket?: string | null;
}

/** A layer as the editor gives it (`xml::edit::LayerSpec`). */
export interface LayerSpec {
  type: 'file' | 'block' | 'dir' | 'network' | 'volume' | 'nvme' | string;
  format?: string | null;
  path?: string | null;
  protocol?: string | null;
  name?: string | null;
  hosts?: HostSpec[];
  pool?: string | null;
  volume?: string | null;
  mode?: string | null;
  pci?: string | null;
  namespace?: number | null;
  managed?: boolean | null;
}

export interface SeclabelSpec {
  model: string;
  relabel?: boolean | null;
  label?: string | null;
}

/** The core's edit operations (`xml::edit::Op`). `disk` counts the document's disks; `depth` 1 is the first backing layer. */
export type EditOp =
  | { op: 'set-layer' | 'insert-layer'; disk: number; depth: number; layer: LayerSpec }
  | { op: 'remove-layer'; disk: number; depth: number }
  | { op: 'set-terminator'; disk: number; on: boolean }
  | { op: 'set-seclabel'; disk: number; depth: number; seclabel: SeclabelSpec }
  | { op: 'remove-seclabel'; disk: number; depth: number; model: string };

/** A `<source>` as the core reads it (`source::StorageSource`). */
export interface StorageSource {
  type: 'file' | 'block' | 'dir' | 'network' | 'volume' | 'nvme';
  path?: string;
  protocol?: string;
  name?: string;
  hosts?: HostSpec[];
  /** Everything else `<source>` may carry, as [key, value] (pool, volume, pci, …). */
  extras?: Array<[string, string]>;
}

/** One `<backingStore>` of a disk as written (`xml::XmlLayer`); `type` null for a terminator. */
export interface XmlLayer {
  type: string | null;
  index: string | null;
  format: string | null;
  source: StorageSource | null;
  depth: number;
  /** Position of the parent in `layers` (null: the disk). */
  parent: number | null;
}

/** What a document says about one disk (`xml::DiskSummary`). */
export interface DiskSummary {
  name: string;
  /** Every `<backingStore>` in depth-first order, terminators included. */
  layers: XmlLayer[];
  /** The chain libvirt follows, first backing layer down: positions in `layers`, terminator excluded. */
  main: number[];
  terminated: boolean;
  diagnostics: Diagnostic[];
  /** The disk's own `<source>` (none for an empty cdrom, vhostuser, …). */
  source?: StorageSource | null;
  [key: string]: unknown;
}

export interface DiffSide {
  type: string | null;
  /** The path, or `protocol:name on [hosts]`. */
  place: string;
  format: string | null;
}

/** A disk's chain, side by side (`xml::edit::DiskDiff`). */
export interface DiskDiff {
  disk: number;
  name: string;
  matched: boolean;
  'has-chain': boolean;
  rows: Array<{ depth: number; xml: DiffSide | null; images: DiffSide | null; differs: string[] }>;
  'xml-terminated': boolean;
  'images-terminated': boolean;
}

/** A `<seclabel>` of a source (`xml::edit::seclabels`). */
export interface Seclabel {
  model: string | null;
  relabel: string | null;
  label: string | null;
  /** Other children kept as they are. */
  others: number;
}

/** The image-store audit (`audit::Audit`; keys documented in README.md). */
export type AuditRole = 'in-use' | 'layer' | 'orphan-top' | 'unused-base' | 'unused-layer';
export interface AuditUser { vm: number; name: string; disk: string; depth: number }
export interface AuditPlan {
  into: number;
  'hazard-images': number[];
  'hazard-count': number;
  'hazard-disks-count': number;
  'xml-changes': AuditUser[];
  running: string[];
  offline: string[];
  'check-first': string;
}
export interface AuditImage {
  index: number;
  filename: string;
  format: string | null;
  'virtual-size': number | null;
  'file-size': number | null;
  backing: number | null;
  'backing-outside': string | null;
  role: AuditRole;
  broken: { status: Chain['status']; message: string } | null;
  users: AuditUser[];
  overlays: number[];
  dependents: number[];
  'dependents-count': number;
  chains: Array<{ top: number; depth: number }>;
  delete: {
    verdict: 'safe' | 'in-use' | 'breaks-others';
    reasons: string[];
    'breaks-images': number[];
    'breaks-disks': AuditUser[];
  };
  commit: AuditPlan | null;
  flatten: AuditPlan | null;
  diagnostics: Diagnostic[];
}
export interface AuditVmDisk {
  name: string;
  'disk-type': string | null;
  device: string | null;
  source: string | null;
  network: boolean;
  image: number | null;
  chain: number[];
  status: Chain['status'] | null;
  'xml-layers': number;
  readonly: boolean;
  shareable: boolean;
  'new-xml': string | null;
  'ends-outside': string | null;
}
export interface AuditVm {
  name: string;
  input: string;
  start: number;
  end: number;
  disks: AuditVmDisk[];
  'total-file-size': number;
  exclusive: number[];
  'exclusive-file-size': number;
}
export interface AuditReport {
  summary: {
    images: number; vms: number; 'in-use': number; layers: number; 'orphan-tops': number;
    'unused-bases': number; 'unused-layers': number; broken: number; 'outside-drop': number;
    missing: number; 'domain-errors': number; 'unused-file-size': number;
  };
  images: AuditImage[];
  vms: AuditVm[];
  external: Array<{ path: string; state: 'outside-drop' | 'missing'; 'backing-of': number[]; disks: AuditUser[] }>;
  'domain-errors': Array<{ input: string; position: number; line: number; column: number; message: string }>;
  findings: Diagnostic[];
}
export interface AuditOptions {
  /** File sizes by image filename. */
  sizes?: Record<string, number>;
  /** Flag chains deeper than this (default 100; libvirt refuses more than 200). */
  'deep-chain'?: number;
}

/**
 * One image's probe, kept in the wasm: each `step` is given only the chunks
 * read for the ranges the last answer asked for (none at first), so each
 * chunk crosses into the wasm once. Answers `{ need }` until `{ info }` or
 * `{ error }` (a bad header, or more rounds than the core allows); malformed
 * chunks throw and are not kept. `Session.addProbe` adds the finished
 * probe's image and uses the probe up; else call `free()`.
 */
export class Probe {
  /** `fileLen`: the file's size, negative when unknown. */
  constructor(fileLen: number);
  step(chunks: Chunk[]): ProbeAnswer;
  /** As `step`, but a finished probe answers `{ done: true }`, its facts not written (a caller that only adds the image). */
  stepQuiet(chunks: Chunk[]): QuietProbeAnswer;
  free(): void;
}

export class Session {
  constructor();
  /** One step of a probe given every chunk read so far (a `Probe` is given each chunk once); adds the image once it answers `{ info }` or `{ error }`. */
  probe(filename: string, fileLen: number, chunks: Chunk[]): ProbeAnswer;
  /** As `probe`, but once the image is added it answers `{ done: true }` instead of its facts (the forest has them). */
  probeQuiet(filename: string, fileLen: number, chunks: Chunk[]): QuietProbeAnswer;
  /** A `Probe` of this session's wasm instance. */
  newProbe(fileLen: number): Probe;
  /** Add the image of a finished probe as `filename` (the probe is used up); an unfinished probe throws. */
  addProbe(filename: string, probe: Probe): void;
  addUnreadable(filename: string, error: string): void;
  readonly length: number;
  remove(filename: string): boolean;
  orderAdded(perm: Uint32Array | number[]): void;
  /** Throws an XmlError for a malformed document. */
  addQemuImgJson(text: string): string[];
  setMapping(pairs: Array<[string, string]>): void;
  setUntrusted(on: boolean): void;
  /** Per disk and depth: the chain the document states next to the one the images give. */
  diff(domainXml: string, options?: XmlOptions): DiskDiff[];
  /** Which of the images each disk's source and stated layers are (matched as populate matches a disk's source). Throws an XmlError for a malformed document. */
  xmlImages(doc: string): DiskImages[];
  /** Each image's data file, matched to `names` (the files the page knows). */
  dataFiles(names: string[]): DataFile[];
  clear(): void;
  forest(): Forest;
  /** Throws an XmlError for a malformed document. */
  xml(domainXml: string | null, options?: XmlOptions): XmlOutput;
  free(): void;
}

// ---- Metadata walks (issue 17): allocation, map, measure, check ----

/** How many bytes a metadata walk reads: exact once the tables that point to the rest are read, an upper bound before. */
export interface MetaPlan {
  'bytes-total': number;
  exact: boolean;
  'bytes-read': number;
  'file-len': number;
}

/** Guest bytes of one layer by kind (they add up to the virtual size; percents are left to the caller). */
export interface Allocation {
  'virtual-size': number;
  data: number;
  zero: number;
  compressed: number;
  unallocated: number;
  /** Raw and fixed formats: every byte counts as allocated. */
  'fully-allocated-by-definition'?: boolean;
}

export interface Extent {
  start: number;
  length: number;
  kind: 'data' | 'zero' | 'compressed' | 'unallocated';
  offset?: number;
}

/** `qemu-img check --output=json`'s keys (zero figures left out, as qemu-img does), plus the first problems and the advised repair. */
export interface MetaCheck {
  filename: string;
  format: string;
  'check-errors': number;
  corruptions?: number;
  leaks?: number;
  'image-end-offset'?: number;
  'total-clusters'?: number;
  'allocated-clusters'?: number;
  'fragmented-clusters'?: number;
  'compressed-clusters'?: number;
  problems?: Array<{ class: 'corruption' | 'leak'; offset: number; message: string }>;
  advice?: string;
}

export interface MetaLayer {
  format: string;
  'virtual-size': number;
  'cluster-size'?: number;
  allocation: Allocation;
  extents: Extent[];
  check?: MetaCheck;
  'bytes-read': number;
  diagnostics?: Diagnostic[];
}

export type MetaAnswer = { need: Array<{ offset: number; len: number }>; plan?: MetaPlan } | { layer: MetaLayer };

/** One entry of `qemu-img map --output=json`. */
export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed: boolean;
  offset?: number;
}

export interface MetaChainResult {
  map: MapEntry[];
  summary: {
    provides: Array<{ depth: number; bytes: number; zero: number }>;
    'never-written': number;
    'virtual-size': number;
  };
  /** `qemu-img measure --output=json -O qcow2` of the chain flattened. */
  measure: { required: number; 'fully-allocated': number; bitmaps?: number };
  /** `commit[d]`: bytes `qemu-img commit` of layer d copies into its backing. */
  commit: number[];
}

/** One probe step given every chunk read so far (a bad header throws); `Probe` is given each chunk once. */
export function probeStep(fileLen: number, chunks: Chunk[]): ProbeAnswer;
/** Each disk of a document and its chain as written (`xml::describe`). */
export function describeXml(doc: string): DiskSummary[];
/** `[disk][depth]`: the seclabels of each source (depth 0: the disk's own). */
export function seclabels(doc: string): Seclabel[][][];
/** `host`, `host:port`, `[v6]:port` or `/socket`, separated by commas or spaces; a bad one throws. */
export function parseHosts(text: string): HostSpec[];
/** The `<name>` of the first `<domain>` of a text (the audit's reader), undefined when none or not well-formed. */
export function domainName(doc: string): string | undefined;
/** The network protocols libvirt takes in a disk's `<source protocol>` (nbd, iscsi, rbd, …), in libvirt's order. */
export function networkProtocols(): string[];
/** `qemu-img rebase -u -f FORMAT -F BACKING_FORMAT -b BACKING IMAGE`, every word shell-quoted (the core's fix builder). */
export function rebaseCommand(format: string, backingFormat: string, backing: string, image: string): string;
export function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): unknown;
export default function init(module?: { module_or_path?: RequestInfo | URL | BufferSource | WebAssembly.Module } | RequestInfo | URL | BufferSource | WebAssembly.Module): Promise<unknown>;
