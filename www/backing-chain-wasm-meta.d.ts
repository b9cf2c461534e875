// Types of the on-demand module (`pkg/backing_chain_meta.js`, the
// wasm-bindgen glue of the second wasm module the element loads when the
// user edits, audits or walks metadata: issue 17's metadata walks, the XML
// edits and a session's audit, split out of the core in issue 18). Its values
// are typed in backing-chain-wasm.d.ts. A test checks that every export
// named here exists. A wasm built from the crate with no feature exports
// these from the core too.

import type { AuditOptions, AuditReport, Chunk, EditOp, Forest, MetaAnswer, MetaChainResult, MetaPlan, ProbeAnswer, QuietProbeAnswer } from './backing-chain-wasm';

/** A probe of this module's instance (`Session.newProbe`), as the core's `Probe`. */
export class Probe {
  constructor(fileLen: number);
  step(chunks: Chunk[]): ProbeAnswer;
  /** As `step`, but a finished probe answers `{ done: true }` (its facts not written). */
  stepQuiet(chunks: Chunk[]): QuietProbeAnswer;
  free(): void;
}

/**
 * A session of this module: the core's Session without the XML writer
 * (`xml`, `xmlImages`, `dataFiles`, `diff`), with `audit`. The element
 * fills it from what its model keeps (the same images, in the same order).
 */
export class Session {
  constructor();
  /** One step of a probe given every chunk read so far; adds the image once it answers `{ info }` or `{ error }`. */
  probe(filename: string, fileLen: number, chunks: Chunk[]): ProbeAnswer;
  /** As `probe`, but once the image is added it answers `{ done: true }` (the model's mirror adds images this way: it never reads their facts). */
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
  clear(): void;
  forest(): Forest;
  /** The image-store audit of the session's images and the domains given; a malformed domain is reported, not thrown. */
  audit(domains: Array<{ label: string; text: string }> | null, options?: AuditOptions): { report: AuditReport; csv: string; script: string };
  free(): void;
}

/** Apply one edit; returns the new document, a refused edit throws. */
export function editXml(doc: string, op: EditOp): string;
/** `doc` with disk `disk`'s chain taken from `other`. */
export function adoptChain(doc: string, other: string, disk: number): string;

/** One image's metadata walk: header first, then its tables. A bad header or table throws. */
export class MetaWalk {
  constructor(fileLen: number, options?: { check?: boolean });
  /** The bytes of the ranges the last answer asked for (the walk keeps the earlier ones). */
  step(chunks: Chunk[]): MetaAnswer;
  plan(): MetaPlan | null;
  free(): void;
}

/** The layers of one chain, top first: map, summary, measure, commit estimates. */
export class MetaChain {
  constructor();
  push(walk: MetaWalk): void;
  result(): MetaChainResult;
  free(): void;
}

export function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): unknown;
export default function init(module?: { module_or_path?: RequestInfo | URL | BufferSource | WebAssembly.Module } | RequestInfo | URL | BufferSource | WebAssembly.Module): Promise<unknown>;
