//! The wasm facade: JS values in, core calls, JS values out. No logic here.
//!
//! Results cross as JSON text parsed by `JSON.parse` (64-bit sizes from
//! hostile headers stay numbers instead of failing); options and edits are
//! read from plain JS objects by hand (`js_read`: no serde deserializer in
//! the wasm). Every error is a JS `Error` with a message.
//!
//! Built with no feature it exports everything. The page splits it in two
//! (issue 18, `.ci/build`): `wasm-no-meta` is the first module, loaded at
//! first paint: probing, the forest, the XML writer and what a page showing
//! data draws (`Session.diff`, `describeXml`, `seclabels`: the chains table
//! and the tree's marked differences). It leaves out what is only needed
//! when the user edits, audits or walks metadata. That is `wasm-meta-only`,
//! the second module the element loads only when the user applies an edit,
//! sets a backing with a domain XML, audits or walks metadata: the walks
//! (`MetaWalk`, `MetaChain`), `editXml`, `adoptChain`, and a `Session` of
//! its own with `audit` (the page fills it from what its model keeps:
//! `www/editor-model.js`, `mirror`). Both modules have the session's probing
//! and building; only the second one has `audit`, only the first one `xml`,
//! `xmlImages`, `dataFiles`, `diff`.

use std::sync::Once;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::chain::{self, Image, Probed};
use crate::image::{self, Range, Reads, Step};
use crate::xml;

/// An answer as a JS value: written as JSON text by [`crate::json_out`]
/// (what `serde_json::to_string` writes, with a fraction of its code: issue
/// 18), then `JSON.parse`d. Writing it cannot fail for the answers here
/// (every map key is text, no answer holds a float, no serializer of ours
/// errs), so the error is a fixed message.
fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsError> {
    let s = crate::json_out::to_string(v)
        .map_err(|_| JsError::new("internal: an answer could not be written as JSON"))?;
    js_sys::JSON::parse(&s).map_err(|_| JsError::new("internal: JSON.parse failed"))
}

#[cfg(all(feature = "wasm-no-meta", feature = "wasm-meta-only"))]
compile_error!(
    "the features wasm-no-meta and wasm-meta-only exclude each other: build one module at a time"
);

/// The global a panic message is written to. The metadata module has its
/// own, so that a panic in it is not taken for one of the page's core.
#[cfg(not(feature = "wasm-meta-only"))]
const PANIC_GLOBAL: &str = "backingChainPanic";
#[cfg(feature = "wasm-meta-only")]
const PANIC_GLOBAL: &str = "backingChainMetaPanic";

static HOOK: Once = Once::new();

/// Report Rust panics to the page: the message goes to `console.error` and
/// to `globalThis.backingChainPanic` (a string; `backingChainMetaPanic` in
/// the metadata module) before the wasm traps.
fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("backing-chain internal error: {info}");
            let _ =
                js_sys::Reflect::set(&js_sys::global(), &PANIC_GLOBAL.into(), &msg.clone().into());
            web_log(&msg);
        }));
    });
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn web_log(s: &str);
}

/// Largest offset or length a chunk may name: JS numbers are exact whole
/// numbers up to 2^53 - 1 (`Number.MAX_SAFE_INTEGER`); past it a number
/// names no byte of a real file.
const MAX_CHUNK_NUMBER: f64 = 9_007_199_254_740_991.0;

/// The file length a caller gives: a negative number (or NaN) when unknown.
fn known_len(file_len: f64) -> Option<u64> {
    (file_len >= 0.0).then_some(file_len as u64)
}

/// A chunk's offset or asked length: a whole number from 0 to 2^53 - 1
/// (else the error `bad`).
fn chunk_number(v: &JsValue, bad: &str) -> Result<u64, JsError> {
    match v.as_f64() {
        Some(n) if (0.0..=MAX_CHUNK_NUMBER).contains(&n) && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(JsError::new(bad)),
    }
}

/// One `[offset, Uint8Array, askedLen]` chunk as (offset, bytes, asked
/// length), checked against the file length `len` when known: a chunk that
/// holds more bytes than it asked for, or bytes that start at or past the
/// file's end, is an error (no read of the file can give them).
fn probe_chunk(c: JsValue, len: Option<u64>) -> Result<(u64, Uint8Array, u64), JsError> {
    let c: Array = c
        .dyn_into()
        .map_err(|_| JsError::new("chunk must be [offset, bytes, askedLen]"))?;
    let offset = chunk_number(
        &c.get(0),
        "chunk offset must be a whole number from 0 to 2^53 - 1",
    )?;
    let bytes: Uint8Array = c
        .get(1)
        .dyn_into()
        .map_err(|_| JsError::new("chunk bytes must be a Uint8Array"))?;
    let held = u64::from(bytes.length());
    let asked = c.get(2);
    let asked = if asked.is_undefined() || asked.is_null() {
        held
    } else {
        chunk_number(
            &asked,
            "chunk askedLen must be a whole number from 0 to 2^53 - 1",
        )?
    };
    let bad = if held > asked {
        "more bytes than its askedLen"
    } else if len.is_some_and(|l| held > 0 && offset >= l) {
        "bytes past the end of the file"
    } else {
        return Ok((offset, bytes, asked));
    };
    Err(JsError::new(&format!(
        "chunk at {offset} ({held} bytes): {bad}"
    )))
}

/// Add `chunks` to `reads`, all or nothing: every chunk is checked
/// ([`probe_chunk`], once) before any is added. Each chunk's bytes are
/// copied into the wasm once, here.
fn add_chunks(reads: &mut Reads, chunks: &Array) -> Result<(), JsError> {
    let len = reads.file_len();
    let mut checked = Vec::new();
    for c in chunks.iter() {
        checked.push(probe_chunk(c, len)?);
    }
    for (offset, bytes, asked) in checked {
        reads.insert(Range::new(offset, asked), bytes.to_vec());
    }
    Ok(())
}

/// A [`Probe`]'s answer once it has asked for `limits::MAX_ROUNDS` rounds
/// (the words of `image::probe_with`).
const TOO_MANY_ROUNDS: &str = "header needs more than 16 reads";
const _: () = assert!(
    crate::limits::MAX_ROUNDS == 16,
    "TOO_MANY_ROUNDS names the limit"
);

/// A probe that keeps what it was given: `step(chunks)` takes only the
/// chunks read for the ranges the last answer asked for (`[offset,
/// Uint8Array, askedLen]`), adds them to the reads it holds, and answers
/// `{ need: [{offset, len}] }` (read these next), `{ info }` or `{ error }`
/// (a bad header, or more than `limits::MAX_ROUNDS` rounds). Each chunk
/// crosses into the wasm once, however many rounds the probe takes (a
/// `probeStep` loop passes every chunk again at each round). Malformed
/// chunks throw and are not kept. `Session.addProbe` adds the finished
/// probe's image to a session without its bytes crossing again.
#[wasm_bindgen]
pub struct Probe {
    reads: Reads,
    /// Steps taken (each a round of reads, the first excepted).
    steps: usize,
    /// The outcome, once the probe is finished.
    outcome: Option<Probed>,
}

#[wasm_bindgen]
impl Probe {
    /// A probe of a file of `fileLen` bytes (a negative number when unknown).
    #[wasm_bindgen(constructor)]
    pub fn new(file_len: f64) -> Probe {
        install_panic_hook();
        Probe {
            reads: Reads::new(known_len(file_len)),
            steps: 0,
            outcome: None,
        }
    }

    /// One round: add `chunks` (the bytes read for the last `need`; none at
    /// first) and probe. See [`Probe`].
    pub fn step(&mut self, chunks: Array) -> Result<JsValue, JsError> {
        if let Some(need) = self.advance(&chunks)? {
            return to_js(&NeedAnswer { need: &need });
        }
        match &self.outcome {
            Some(Probed::Info(info)) => to_js(&InfoAnswer { info }),
            Some(Probed::Error { error }) => to_js(&ErrorAnswer { error }),
            None => Err(JsError::new(
                "internal: a finished probe without an outcome",
            )),
        }
    }

    /// As `step`, but a finished probe answers `{ done: true }` instead of
    /// `{ info }` or `{ error }`: for a caller that only needs to know it is
    /// finished (the page's probe worker, which hands the chunks to the
    /// page; `Session.addProbe` adds the image either way). Writing the
    /// facts as JSON and parsing them back is most of a qcow2's last step.
    #[wasm_bindgen(js_name = stepQuiet)]
    pub fn step_quiet(&mut self, chunks: Array) -> Result<JsValue, JsError> {
        match self.advance(&chunks)? {
            Some(need) => to_js(&NeedAnswer { need: &need }),
            None => js_sys::JSON::parse(r#"{"done":true}"#)
                .map_err(|_| JsError::new("internal: JSON.parse failed")),
        }
    }
}

impl Probe {
    /// Add `chunks` and probe: the ranges to read next, or `None` once the
    /// probe is finished (its outcome set).
    fn advance(&mut self, chunks: &Array) -> Result<Option<Vec<Range>>, JsError> {
        if self.outcome.is_some() {
            return Err(JsError::new("the probe is finished"));
        }
        add_chunks(&mut self.reads, chunks)?;
        self.steps += 1;
        self.outcome = Some(match image::probe(&self.reads) {
            Ok(Step::Need(r)) if self.steps < crate::limits::MAX_ROUNDS => return Ok(Some(r)),
            Ok(Step::Done(info)) => Probed::Info(info),
            // As `image::probe_with`: no more rounds than the core's limit.
            Ok(Step::Need(_)) => Probed::Error {
                error: TOO_MANY_ROUNDS.to_owned(),
            },
            Err(e) => Probed::Error {
                error: e.to_string(),
            },
        });
        Ok(None)
    }
}

/// One probe step. `chunks` is an array of `[offset, Uint8Array, askedLen]`
/// (every chunk read so far); `fileLen` the file size (or a negative number
/// when unknown). Returns `{ need: [{offset, len}] }` or `{ info: {...} }`;
/// a bad header throws. A loop of these passes every chunk again at each
/// round: [`Probe`] keeps them instead.
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = probeStep)]
pub fn probe_step(file_len: f64, chunks: Array) -> Result<JsValue, JsError> {
    let mut probe = Probe::new(file_len);
    let answer = probe.step(chunks)?;
    match probe.outcome {
        Some(Probed::Error { error }) => Err(JsError::new(&error)),
        _ => Ok(answer),
    }
}

impl Session {
    /// One probe step given every chunk read so far (`probe`,
    /// `probeQuiet`): the image is added once the probe is finished.
    fn probe_once(
        &mut self,
        filename: String,
        file_len: f64,
        chunks: Array,
        quiet: bool,
    ) -> Result<JsValue, JsError> {
        let mut probe = Probe::new(file_len);
        let answer = if quiet {
            probe.step_quiet(chunks)?
        } else {
            probe.step(chunks)?
        };
        if probe.outcome.is_some() {
            self.add_probe(filename, probe)?;
        }
        Ok(answer)
    }
}

/// A set of probed images and the chains they form.
#[wasm_bindgen]
#[derive(Default)]
pub struct Session {
    images: Vec<Image>,
    forest: Option<chain::Forest>,
    build: chain::BuildOptions,
}

#[wasm_bindgen]
impl Session {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Session {
        install_panic_hook();
        Session::default()
    }

    /// One probe step for `filename` (arguments as for `probeStep`). Returns
    /// `{ need: [...] }`, or, once the header is read, adds the image to the
    /// session and returns `{ info }` — or `{ error }` for a bad header (the
    /// image is added with its error: a chain that reaches it says so).
    /// Every chunk read so far is passed at each call: a probe of several
    /// rounds is cheaper with [`Probe`] and [`Session::add_probe`].
    pub fn probe(
        &mut self,
        filename: String,
        file_len: f64,
        chunks: Array,
    ) -> Result<JsValue, JsError> {
        self.probe_once(filename, file_len, chunks, false)
    }

    /// As [`Session::probe`], but once the image is added it answers `{
    /// done: true }` instead of its facts (`Probe.stepQuiet`): the page adds
    /// the images its probe worker read with this, and never reads those
    /// facts (the forest has them).
    #[wasm_bindgen(js_name = probeQuiet)]
    pub fn probe_quiet(
        &mut self,
        filename: String,
        file_len: f64,
        chunks: Array,
    ) -> Result<JsValue, JsError> {
        self.probe_once(filename, file_len, chunks, true)
    }

    /// A new [`Probe`] of this session's wasm instance (as `new
    /// Probe(fileLen)`), for [`Session::add_probe`].
    #[wasm_bindgen(js_name = newProbe)]
    pub fn new_probe(&self, file_len: f64) -> Probe {
        Probe::new(file_len)
    }

    /// Add the image of a finished probe (one that answered `{ info }` or
    /// `{ error }`) as `filename`, with the bytes it was given: what
    /// [`Session::probe`] adds from the same chunks, without the chunks
    /// crossing again. The probe is used up (freed); an unfinished one is
    /// an error.
    #[wasm_bindgen(js_name = addProbe)]
    pub fn add_probe(&mut self, filename: String, probe: Probe) -> Result<(), JsError> {
        let bytes_read = probe.reads.bytes_held();
        let probe = probe
            .outcome
            .ok_or_else(|| JsError::new("the probe is not finished: it still needs reads"))?;
        self.images_mut().push(Image {
            filename,
            probe,
            bytes_read,
        });
        Ok(())
    }

    /// Add an image that could not be read at all (the reader failed).
    #[wasm_bindgen(js_name = addUnreadable)]
    pub fn add_unreadable(&mut self, filename: String, error: String) {
        self.images_mut().push(Image {
            filename,
            probe: Probed::Error { error },
            bytes_read: 0,
        });
    }

    /// Number of images in the session.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.forest
            .as_ref()
            .map_or(self.images.len(), |f| f.images.len())
    }

    /// Remove every image named `filename` (a file dropped again replaces
    /// the old one). Returns whether one was removed.
    pub fn remove(&mut self, filename: &str) -> bool {
        let images = self.images_mut();
        let before = images.len();
        images.retain(|i| i.filename != filename);
        images.len() != before
    }

    /// Reorder the last `perm.len()` images (added as their probes
    /// finished, in any order): the image at tail position `perm[j]` goes to
    /// tail position `j`, so chains and bare disks come out in the order the
    /// images were given. Anything but a permutation of the tail positions
    /// is ignored. In place, O(n).
    #[wasm_bindgen(js_name = orderAdded)]
    pub fn order_added(&mut self, perm: Vec<u32>) {
        let images = self.images_mut();
        let k = perm.len();
        let Some(start) = images.len().checked_sub(k) else {
            return;
        };
        let mut seen = vec![false; k];
        for &p in &perm {
            match seen.get_mut(p as usize) {
                Some(s) if !*s => *s = true,
                _ => return,
            }
        }
        // Follow each cycle with swaps: position j takes what was at perm[j].
        let tail = &mut images[start..];
        for first in 0..k {
            if !seen[first] {
                continue;
            }
            let mut j = first;
            loop {
                seen[j] = false;
                let p = perm[j] as usize;
                if p == first {
                    break;
                }
                tail.swap(j, p);
                j = p;
            }
        }
    }

    /// Add the images of a `qemu-img info --backing-chain --output=json`
    /// document (an image of the same name is replaced). Returns their
    /// names; a malformed document throws an `Error` with `position`.
    #[wasm_bindgen(js_name = addQemuImgJson)]
    pub fn add_qemu_img_json(&mut self, text: &str) -> Result<JsValue, JsValue> {
        let images = xml::qemu_json::images(text).map_err(|e| xml_error(&e))?;
        let names: Vec<String> = images.iter().map(|i| i.filename.clone()).collect();
        let mine = self.images_mut();
        for im in images {
            mine.retain(|i| i.filename != im.filename);
            mine.push(im);
        }
        Ok(to_js(&names)?)
    }

    /// The user's backing choices: `[[image, backing image], ...]` by
    /// filename; they override every other match (`BuildOptions.mapping`).
    #[wasm_bindgen(js_name = setMapping)]
    pub fn set_mapping(&mut self, pairs: JsValue) -> Result<(), JsError> {
        let m = if pairs.is_undefined() || pairs.is_null() {
            Vec::new()
        } else {
            js_read::mapping(&pairs).map_err(|e| JsError::new(&format!("mapping: {e}")))?
        };
        self.build.mapping = m;
        self.images_mut();
        Ok(())
    }

    /// The images come from elsewhere (`BuildOptions.untrusted`, the CLI's
    /// `chain --untrusted`): backing names reaching outside the usual image
    /// directories get an `untrusted-backing-name` warning.
    #[wasm_bindgen(js_name = setUntrusted)]
    pub fn set_untrusted(&mut self, on: bool) {
        self.build.untrusted = on;
        self.images_mut();
    }

    #[cfg(not(feature = "wasm-meta-only"))]
    /// Per disk and depth: the chain the document states next to the one
    /// the images give (`xml::diff::diff`). `options` as for `xml`.
    pub fn diff(&mut self, domain_xml: &str, options: JsValue) -> Result<JsValue, JsValue> {
        let opts = options_from(options)?;
        let forest = self.forest();
        let d = xml::diff::diff(domain_xml, forest, &opts).map_err(|e| xml_error(&e))?;
        Ok(to_js(&d)?)
    }

    #[cfg(not(feature = "wasm-meta-only"))]
    /// Every image's external data file (qcow2): `[{image, name, file}]`,
    /// `file` the one of `names` (the images' and any other file's the page
    /// knows) it is (`chain::Forest::data_files`).
    #[wasm_bindgen(js_name = dataFiles)]
    pub fn data_files(&mut self, names: Array) -> Result<JsValue, JsError> {
        let names: Vec<String> = names.iter().filter_map(|n| n.as_string()).collect();
        to_js(&self.forest().data_files(&names))
    }

    pub fn clear(&mut self) {
        self.images_mut().clear();
    }

    /// The images, to change them: a built forest gives its images back
    /// (they live in one place, never copied) and is dropped.
    fn images_mut(&mut self) -> &mut Vec<Image> {
        if let Some(f) = self.forest.take() {
            self.images = f.images;
        }
        &mut self.images
    }

    fn forest(&mut self) -> &chain::Forest {
        if self.forest.is_none() {
            let images = std::mem::take(&mut self.images);
            self.forest = Some(chain::build_with(images, &self.build));
        }
        self.forest.as_ref().expect("forest just built")
    }

    /// The forest: images, links, chains (top → base), overlays, diagnostics.
    #[wasm_bindgen(js_name = forest)]
    pub fn forest_js(&mut self) -> Result<JsValue, JsError> {
        to_js(self.forest())
    }

    #[cfg(not(feature = "wasm-meta-only"))]
    /// XML for the chains: the domain (or `<disk>`) XML populated when given,
    /// bare `<disk>` elements otherwise (in a minimal `<domain>` when
    /// several and `wrap`). `options`: `{ layout, mode, replace, wrap,
    /// "base-dir", "no-index" }`. Returns `{ xml, diagnostics, mismatch,
    /// disks, paths }` (`xml::Output`). A malformed document throws an `Error`
    /// whose `position` property is the byte offset (UTF-8) of the problem.
    pub fn xml(
        &mut self,
        domain_xml: Option<String>,
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let opts = options_from(options)?;
        let forest = self.forest();
        let out = match domain_xml.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(d) => xml::populate(d, forest, &opts).map_err(|e| xml_error(&e))?,
            None => xml::disks(forest, &opts),
        };
        Ok(to_js(&out)?)
    }
}

/// A JS `Error` for a malformed XML document: `message` as `Display` gives it
/// ("XML error at byte N: …"), `position` the byte offset (UTF-8) and
/// `reason` the message alone, so that callers never strip the prefix.
fn xml_error(e: &xml::XmlError) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let _ = js_sys::Reflect::set(&err, &"position".into(), &(e.position as f64).into());
    let _ = js_sys::Reflect::set(&err, &"reason".into(), &e.message.as_str().into());
    err.into()
}

#[cfg(not(feature = "wasm-meta-only"))]
fn options_from(options: JsValue) -> Result<xml::Options, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(xml::Options::default());
    }
    js_read::xml_options(&options)
        .map_err(|e| JsValue::from(JsError::new(&format!("bad options: {e}"))))
}

/// Each disk of a document and its chain as written (`xml::describe`).
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = describeXml)]
pub fn describe_xml(doc: &str) -> Result<JsValue, JsValue> {
    install_panic_hook();
    let d = xml::describe(doc).map_err(|e| xml_error(&e))?;
    Ok(to_js(&d)?)
}

/// Apply one edit to a disk's chain (`xml::edit::Op` as an object:
/// `{op: 'set-layer' | 'insert-layer' | 'remove-layer' | 'set-terminator' |
/// 'set-seclabel' | 'remove-seclabel', disk, depth, ...}`). Returns the new
/// document; a refused edit throws.
#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen(js_name = editXml)]
pub fn edit_xml(doc: &str, op: JsValue) -> Result<String, JsValue> {
    install_panic_hook();
    let op = js_read::edit_op(&op)
        .map_err(|e| JsValue::from(JsError::new(&format!("bad edit: {e}"))))?;
    xml::edit::apply(doc, &op).map_err(|e| xml_error(&e))
}

/// `doc` with disk `disk`'s chain taken from `other` (`xml::edit::adopt_chain`).
#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen(js_name = adoptChain)]
pub fn adopt_chain(doc: &str, other: &str, disk: usize) -> Result<String, JsValue> {
    install_panic_hook();
    xml::edit::adopt_chain(doc, other, disk).map_err(|e| xml_error(&e))
}

#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen]
impl Session {
    /// For each disk of `doc`: which of the session's images (indexes into
    /// `forest().images`) its source and each layer of its stated chain are,
    /// matched as populate and validate match a disk's source
    /// (`xml::images_of`): one `{source, layers, stated}` per disk, `null`
    /// for none. The page follows a chain edit in the tree with it (a
    /// reparent).
    #[wasm_bindgen(js_name = xmlImages)]
    pub fn xml_images(&mut self, doc: &str) -> Result<JsValue, JsValue> {
        let forest = self.forest();
        let d = xml::images_of(doc, forest).map_err(|e| xml_error(&e))?;
        Ok(to_js(&d)?)
    }
}

/// The `<seclabel>`s of each source of each disk's chain: `[disk][depth]`,
/// depth 0 the disk's own source (`xml::edit::seclabels`).
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = seclabels)]
pub fn seclabels(doc: &str) -> Result<JsValue, JsValue> {
    install_panic_hook();
    let s = xml::edit::seclabels(doc).map_err(|e| xml_error(&e))?;
    Ok(to_js(&s)?)
}

/// The hosts of a network layer as a user types them: `host`, `host:port`,
/// `[v6addr]:port` or `/path/to/socket` (a unix socket), separated by commas
/// or white space. Returns `xml::edit::HostSpec`s (`{name, port, transport,
/// socket}`, unset ones null); a host the URI splitter (`source::uri::split`,
/// as for backing names) or the port parser refuses throws an `Error`.
/// The `<name>` of the first `<domain>` in `doc` (the audit's reader of
/// domain documents), or `undefined` when there is none or the text is not
/// well-formed: what a download is named after.
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = domainName)]
pub fn domain_name(doc: &str) -> Option<String> {
    install_panic_hook();
    let input = [crate::audit::DomainText {
        label: String::new(),
        text: doc.to_string(),
    }];
    crate::audit::domains::read_all(&input)
        .0
        .into_iter()
        .next()
        .and_then(|d| d.name)
}

#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = parseHosts)]
pub fn parse_hosts(text: &str) -> Result<JsValue, JsError> {
    install_panic_hook();
    let bad = |e: crate::source::NameError| JsError::new(&e.to_string());
    let mut out = Vec::new();
    for item in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if item.is_empty() {
            continue;
        }
        if item.starts_with('/') {
            out.push(xml::edit::HostSpec {
                transport: Some("unix".into()),
                socket: Some(item.into()),
                ..Default::default()
            });
            continue;
        }
        let uri = format!("tcp://{item}");
        let parts = crate::source::uri::split(&uri).map_err(bad)?;
        if parts.userinfo.is_some()
            || !parts.path.is_empty()
            || parts.query.is_some()
            || parts.host.is_empty()
        {
            return Err(JsError::new(&format!(
                "'{item}' is not host, host:port or [IPv6]:port"
            )));
        }
        let port = match parts.port {
            Some(p) => crate::source::parse_port(p).map_err(bad)?,
            None => None,
        };
        out.push(xml::edit::HostSpec {
            name: Some(parts.host.into()),
            port,
            ..Default::default()
        });
    }
    to_js(&out)
}

/// The network protocols a network layer may have (`<source protocol>`, the
/// schemes of backing URIs), in libvirt's order: the core's one list
/// (`source::protocol::network`), for the page's protocol choice.
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = networkProtocols)]
pub fn network_protocols() -> Array {
    crate::source::protocol::network()
        .map(JsValue::from_str)
        .collect()
}

/// The core's fix command that rewrites an image's backing name and format
/// in its header (`qemu-img rebase -u -f FORMAT -F BACKING_FORMAT -b BACKING
/// IMAGE`, every word shell-quoted: `diag::rebase_fix`), for a backing the
/// page proposes (a missing backing's replacement).
#[cfg(not(feature = "wasm-meta-only"))]
#[wasm_bindgen(js_name = rebaseCommand)]
pub fn rebase_command(format: &str, backing_format: &str, backing: &str, image: &str) -> String {
    crate::diag::rebase_fix(format, backing_format, backing, image)
}

/// `{ info }`, serialised straight to text: the facts' serde code is then
/// built for one serializer only (not also for `serde_json::Value`).
#[derive(serde::Serialize)]
struct InfoAnswer<'a> {
    info: &'a image::ImageInfo,
}

/// `{ need: [{offset, len}] }`: the reads a probe step asks for (a typed
/// answer, not a `serde_json::Value`: the value serializer stays out of the
/// wasm; so do the other answers below). Both modules answer it.
#[derive(serde::Serialize)]
struct NeedAnswer<'a> {
    need: &'a [Range],
}

/// `{ error }`: a probe that failed on the image's header.
#[derive(serde::Serialize)]
struct ErrorAnswer<'a> {
    error: &'a str,
}

#[cfg(not(feature = "wasm-no-meta"))]
/// `{ need, plan }`: the reads a metadata walk asks for next, and how far
/// it is (keys sorted, as every answer's).
#[derive(serde::Serialize)]
struct WalkNeedAnswer<'a> {
    need: &'a [Range],
    plan: &'a crate::meta::Plan,
}

#[cfg(not(feature = "wasm-no-meta"))]
/// `{ commit, map, measure, summary }`: what [`MetaChain::result`] returns.
#[derive(serde::Serialize)]
struct ChainResultAnswer<'a> {
    commit: &'a [u64],
    map: &'a [crate::meta::MapEntry],
    measure: &'a crate::meta::Measure,
    summary: &'a crate::meta::Summary,
}

// ---- The image-store audit (`audit`) ----

/// What [`Session::audit`] returns.
#[cfg(not(feature = "wasm-no-meta"))]
#[derive(serde::Serialize)]
struct AuditAnswer<'a> {
    report: &'a crate::audit::Audit,
    csv: String,
    script: String,
}

#[wasm_bindgen]
impl Session {
    #[cfg(not(feature = "wasm-no-meta"))]
    /// Audit the session's images with any number of domain XML inputs
    /// (`[{label, text}]`; one text may hold several `<domain>` documents).
    /// Returns `{ report, csv, script }`: the audit (JSON keys in README.md),
    /// the CSV (one row per image) and the fix script. A domain that is not
    /// well-formed is reported in `report['domain-errors']`, never thrown.
    pub fn audit(&mut self, domains: JsValue, options: JsValue) -> Result<JsValue, JsError> {
        let mut texts = Vec::new();
        if !(domains.is_undefined() || domains.is_null()) {
            let list: Array = domains
                .dyn_into()
                .map_err(|_| JsError::new("domains must be an array of {label, text}"))?;
            for (k, d) in list.iter().enumerate() {
                let field = |key: &str| js_sys::Reflect::get(&d, &key.into()).ok()?.as_string();
                let text = field("text")
                    .ok_or_else(|| JsError::new(&format!("domains[{k}].text must be a string")))?;
                let label = field("label").unwrap_or_else(|| format!("domain {}", k + 1));
                texts.push(crate::audit::DomainText { label, text });
            }
        }
        let domains = texts;
        // Options read with Reflect (a serde map of sizes costs the wasm
        // more): `sizes` by image filename, `deep-chain`.
        let get = |o: &JsValue, k: &str| {
            if o.is_object() {
                js_sys::Reflect::get(o, &k.into()).ok()
            } else {
                None
            }
        };
        let sizes = get(&options, "sizes").filter(JsValue::is_object);
        let build = self.build.clone();
        // The images move into the audit and come back with its forest
        // (built with the session's options: the same forest); not copied.
        let images = match self.forest.take() {
            Some(f) => f.images,
            None => std::mem::take(&mut self.images),
        };
        let facts: Vec<crate::audit::FileFacts> = images
            .iter()
            .map(|i| crate::audit::FileFacts {
                size: sizes
                    .as_ref()
                    .and_then(|s| get(s, &i.filename))
                    .and_then(|v| v.as_f64())
                    .filter(|s| *s >= 0.0)
                    .map(|s| s as u64),
                id: None,
            })
            .collect();
        let mut opts = crate::audit::AuditOptions {
            build,
            ..Default::default()
        };
        if let Some(d) = get(&options, "deep-chain").and_then(|v| v.as_f64()) {
            opts.deep_chain = d.max(0.0) as usize;
        }
        let a = crate::audit::audit(images, &facts, &domains, &opts);
        let answer = to_js(&AuditAnswer {
            csv: crate::audit::report::csv(&a),
            script: crate::audit::report::script(&a),
            report: &a,
        });
        self.forest = Some(a.forest);
        answer
    }
}

/// The page's arguments (the XML options, an edit, the backing choices)
/// read from plain JS objects by hand. Through serde-wasm-bindgen they
/// brought its deserializer, serde's derived readers and, through serde's
/// error messages, float formatting into the core module (about 40 KB of
/// the wasm, issue 18). The same rules as serde's derived readers: an
/// absent or `undefined` field takes its default, `null` is `None` where
/// the field is optional, other keys are ignored; an error names the field.
mod js_read {
    use js_sys::{Array, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    #[cfg(not(feature = "wasm-no-meta"))]
    use crate::xml::edit::{HostSpec, LayerSpec, Op, OpFields, SeclabelSpec};
    #[cfg(not(feature = "wasm-meta-only"))]
    use crate::xml::{Layout, Mode, Options};

    #[cfg(not(feature = "wasm-no-meta"))]
    /// The largest integer a JS number holds exactly (2^53 - 1).
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

    /// A JS object being read; `path` names it in errors (`layer.hosts[1]`).
    struct Obj<'a> {
        value: &'a JsValue,
        path: String,
    }

    impl<'a> Obj<'a> {
        /// `value` as an object (not null, not an array).
        fn new(value: &'a JsValue, path: String) -> Result<Self, String> {
            if !value.is_object() || Array::is_array(value) {
                return Err(if path.is_empty() {
                    "expected an object".to_string()
                } else {
                    format!("`{path}` must be an object")
                });
            }
            Ok(Obj { value, path })
        }

        /// The field's name with its object's path, for messages.
        fn name(&self, key: &str) -> String {
            if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            }
        }

        /// The field's value; `None` when absent or `undefined`.
        fn get(&self, key: &str) -> Result<Option<JsValue>, String> {
            let v = Reflect::get(self.value, &JsValue::from_str(key))
                .map_err(|_| format!("`{}` cannot be read", self.name(key)))?;
            Ok((!v.is_undefined()).then_some(v))
        }

        /// An optional field: absent, `undefined` or `null` is `None`.
        fn opt(&self, key: &str) -> Result<Option<JsValue>, String> {
            Ok(self.get(key)?.filter(|v| !v.is_null()))
        }

        fn string(&self, key: &str) -> Result<Option<String>, String> {
            self.opt(key)?
                .map(|v| {
                    v.as_string()
                        .ok_or_else(|| format!("`{}` must be a string", self.name(key)))
                })
                .transpose()
        }

        /// A field that is not optional: `null` is refused, as serde does.
        fn required_string(&self, key: &str) -> Result<Option<String>, String> {
            match self.get(key)? {
                None => Ok(None),
                Some(v) => v
                    .as_string()
                    .map(Some)
                    .ok_or_else(|| format!("`{}` must be a string", self.name(key))),
            }
        }

        #[cfg(not(feature = "wasm-no-meta"))]
        fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
            self.opt(key)?
                .map(|v| {
                    v.as_bool()
                        .ok_or_else(|| format!("`{}` must be true or false", self.name(key)))
                })
                .transpose()
        }

        #[cfg(not(feature = "wasm-meta-only"))]
        /// A field that is not optional (`null` refused), false when absent.
        fn flag(&self, key: &str) -> Result<bool, String> {
            match self.get(key)? {
                None => Ok(false),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| format!("`{}` must be true or false", self.name(key))),
            }
        }

        #[cfg(not(feature = "wasm-no-meta"))]
        /// A whole number from 0 to `max`.
        fn integer(&self, key: &str, max: u64) -> Result<Option<u64>, String> {
            self.opt(key)?
                .map(|v| {
                    v.as_f64()
                        .filter(|n| {
                            n.fract() == 0.0
                                && *n >= 0.0
                                && *n <= (max as f64).min(MAX_SAFE_INTEGER)
                        })
                        .map(|n| n as u64)
                        .ok_or_else(|| {
                            format!(
                                "`{}` must be a whole number from 0 to {max}",
                                self.name(key)
                            )
                        })
                })
                .transpose()
        }

        #[cfg(not(feature = "wasm-no-meta"))]
        fn index(&self, key: &str) -> Result<Option<usize>, String> {
            Ok(self.integer(key, usize::MAX as u64)?.map(|n| n as usize))
        }

        #[cfg(not(feature = "wasm-no-meta"))]
        /// A nested object.
        fn object(&self, key: &str) -> Result<Option<(JsValue, String)>, String> {
            Ok(self.opt(key)?.map(|v| (v, self.name(key))))
        }
    }

    #[cfg(not(feature = "wasm-meta-only"))]
    /// `value` when it is one of `names`' strings.
    fn one_of<T: Copy>(o: &Obj<'_>, key: &str, names: &[(&str, T)]) -> Result<Option<T>, String> {
        let Some(s) = o.required_string(key)? else {
            return Ok(None);
        };
        names
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| *v)
            .map(Some)
            .ok_or_else(|| {
                let list: Vec<String> = names.iter().map(|(n, _)| format!("`{n}`")).collect();
                format!(
                    "`{}` is `{s}`, expected one of {}",
                    o.name(key),
                    list.join(", ")
                )
            })
    }

    #[cfg(not(feature = "wasm-meta-only"))]
    /// [`Options`]: `{ layout, no-index, base-dir, mode, replace, wrap }`.
    pub(super) fn xml_options(value: &JsValue) -> Result<Options, String> {
        let o = Obj::new(value, String::new())?;
        let layout = [("nested", Layout::Nested), ("flat", Layout::Flat)];
        let mode = [("populate", Mode::Populate), ("validate", Mode::Validate)];
        Ok(Options {
            layout: one_of(&o, "layout", &layout)?.unwrap_or_default(),
            no_index: o.flag("no-index")?,
            base_dir: o.string("base-dir")?,
            mode: one_of(&o, "mode", &mode)?.unwrap_or_default(),
            replace: o.flag("replace")?,
            wrap: o.flag("wrap")?,
        })
    }

    #[cfg(not(feature = "wasm-no-meta"))]
    /// An edit, `{ op, disk, depth, layer | on | seclabel | model }`: read
    /// into the fields every operation has, then checked as the serde
    /// reader checks them (`Op::try_from`: the same messages).
    pub(super) fn edit_op(value: &JsValue) -> Result<Op, String> {
        let o = Obj::new(value, String::new())?;
        let layer = match o.object("layer")? {
            Some((v, path)) => Some(layer_spec(&Obj::new(&v, path)?)?),
            None => None,
        };
        let seclabel = match o.object("seclabel")? {
            Some((v, path)) => Some(seclabel_spec(&Obj::new(&v, path)?)?),
            None => None,
        };
        let fields = OpFields {
            op: o
                .required_string("op")?
                .ok_or_else(|| "missing field `op`".to_string())?,
            disk: o.index("disk")?,
            depth: o.index("depth")?,
            layer,
            on: o.boolean("on")?,
            seclabel,
            model: o.string("model")?,
        };
        Op::try_from(fields)
    }

    #[cfg(not(feature = "wasm-no-meta"))]
    fn layer_spec(o: &Obj<'_>) -> Result<LayerSpec, String> {
        let mut hosts = Vec::new();
        if let Some(list) = o.get("hosts")? {
            let list: Array = list
                .dyn_into()
                .map_err(|_| format!("`{}` must be an array", o.name("hosts")))?;
            for (k, h) in list.iter().enumerate() {
                let h = Obj::new(&h, format!("{}[{k}]", o.name("hosts")))?;
                hosts.push(HostSpec {
                    name: h.string("name")?,
                    port: h.integer("port", u16::MAX.into())?.map(|p| p as u16),
                    transport: h.string("transport")?,
                    socket: h.string("socket")?,
                });
            }
        }
        Ok(LayerSpec {
            kind: o.required_string("type")?.unwrap_or_default(),
            path: o.string("path")?,
            protocol: o.string("protocol")?,
            name: o.string("name")?,
            hosts,
            pool: o.string("pool")?,
            volume: o.string("volume")?,
            mode: o.string("mode")?,
            pci: o.string("pci")?,
            namespace: o.integer("namespace", u32::MAX.into())?.map(|n| n as u32),
            managed: o.boolean("managed")?,
            format: o.string("format")?,
        })
    }

    #[cfg(not(feature = "wasm-no-meta"))]
    fn seclabel_spec(o: &Obj<'_>) -> Result<SeclabelSpec, String> {
        Ok(SeclabelSpec {
            model: o.required_string("model")?.unwrap_or_default(),
            relabel: o.boolean("relabel")?,
            label: o.string("label")?,
        })
    }

    /// The backing choices, `[[image, backing image], ...]` (an array or
    /// any other iterable of pairs, such as a `Map`).
    pub(super) fn mapping(value: &JsValue) -> Result<Vec<(String, String)>, String> {
        let not_pairs = || "expected an array of [image, backing image] pairs".to_string();
        if !value.is_object() {
            return Err(not_pairs());
        }
        let list = js_sys::try_iter(value)
            .ok()
            .flatten()
            .ok_or_else(not_pairs)?;
        let mut out = Vec::new();
        for (k, pair) in list.enumerate() {
            let pair = pair.map_err(|_| not_pairs())?;
            let pair = pair.dyn_ref::<Array>().filter(|p| p.length() == 2);
            match pair.map(|p| (p.get(0).as_string(), p.get(1).as_string())) {
                Some((Some(a), Some(b))) => out.push((a, b)),
                _ => {
                    return Err(format!(
                        "[{k}] must be a pair of strings [image, backing image]"
                    ))
                }
            }
        }
        Ok(out)
    }
}

// ---- Metadata walks (issue 17): allocation, map, measure, check ----

/// One image's metadata walk: the header is probed first, then the tables
/// are read (`meta::Walk`). `step(chunks)` takes the bytes read for the
/// ranges the last answer asked for (`[offset, Uint8Array, askedLen]`; only
/// those: the walk keeps the header's earlier reads itself) and answers
/// `{ need, plan }` (read these next; `plan` says how many bytes in all,
/// exact or an upper bound) or `{ layer }` once done. A header or table
/// that cannot be read throws.
#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen]
pub struct MetaWalk {
    file_len: u64,
    opts: crate::meta::WalkOptions,
    reads: Reads,
    info: Option<Box<image::ImageInfo>>,
    walk: Option<crate::meta::Walk>,
    layer: Option<crate::meta::Layer>,
}

#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen]
impl MetaWalk {
    /// `options`: `{ check: bool }` (also read what `qemu-img check` reads).
    #[wasm_bindgen(constructor)]
    pub fn new(file_len: f64, options: JsValue) -> Result<MetaWalk, JsError> {
        install_panic_hook();
        let opts = walk_options(&options)?;
        Ok(MetaWalk {
            file_len: file_len.max(0.0) as u64,
            opts,
            reads: Reads::new(Some(file_len.max(0.0) as u64)),
            info: None,
            walk: None,
            layer: None,
        })
    }

    pub fn step(&mut self, chunks: Array) -> Result<JsValue, JsError> {
        let meta_err = |e: crate::meta::MetaError| JsError::new(&e.to_string());
        if self.info.is_none() {
            for (range, bytes) in meta_chunks(&chunks)? {
                self.reads.insert(range, bytes);
            }
            match image::probe(&self.reads) {
                Ok(Step::Need(r)) => return to_js(&NeedAnswer { need: &r }),
                Ok(Step::Done(info)) => {
                    let w = crate::meta::Walk::new(&info, self.file_len, self.opts)
                        .map_err(meta_err)?;
                    self.info = Some(info);
                    self.walk = Some(w);
                    self.reads = Reads::new(None);
                }
                Err(e) => return Err(JsError::new(&e.to_string())),
            }
        } else if let Some(w) = self.walk.as_mut() {
            for (range, bytes) in meta_chunks(&chunks)? {
                w.feed(range, &bytes).map_err(meta_err)?;
            }
        }
        let Some(w) = self.walk.as_mut() else {
            return Err(JsError::new("the walk is finished"));
        };
        let need = w.need().map_err(meta_err)?;
        if !need.is_empty() {
            let plan = w.plan();
            return to_js(&WalkNeedAnswer {
                need: &need,
                plan: &plan,
            });
        }
        let layer = self
            .walk
            .take()
            .map(|w| w.finish())
            .transpose()
            .map_err(meta_err)?;
        self.layer = layer;
        to_js(&LayerAnswer {
            layer: self.layer.as_ref(),
        })
    }

    /// Bytes the walk reads: `{ bytes-total, exact, bytes-read, file-len }`.
    pub fn plan(&self) -> Result<JsValue, JsError> {
        match &self.walk {
            Some(w) => to_js(&w.plan()),
            None => Ok(JsValue::NULL),
        }
    }
}

/// The walk's options, `{ check }`, read with `Reflect`: through
/// serde-wasm-bindgen they brought its deserializer and, through serde's
/// error messages, float formatting into the metadata module (issue 18).
#[cfg(not(feature = "wasm-no-meta"))]
fn walk_options(options: &JsValue) -> Result<crate::meta::WalkOptions, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(crate::meta::WalkOptions::default());
    }
    if !options.is_object() {
        return Err(JsError::new(
            "bad options: expected an object like { check: true }",
        ));
    }
    let check = js_sys::Reflect::get(options, &"check".into())
        .map_err(|_| JsError::new("bad options: check cannot be read"))?;
    let check = if check.is_undefined() {
        false
    } else {
        check
            .as_bool()
            .ok_or_else(|| JsError::new("bad options: check must be true or false"))?
    };
    Ok(crate::meta::WalkOptions { check })
}

/// `[offset, Uint8Array, askedLen]` chunks as (range asked, bytes).
#[cfg(not(feature = "wasm-no-meta"))]
fn meta_chunks(chunks: &Array) -> Result<Vec<(Range, Vec<u8>)>, JsError> {
    let mut out = Vec::new();
    for c in chunks.iter() {
        let c: Array = c
            .dyn_into()
            .map_err(|_| JsError::new("chunk must be [offset, bytes, askedLen]"))?;
        let offset = c
            .get(0)
            .as_f64()
            .ok_or_else(|| JsError::new("chunk offset must be a number"))?;
        let bytes: Uint8Array = c
            .get(1)
            .dyn_into()
            .map_err(|_| JsError::new("chunk bytes must be a Uint8Array"))?;
        let asked = c.get(2).as_f64().unwrap_or(f64::from(bytes.length()));
        out.push((Range::new(offset as u64, asked as u64), bytes.to_vec()));
    }
    Ok(out)
}

/// `{ layer }` of a finished walk.
#[cfg(not(feature = "wasm-no-meta"))]
#[derive(serde::Serialize)]
struct LayerAnswer<'a> {
    layer: Option<&'a crate::meta::Layer>,
}

/// The layers of one chain (top first, as added): its map, summary,
/// measure and commit estimates (`meta::chain_map`, `summary`, `measure`,
/// `commit_bytes`).
#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen]
#[derive(Default)]
pub struct MetaChain {
    layers: Vec<crate::meta::Layer>,
    bitmaps: Option<u64>,
}

#[cfg(not(feature = "wasm-no-meta"))]
#[wasm_bindgen]
impl MetaChain {
    #[wasm_bindgen(constructor)]
    pub fn new() -> MetaChain {
        install_panic_hook();
        MetaChain::default()
    }

    /// Add a finished walk's layer below the ones added before.
    pub fn push(&mut self, walk: &MetaWalk) -> Result<(), JsError> {
        let layer = walk
            .layer
            .clone()
            .ok_or_else(|| JsError::new("the walk is not finished"))?;
        if self.layers.is_empty() {
            self.bitmaps = walk.info.as_deref().and_then(crate::meta::bitmaps_size);
        }
        self.layers.push(layer);
        Ok(())
    }

    /// `{ map, summary, measure, commit }`: `map` as `qemu-img map
    /// --output=json`, `measure` as `qemu-img measure --output=json -O
    /// qcow2`, `commit[d]` the bytes `qemu-img commit` of layer `d` copies.
    pub fn result(&self) -> Result<JsValue, JsError> {
        let refs: Vec<&crate::meta::Layer> = self.layers.iter().collect();
        let map = crate::meta::chain_map(&refs);
        let summary = crate::meta::summary(refs.len(), &map);
        let vs = refs.first().map_or(0, |l| l.virtual_size);
        let measure = crate::meta::measure(vs, &map, self.bitmaps);
        let commit: Vec<u64> = refs
            .iter()
            .take(refs.len().saturating_sub(1))
            .map(|l| crate::meta::commit_bytes(l))
            .collect();
        to_js(&ChainResultAnswer {
            commit: &commit,
            map: &map,
            measure: &measure,
            summary: &summary,
        })
    }
}

/// The allocator of the page's wasm (issue 18): talc, in place of std's
/// dlmalloc — smaller in the module and faster on wasm's single thread.
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
