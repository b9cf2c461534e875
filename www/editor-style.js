// @ts-check
// Styles of <backing-chain-editor>, applied as a constructable stylesheet
// (works under a CSP without 'unsafe-inline'). Theme it from outside with the
// --bce-* custom properties.
export const CSS = `
:host {
  --_bg: var(--bce-bg, #ffffff);
  --_surface: var(--bce-surface, #f5f6f8);
  --_fg: var(--bce-fg, #1b1f24);
  --_muted: var(--bce-muted, #5a6270);
  --_border: var(--bce-border, #c9ced6);
  --_accent: var(--bce-accent, #0b5cad);
  --_accent-fg: var(--bce-accent-fg, #ffffff);
  --_error: var(--bce-error, #b3261e);
  --_warning: var(--bce-warning, #8a5a00);
  --_info: var(--bce-info, #245f9e);
  --_focus: var(--bce-focus, #1a73e8);
  --_sel: var(--bce-selected, #dce9f8);
  --_x-tag: var(--bce-xml-tag, #0b5cad);
  --_x-attr: var(--bce-xml-attr, #7a3e9d);
  --_x-value: var(--bce-xml-value, #1d7a3a);
  --_x-comment: var(--bce-xml-comment, #6b7280);
  --_radius: var(--bce-radius, 6px);
  --_font: var(--bce-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  --_mono: var(--bce-mono, ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace);
  display: block;
  color: var(--_fg);
  background: var(--_bg);
  font: 14px/1.45 var(--_font);
  container-type: inline-size;
}
@media (prefers-color-scheme: dark) {
  :host {
    --_bg: var(--bce-bg, #15181d);
    --_surface: var(--bce-surface, #1e232a);
    --_fg: var(--bce-fg, #e6e9ee);
    --_muted: var(--bce-muted, #a2aab6);
    --_border: var(--bce-border, #3a424e);
    --_accent: var(--bce-accent, #6cb0ff);
    --_accent-fg: var(--bce-accent-fg, #0b1220);
    --_error: var(--bce-error, #ff8a80);
    --_warning: var(--bce-warning, #f0c060);
    --_info: var(--bce-info, #8cc4ff);
    --_focus: var(--bce-focus, #8ab4f8);
    --_sel: var(--bce-selected, #23364f);
    --_x-tag: var(--bce-xml-tag, #6cb0ff);
    --_x-attr: var(--bce-xml-attr, #d4a8f0);
    --_x-value: var(--bce-xml-value, #8fd19e);
    --_x-comment: var(--bce-xml-comment, #8b95a3);
  }
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
button, input, textarea, select { font: inherit; color: inherit; }
button {
  background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius);
  padding: .3rem .7rem; cursor: pointer; min-height: 2rem;
}
button.primary { background: var(--_accent); color: var(--_accent-fg); border-color: var(--_accent); }
button:hover:not(:disabled) { border-color: var(--_accent); }
button:disabled { opacity: .5; cursor: default; }
:focus-visible { outline: 2px solid var(--_focus); outline-offset: 2px; }
.offscreen { position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
section { background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .75rem; min-width: 0; }
.root { display: grid; gap: .75rem; }
.status:empty { display: none; }
.status { padding: .5rem .75rem; border-radius: var(--_radius); border: 1px solid var(--_border); }
.status.error { border-color: var(--_error); color: var(--_error); background: color-mix(in srgb, var(--_error) 8%, var(--_bg)); }
.status .detail { color: var(--_fg); display: block; margin-top: .25rem; }
.drop {
  border: 2px dashed var(--_border); text-align: center; padding: 1.25rem .75rem;
  display: grid; gap: .5rem; justify-items: center;
}
.drop.over { border-color: var(--_accent); background: color-mix(in srgb, var(--_accent) 10%, var(--_surface)); }
.drop p { margin: 0; }
.drop .hint { color: var(--_muted); font-size: .9em; }
.buttons { display: flex; flex-wrap: wrap; gap: .5rem; justify-content: center; align-items: center; }
.progress { display: flex; gap: .5rem; align-items: center; justify-content: center; }
.progress[hidden] { display: none; }
.main { display: grid; gap: .75rem; grid-template-columns: minmax(0, 1fr); }
@container (min-width: 900px) {
  .main { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
}
.empty { color: var(--_muted); margin: .25rem 0; }
ul[role=tree] { list-style: none; margin: 0; padding: 0; }
li[role=treeitem] { margin: .15rem 0 .15rem calc((var(--level, 1) - 1) * 1.1rem); }
li[role=treeitem][aria-level]:not([aria-level="1"]) { border-left: 1px solid var(--_border); padding-left: .4rem; }
/* Thousands of images: the browser skips style, layout and paint of chains,
   disks and diagnostics that are off screen (they stay in the DOM, the
   accessibility tree and find-in-page). */
.many ul[role=tree] > li[role=treeitem], .many .chains .disk, .many .diags li { content-visibility: auto; contain-intrinsic-size: auto 6rem; }
li[role=treeitem]:focus { outline: none; }
li[role=treeitem]:focus-visible > .row { outline: 2px solid var(--_focus); outline-offset: 1px; }
.row { display: flex; flex-wrap: wrap; gap: .2rem .5rem; align-items: baseline; padding: .2rem .35rem; border-radius: 4px; cursor: pointer; }
li[aria-selected=true] > .row { background: var(--_sel); }
.twisty { width: 1rem; display: inline-block; color: var(--_muted); flex: none; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.badge { font-size: .8em; border: 1px solid var(--_border); border-radius: 999px; padding: 0 .45rem; color: var(--_muted); white-space: nowrap; }
.badge.fmt { color: var(--_accent); border-color: var(--_accent); }
.badge.error { color: var(--_error); border-color: var(--_error); }
.badge.warning { color: var(--_warning); border-color: var(--_warning); }
.badge.info { color: var(--_info); border-color: var(--_info); }
button.badge { min-height: 0; background: none; cursor: pointer; font: inherit; font-size: .8em; }
button.badge[aria-expanded=true]::after { content: " ▴"; }
button.badge[aria-expanded=false]::after { content: " ▾"; }
.identity { font-family: var(--_mono); font-size: .8em; overflow-wrap: anywhere; }
.overlays, .datafile { margin: .2rem 0 .2rem 1.6rem; font-size: .9em; overflow-wrap: anywhere; }
.seclabel { font-size: .85em; }
.field[hidden], .chains [hidden] { display: none; }
@container (max-width: 40rem) {
  table.chain thead { display: none; }
  table.chain, table.chain tbody, table.chain tr, table.chain td { display: block; width: 100%; }
  table.chain tr { border-bottom: 1px solid var(--_border); padding: .3rem 0; }
  table.chain td { border: 0; padding: .1rem .2rem; }
  table.chain td[data-label]::before { content: attr(data-label) ": "; color: var(--_muted); font-family: var(--_font); font-weight: normal; }
  table.chain td.differs[data-label]::before { content: "≠ " attr(data-label) ": "; }
  table.chain td.actions { white-space: normal; }
}
.meta { color: var(--_muted); font-size: .9em; }
.diag { display: grid; grid-template-columns: auto minmax(0, 1fr); gap: .1rem .4rem; margin: .2rem 0 .2rem 1.5rem; font-size: .92em; }
.diag .sev { font-weight: 700; }
.diag.error .sev { color: var(--_error); }
.diag.warning .sev { color: var(--_warning); }
.diag.info .sev { color: var(--_info); }
.diag .msg { overflow-wrap: anywhere; }
.fix { grid-column: 2; display: flex; gap: .4rem; align-items: center; flex-wrap: wrap; }
.fix code { font-family: var(--_mono); font-size: .9em; background: var(--_bg); border: 1px solid var(--_border); border-radius: 4px; padding: .1rem .3rem; overflow-wrap: anywhere; }
.fix button { min-height: 1.6rem; padding: 0 .5rem; font-size: .85em; }
.details { margin-top: .75rem; border-top: 1px solid var(--_border); padding-top: .5rem; }
.details dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .15rem .75rem; margin: 0; }
.details dt { color: var(--_muted); }
.details dd { margin: 0; overflow-wrap: anywhere; }
.details h3 { font-size: .95rem; margin: 0 0 .4rem; overflow-wrap: anywhere; }
.toolbar { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.toolbar .spacer { flex: 1; }
fieldset.seg { border: 0; padding: 0; margin: 0; display: inline-flex; }
fieldset.seg label { border: 1px solid var(--_border); padding: .25rem .6rem; cursor: pointer; background: var(--_bg); }
fieldset.seg label:first-of-type { border-radius: var(--_radius) 0 0 var(--_radius); }
fieldset.seg label:last-of-type { border-radius: 0 var(--_radius) var(--_radius) 0; border-left: 0; }
fieldset.seg input { position: absolute; opacity: 0; width: 1px; height: 1px; }
fieldset.seg input:checked + span { color: var(--_accent); font-weight: 600; }
fieldset.seg label:has(input:focus-visible) { outline: 2px solid var(--_focus); }
.note { font-size: .9em; color: var(--_warning); margin: 0 0 .5rem; }
.note[hidden] { display: none; }
pre.xml { margin: 0; padding: .6rem; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); overflow: auto; max-height: 32rem; font: 12.5px/1.5 var(--_mono); tab-size: 2; }
/* Pieces of a large XML: as wide as their lines (paint containment clips). */
pre.xml .piece { display: block; width: max-content; min-width: 100%; content-visibility: auto; contain-intrinsic-block-size: auto calc(var(--lines) * 1.5em); }
.x-tag { color: var(--_x-tag); }
.x-attr { color: var(--_x-attr); }
.x-value { color: var(--_x-value); }
.x-comment, .x-meta { color: var(--_x-comment); font-style: italic; }
.x-punct { color: var(--_muted); }
.domain textarea { width: 100%; min-height: 10rem; resize: vertical; font: 12.5px/1.5 var(--_mono); background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .5rem; }
.domain textarea[aria-invalid=true] { border-color: var(--_error); }
.field { display: flex; flex-wrap: wrap; gap: .4rem .6rem; align-items: center; margin-top: .5rem; }
.field input[type=text] { flex: 1 1 14rem; min-width: 0; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .3rem .5rem; font-family: var(--_mono); }
.parse { margin: .4rem 0 0; font-size: .92em; }
.parse.error { color: var(--_error); }
.parse.ok { color: var(--_muted); }
.diags ul { list-style: none; margin: 0; padding: 0; display: grid; gap: .3rem; }
.diags li button { all: unset; cursor: pointer; display: grid; grid-template-columns: auto minmax(0, 1fr); gap: .4rem; width: 100%; padding: .2rem .3rem; border-radius: 4px; }
.diags li button:focus-visible { outline: 2px solid var(--_focus); }
.diags li button:hover { background: var(--_sel); }
.diags .sev.error { color: var(--_error); }
.diags .sev.warning { color: var(--_warning); }
.diags .sev.info { color: var(--_info); }
.diags li.pending { min-height: 100rem; }
.diags .code { font-family: var(--_mono); font-size: .85em; color: var(--_muted); }
.linkish { all: unset; cursor: pointer; color: var(--_accent); text-decoration: underline; overflow-wrap: anywhere; }
.linkish:focus-visible { outline: 2px solid var(--_focus); }
.chains .disk { margin-top: .6rem; }
.chains .disk-group:empty { min-height: 320rem; }
.chains h3 { font-size: .95rem; margin: .2rem 0 .4rem; display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; overflow-wrap: anywhere; }
.chains h4 { font-size: .9rem; margin: 0 0 .3rem; }
.chains .table-wrap { overflow-x: auto; }
table.chain { border-collapse: collapse; width: 100%; font-size: .92em; }
table.chain th, table.chain td { text-align: left; vertical-align: top; padding: .25rem .4rem; border-bottom: 1px solid var(--_border); overflow-wrap: anywhere; }
table.chain th { color: var(--_muted); font-weight: 600; }
table.chain td[data-field=place], table.chain td.images { font-family: var(--_mono); font-size: .92em; }
table.chain td.actions { white-space: nowrap; }
table.chain td.actions button { min-height: 1.7rem; padding: .1rem .45rem; margin: 0 .2rem .2rem 0; }
.edit-error { color: var(--_error); margin: .4rem 0 0; }
.differs { color: var(--_error); font-weight: 600; }
td.differs::before, label.differs::before { content: "≠ "; }
tr.row-differs { background: color-mix(in srgb, var(--_error) 8%, transparent); }
.chain-foot { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; margin-top: .4rem; }
form.edit { border: 1px solid var(--_border); border-radius: var(--_radius); padding: .5rem .6rem; background: var(--_bg); margin: .3rem 0; }
form.edit select { background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .25rem .4rem; }
.field select { max-width: 100%; }
.summary .counts { margin: 0; display: flex; flex-wrap: wrap; gap: .2rem .5rem; align-items: baseline; font-weight: 600; }
.summary .count.error { color: var(--_error); }
.summary .count.warning { color: var(--_warning); }
.summary .count.info { color: var(--_info); }
.summary .count.none { color: var(--_muted); font-weight: normal; }
.summary .meta { font-weight: normal; }
.summary .first { list-style: none; margin: .3rem 0 0; padding: 0; display: grid; gap: .15rem; }
.summary .first .linkish { color: var(--_fg); text-decoration: none; }
.summary .first .linkish:hover { text-decoration: underline; }
.summary .sev.error { color: var(--_error); }
.summary .sev.warning { color: var(--_warning); }
.drop.compact { padding: .4rem .75rem; display: flex; flex-wrap: wrap; gap: .4rem .75rem; align-items: center; justify-content: flex-start; text-align: left; border-width: 1px; }
.drop.compact .lead strong { font-weight: 600; }
.drop.compact .hint:not(:empty) { font-size: .85em; }
.drop.compact > .hint:first-of-type { display: none; }
.drop.compact .buttons { justify-content: flex-start; }
.drop .field.base { margin: 0; justify-content: center; }
.drop.compact .field.base { justify-content: flex-start; flex: 1 1 100%; }
.field.base .meta.warn { color: var(--_warning); }
.filter { display: flex; flex-wrap: wrap; gap: .4rem .5rem; align-items: center; margin-bottom: .5rem; }
.filter[hidden] { display: none; }
.filter input { flex: 1 1 12rem; min-width: 0; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .3rem .5rem; }
.filter button { min-height: 1.8rem; padding: .1rem .5rem; font-size: .9em; }
.badge.disk { color: var(--_fg); border-color: var(--_fg); font-family: var(--_mono); }
.ref > .row { color: var(--_muted); }
.ref > .row .name { font-weight: normal; }
li.has-error > .row .name { color: var(--_error); }
.size[title] { cursor: help; }
.diag .code { font-family: var(--_mono); font-size: .78em; color: var(--_muted); }
.diag .how { grid-column: 2; font-size: .95em; }
li[role=treeitem] > .end { margin: .1rem 0 .2rem 1.6rem; color: var(--_muted); font-style: italic; font-size: .92em; }
li[role=treeitem] > .end.bad { color: var(--_error); font-style: normal; }
.menu-wrap { position: relative; display: inline-block; }
button.kebab { min-height: 1.8rem; padding: 0 .55rem; font-weight: 700; }
ul.menu { position: absolute; right: 0; z-index: 5; list-style: none; margin: .2rem 0 0; padding: .25rem 0; min-width: 11rem; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); box-shadow: 0 4px 14px rgb(0 0 0 / .18); }
ul.menu[hidden] { display: none; }
ul.menu [role=menuitem] { padding: .3rem .8rem; cursor: pointer; white-space: nowrap; }
ul.menu [role=menuitem]:hover, ul.menu [role=menuitem]:focus { background: var(--_sel); outline: none; }
ul.menu [role=menuitem]:focus-visible { outline: 2px solid var(--_focus); outline-offset: -2px; }
.combo { position: relative; flex: 1 1 16rem; min-width: 0; }
.combo input { width: 100%; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .3rem .5rem; font-family: var(--_mono); }
ul.listbox { position: absolute; left: 0; right: 0; z-index: 5; list-style: none; margin: .2rem 0 0; padding: .2rem 0; max-height: 16rem; overflow: auto; background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); box-shadow: 0 4px 14px rgb(0 0 0 / .18); }
ul.listbox[hidden] { display: none; }
ul.listbox [role=option] { padding: .2rem .6rem; cursor: pointer; font-family: var(--_mono); font-size: .92em; overflow-wrap: anywhere; }
ul.listbox [role=option][aria-selected=true] { background: var(--_sel); outline: 1px solid var(--_focus); }
ul.listbox [role=option].current { font-weight: 700; }
ul.listbox .more { padding: .2rem .6rem; }
.changed { animation: bce-flash 2s ease-out; }
@keyframes bce-flash { from { background: color-mix(in srgb, var(--_accent) 30%, transparent); } to { background: transparent; } }
.edit-tools { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
.undone { margin: 0; font-size: .9em; }
.undone:empty { display: none; }
.xml-diff .sev { color: var(--_warning); }
.alloc { margin-top: .8rem; border-top: 1px solid var(--_border); padding-top: .5rem; }
.alloc h4, .alloc h5 { margin: .3rem 0; }
.alloc-progress { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.alloc-layers { list-style: none; margin: 0; padding: 0; }
.alloc-layers > li { margin: .3rem 0; }
.alloc-layers .name { font-family: var(--_mono); overflow-wrap: anywhere; }
.abar, .mapstrip { display: flex; height: .9rem; border: 1px solid var(--_border); border-radius: 3px; overflow: hidden; background: var(--_surface); margin: .15rem 0; }
.abar > span, .mapstrip > span { display: block; height: 100%; min-width: 0; }
.a-data { background: var(--_accent); }
.a-compressed { background: var(--_x-attr); }
.a-zero { background: repeating-linear-gradient(45deg, var(--_muted) 0 2px, transparent 2px 5px); }
.a-unallocated { background: transparent; }
.legend .key { display: inline-block; width: .8rem; height: .8rem; border: 1px solid var(--_border); vertical-align: middle; }
.d0 { background: var(--bce-layer-0, #0b5cad); }
.d1 { background: var(--bce-layer-1, #1d7a3a); }
.d2 { background: var(--bce-layer-2, #c06a00); }
.d3 { background: var(--bce-layer-3, #8e2c6b); }
.d4, .d5 { background: var(--bce-layer-4, #4d5866); }
.mapstrip .zero { opacity: .45; }
.mapstrip .none, .legend .none { background: transparent; }
.alloc .estimates dd { margin-left: 1rem; }
.alloc .problems { margin: .2rem 0 .2rem 1rem; font-size: .92em; }
:host([readonly]) .drop, :host([readonly]) .edit-only { display: none; }
`;
