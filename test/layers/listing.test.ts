// Layer listings: what a layer holds, kept in the store beside its blob so that a later build
// reads a small file instead of the whole blob; checked against the tar itself.
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { applyLayers, layerListing, layerTar, prune, readTar, Store, writeLayer, type Layer, type LayerEntry } from '../../layers/index.ts';

let dir: string;
let store: Store;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-listing-'));
  store = await Store.open(join(dir, 'store'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A layer of a directory, a file, a symlink, a hardlink and a whiteout; `tag` makes it unique. */
function sampleLayer(tag: string): Promise<Layer> {
  const content = Buffer.from(`content ${tag}\n`);
  const entries: LayerEntry[] = [
    { path: 'etc', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1 },
    { path: 'etc/app.conf', type: 'file', mode: 0o640, uid: 1000, gid: 1001, mtime: 2, size: content.length, source: () => Readable.from([content]) },
    { path: 'etc/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 3, linkname: 'app.conf' },
    { path: 'etc/hard', type: 'hardlink', mode: 0o640, uid: 1000, gid: 1001, mtime: 2, linkname: 'etc/app.conf' },
    { path: 'etc/.wh.old', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 },
  ];
  return writeLayer(store, entries);
}

/** The listing read straight from the layer's tar. */
async function fromTar(layer: Layer): Promise<[string, string, number, number, number, string | undefined][]> {
  const rows: [string, string, number, number, number, string | undefined][] = [];
  for await (const { header } of readTar(layerTar(store, layer))) rows.push([header.path.replace(/\/$/, ''), header.type, header.mode, header.uid, header.gid, header.type === 'symlink' ? header.linkname : undefined]);
  return rows;
}

const rowsOf = (listing: Awaited<ReturnType<typeof layerListing>>) => listing.map(([path, info]) => [path, info.type, info.mode, info.uid, info.gid, info.linkname]);

test('writing a layer keeps its listing beside the blob, matching the tar, whiteouts included', async () => {
  const layer = await sampleLayer('kept');
  expect(existsSync(store.listingPath(layer.digest))).toBe(true);
  const listing = await layerListing(store, layer);
  expect(rowsOf(listing)).toEqual(await fromTar(layer));
  expect(listing.map(([path]) => path)).toContain('etc/.wh.old');
  expect(JSON.parse(readFileSync(store.listingPath(layer.digest), 'utf8'))).toHaveLength(listing.length);
});

test('applying a layer keeps its listing when the store has none', async () => {
  const layer = await sampleLayer('applied');
  rmSync(store.listingPath(layer.digest));
  await applyLayers(store, [layer], join(dir, 'applied'), { asRoot: false });
  const kept = JSON.parse(readFileSync(store.listingPath(layer.digest), 'utf8')) as unknown[][];
  expect(kept.map((row) => row[0])).toEqual((await fromTar(layer)).map((row) => row[0]));
});

test('a kept listing that is not one is ignored: the blob is read again and the listing rewritten', async () => {
  const layer = await sampleLayer('garbage');
  writeFileSync(store.listingPath(layer.digest), '[["etc", "no such type", 1, 2, 3, 4]]');
  expect(rowsOf(await layerListing(store, layer))).toEqual(await fromTar(layer));
  expect(JSON.parse(readFileSync(store.listingPath(layer.digest), 'utf8'))[0][1]).toBe('directory');
});

test('prune removes a listing with its blob', async () => {
  const layer = await sampleLayer('pruned');
  expect(existsSync(store.listingPath(layer.digest))).toBe(true);
  // Older than prune's own start, so that it is not taken for a running build's.
  const past = new Date(Date.now() - 3600_000);
  utimesSync(store.blobPath(layer.digest), past, past);
  await prune(store, { all: true });
  expect(existsSync(store.blobPath(layer.digest))).toBe(false);
  expect(() => readFileSync(store.listingPath(layer.digest))).toThrow(/ENOENT/);
});
