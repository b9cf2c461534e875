// How dropped and chosen files are named (www/reader.js, issue 13): one folder
// alone is the root its files are named from; several items keep their names,
// as from the folder they were dragged from. Paths here are the ones a drop
// or a folder picker gives (the dropped item's name first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rebase, filesFromList } from '../../www/reader.js';

const names = (list) => list.map((e) => [e.path, e.from ?? null]);
const drop = (...paths) => paths.map((path) => ({ file: null, path }));

test('one dropped folder: named from inside it, subfolders kept', () => {
  assert.deepEqual(names(rebase(drop('imgs/top.qcow2', 'imgs/base.qcow2', 'imgs/sub/a.qcow2'))), [
    ['top.qcow2', "the dropped folder 'imgs'"],
    ['base.qcow2', "the dropped folder 'imgs'"],
    ['sub/a.qcow2', "the dropped folder 'imgs'"],
  ]);
});

test('a domain XML or qemu-img JSON dropped with one folder does not count as a second item', () => {
  assert.deepEqual(names(rebase(drop('web1.xml', 'imgs/top.qcow2', 'chain.json'))), [
    ['web1.xml', null],
    ['top.qcow2', "the dropped folder 'imgs'"],
    ['chain.json', null],
  ]);
});

test('several folders, or folders and image files: every name kept', () => {
  assert.deepEqual(names(rebase(drop('vm1/disk.qcow2', 'vm2/disk.qcow2', 'alone.qcow2'))), [
    ['vm1/disk.qcow2', 'the folder the items were dropped from'],
    ['vm2/disk.qcow2', 'the folder the items were dropped from'],
    ['alone.qcow2', null],
  ]);
  assert.deepEqual(names(rebase(drop('imgs/top.qcow2', 'other.qcow2'))).map((x) => x[0]), ['imgs/top.qcow2', 'other.qcow2']);
});

test('files alone are their names; nothing dropped is nothing', () => {
  assert.deepEqual(names(rebase(drop('top.qcow2', 'base.qcow2'))), [['top.qcow2', null], ['base.qcow2', null]]);
  assert.deepEqual(rebase([]), []);
});

test('the folder picker (webkitRelativePath) is one folder; the file picker gives names', () => {
  const picked = [{ name: 'top.qcow2', webkitRelativePath: 'imgs/top.qcow2' }, { name: 'a.qcow2', webkitRelativePath: 'imgs/sub/a.qcow2' }];
  assert.deepEqual(filesFromList(picked).map((e) => e.path), ['top.qcow2', 'sub/a.qcow2']);
  assert.equal(filesFromList(picked)[0].file, picked[0]);
  assert.deepEqual(filesFromList([{ name: 'x.qcow2', webkitRelativePath: '' }]).map((e) => [e.path, e.from]), [['x.qcow2', undefined]]);
});
