// The merged file tree of an image from its layers' listings: whiteouts, opaque markers and
// directories replaced by files, as overlayfs and `docker export` see them.
import { expect, test } from 'vitest';
import { FileTree, type EntryInfo } from '../../layers/index.ts';

const dir: EntryInfo = { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 };
const file: EntryInfo = { type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0 };
const link = (linkname: string): EntryInfo => ({ type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname });
const paths = (tree: FileTree): string[] => [...tree.entries()].map(([path, { layer }]) => `${path}@${layer}`).sort();

test('a whiteout removes a path and what is under it; the layer each path comes from is kept', () => {
  const tree = new FileTree();
  tree.apply([['a', dir], ['a/b', dir], ['a/b/c', file], ['a/d', file], ['e', file]]);
  tree.apply([['a', dir], ['a/.wh.b', file], ['e', file]]);
  expect(paths(tree)).toEqual(['a/d@0', 'a@1', 'e@1']);
});

test('an opaque marker hides everything below from lower layers, even under a directory the same layer declares again', () => {
  const tree = new FileTree();
  tree.apply([['a', dir], ['a/b', dir], ['a/b/old', file], ['a/gone', file], ['keep', file]]);
  tree.apply([['a', dir], ['a/b', dir], ['a/.wh..wh..opq', file], ['a/b/new', file]]);
  expect(paths(tree)).toEqual(['a/b/new@1', 'a/b@1', 'a@1', 'keep@0']);
});

test('a directory replaced by a file or a symlink takes its contents with it', () => {
  const tree = new FileTree();
  tree.apply([['lib', dir], ['lib/x', file], ['usr', dir], ['usr/lib', dir], ['usr/lib/y', file]]);
  tree.apply([['lib', link('usr/lib')]]);
  expect(paths(tree)).toEqual(['lib@1', 'usr/lib/y@0', 'usr/lib@0', 'usr@0']);
  expect(tree.realPath('/lib/y')).toBe('/usr/lib/y');
  expect(tree.get('lib/x')).toBeUndefined();
});

test('many whiteouts over a large tree remove exactly what they name', () => {
  const tree = new FileTree();
  const entries: [string, EntryInfo][] = [['d', dir]];
  for (let i = 0; i < 20_000; i++) entries.push([`d/f${i}`, file]);
  tree.apply(entries);
  tree.apply(Array.from({ length: 2_000 }, (_, i): [string, EntryInfo] => [`d/.wh.f${i * 10}`, file]));
  expect([...tree.entries()].length).toBe(1 + 20_000 - 2_000);
  expect(tree.get('d/f10')).toBeUndefined();
  expect(tree.get('d/f11')).toEqual(file);
});
