// @ts-check
// The page: the same <backing-chain-editor> element embedders use.
import { register } from './backing-chain-editor.js';

register();
document.getElementById('boot')?.remove();

// The page's own shortcut: "/" anywhere outside a text field focuses the
// tree's filter (the element handles "/" only when focus is inside it).
const editor = /** @type {import('./backing-chain-editor').BackingChainEditor | null} */ (document.querySelector('backing-chain-editor'));
document.addEventListener('keydown', (ev) => {
  if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
  const t = ev.composedPath()[0];
  if (t instanceof HTMLTextAreaElement || t instanceof HTMLInputElement || t instanceof HTMLSelectElement || (t instanceof HTMLElement && t.isContentEditable)) return;
  if (editor?.focusFilter()) ev.preventDefault();
});
