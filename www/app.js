// @ts-check
// The page: the same <backing-chain-editor> element embedders use.
import { register } from './backing-chain-editor.js';

register();
document.getElementById('boot')?.remove();
