// Hostile layers: every way out of the root is refused, and nothing is written outside.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { applyLayers, KeptPaths, MediaTypes, Store, UnsafeLayerError, writeLayer, type Layer, type LayerEntry } from '../../layers/index.ts';
import { tarChunks } from '../../layers/layer.ts';
import { encodeHeader, END_OF_ARCHIVE } from '../../layers/tar.ts';
import { layerInOrder as layerInOrderIn } from '../support/layers.ts';

let dir: string;
let store: Store;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-'));
  store = await Store.open(join(dir, 'store'));
});
// Read-only directories the tests leave are opened first: the tests run without root.
afterAll(() => execFileSync('sh', ['-c', 'chmod -R u+rwX "$0" && rm -rf "$0"', dir]));
/** Files get the layer's owners only as root. */
const asRoot = process.getuid!() === 0;

const file = (path: string): LayerEntry => ({ path, type: 'file', mode: 0o644, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, size: 4, source: () => Readable.from([Buffer.from('evil')]) });
const symlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'symlink', mode: 0o777, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, linkname });
const hardlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'hardlink', mode: 0o644, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, linkname });
const directory = (path: string, mode = 0o755): LayerEntry => ({ path, type: 'directory', mode, uid: process.getuid!(), gid: process.getgid!(), mtime: 0 });
const layerInOrder = (entries: LayerEntry[]): Promise<Layer> => layerInOrderIn(store, entries);

/** Every path under `dir` with its type, mode, size and content: what an escape would change. */
function treeState(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort().map((rel) => {
    const info = lstatSync(join(dir, rel));
    return `${rel} ${info.mode.toString(8)} ${info.size} ${info.mtimeMs} ${info.isFile() ? readFileSync(join(dir, rel), 'utf8') : ''}`;
  });
}

/** A root to apply layers to beside a sentinel tree outside it; `untouched()` says whether the sentinel is as it was. */
function rootBesideSentinel(): { root: string; outside: string; untouched: () => void } {
  const sandbox = mkdtempSync(join(dir, 'sandbox-'));
  const outside = join(sandbox, 'outside');
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'file'), 'sentinel');
  writeFileSync(join(outside, 'sub', 'file'), 'sentinel');
  chmodSync(join(outside, 'file'), 0o640);
  chmodSync(join(outside, 'sub'), 0o750);
  const before = treeState(outside);
  return { root: join(sandbox, 'root'), outside, untouched: () => expect(treeState(outside)).toEqual(before) };
}

const cases: [string, LayerEntry[], string][] = [
  ['dot-dot', [file('../outside/escaped')], 'it would land outside the root (..)'],
  ['dot-dot inside', [file('a/../../outside/escaped')], 'it would land outside the root (..)'],
  ['absolute', [file('/outside/escaped')], 'absolute paths are not allowed'],
  ['through a symlink', [symlink('link', '../outside'), file('link/escaped')], 'its path goes through the symlink /link'],
  ['through an absolute symlink', [symlink('link', `${'/'}tmp`), file('link/escaped')], 'its path goes through the symlink /link'],
  ['hardlink to outside', [hardlink('h', '../outside/target')], 'it would land outside the root (..)'],
  ['hardlink through a symlink', [symlink('l', '../outside'), hardlink('z', 'l/target')], 'goes through the symlink /l'],
  ['whiteout of the root itself', [file('.wh.')], 'refusing layer entry ".wh.": a whiteout must name what it deletes'],
  ['whiteout of "."', [file('a/.wh..')], 'refusing layer entry "a/.wh..": a whiteout must name what it deletes'],
  ['whiteout of ".."', [file('a/.wh...')], 'refusing layer entry "a/.wh...": a whiteout must name what it deletes'],
];

test.each(cases)('a layer with an entry %s is refused and the host is untouched', async (_name, entries, message) => {
  const outside = join(dir, 'outside');
  mkdirSync(outside, { recursive: true });
  execFileSync('sh', ['-c', `echo keep > ${outside}/target`]);
  const root = join(dir, 'root', String(Math.random()).slice(2));
  // Layers hold entries in path order: each symlink sorts before the entry that goes through it.
  const layer = await writeLayer(store, entries);
  await expect(applyLayers(store, [layer], root, { asRoot })).rejects.toThrow(UnsafeLayerError);
  await expect(applyLayers(store, [layer], root, { asRoot })).rejects.toThrow(message);
  expect(readdirSync(outside)).toEqual(['target']);
  expect(existsSync('/tmp/escaped')).toBe(false);
  expect(existsSync(root)).toBe(true);
});

test('a parent a layer implies but does not hold shows as the directories below have it (an overlay lower dir of its own)', async () => {
  const lower = join(dir, 'lower');
  mkdirSync(join(lower, 'opt', 'conda'), { recursive: true });
  chmodSync(join(lower, 'opt', 'conda'), 0o2770);
  utimesSync(join(lower, 'opt', 'conda'), 1_600_000_000, 1_600_000_000);
  const upper = join(dir, 'upper');
  mkdirSync(upper);
  const layer = await writeLayer(store, [file('opt/conda/.condarc'), file('srv/app/x')]);
  const root = join(dir, 'layer-root');
  await applyLayers(store, [layer], root, { asRoot, below: [upper, lower] });
  const conda = statSync(join(root, 'opt', 'conda'));
  expect([conda.mode & 0o7777, conda.mtimeMs / 1000]).toEqual([0o2770, 1_600_000_000]);
  expect(statSync(join(root, 'srv', 'app')).mode & 0o7777).toBe(0o755);
  const alone = join(dir, 'layer-alone');
  await applyLayers(store, [layer], alone, { asRoot });
  expect(statSync(join(alone, 'opt', 'conda')).mode & 0o7777).toBe(0o755);
});

describe('entries replaced within one layer never lead outside the root', () => {
  test('an opaque marker that removed a directory leaves nothing trusted below it: a symlink made there later is refused as a parent', async () => {
    const { root, outside, untouched } = rootBesideSentinel();
    const lower = await writeLayer(store, [directory('p'), directory('p/a'), file('p/a/old')]);
    // p/a is checked as a parent, the opaque marker removes it, a symlink takes its place, and a
    // file is written "into" it.
    const hostile = await layerInOrder([file('p/a/x'), file('p/.wh..wh..opq'), symlink('p/a', outside), file('p/a/pwned')]);
    await expect(applyLayers(store, [lower, hostile], root, { asRoot })).rejects.toThrow('refusing layer entry "p/a/pwned": its path goes through the symlink /p/a');
    expect(existsSync(join(outside, 'pwned'))).toBe(false);
    untouched();
  });

  test('a whiteout and a replacement by a file forget the directories below what they removed', async () => {
    const { root, outside, untouched } = rootBesideSentinel();
    const viaWhiteout = await layerInOrder([file('w/d/x'), file('w/.wh.d'), symlink('w/d', outside), file('w/d/pwned')]);
    await expect(applyLayers(store, [viaWhiteout], root, { asRoot })).rejects.toThrow('goes through the symlink /w/d');
    const viaReplacement = await layerInOrder([file('r/d/x'), file('r'), directory('r'), symlink('r/d', outside), file('r/d/pwned')]);
    await expect(applyLayers(store, [viaReplacement], join(root, '2'), { asRoot })).rejects.toThrow('goes through the symlink /r/d');
    untouched();
  });

  test('a directory replaced by a symlink after it was made: its mode, owner and time go nowhere', async () => {
    const { root, outside, untouched } = rootBesideSentinel();
    const layer = await layerInOrder([directory('d3', 0o777), symlink('d3', join(outside, 'file')), directory('d4', 0o777), symlink('d4', join(outside, 'sub'))]);
    await applyLayers(store, [layer], root, { asRoot });
    expect(lstatSync(join(root, 'd3')).isSymbolicLink()).toBe(true);
    expect(statSync(join(outside, 'file')).mode & 0o7777).toBe(0o640);
    expect(statSync(join(outside, 'sub')).mode & 0o7777).toBe(0o750);
    untouched();
  });

  test('extended attributes are set only where their entry still is, never through a symlink that replaced a parent', async () => {
    const { root, outside, untouched } = rootBesideSentinel();
    const withXattr = { ...file('x/file'), xattrs: { 'user.origin': Buffer.from('layer') } };
    const layer = await layerInOrder([withXattr, symlink('x', outside), { ...file('kept'), xattrs: { 'user.origin': Buffer.from('kept') } }]);
    const set: string[] = [];
    await applyLayers(store, [layer], root, { asRoot, setXattrs: async (records) => void set.push(...records.map(([path, name]) => `${realpathSync(path)} ${name}`)) });
    expect(set).toEqual([`${realpathSync(root)}/kept user.origin`]);
    untouched();
  });

  test('a hardlink to a path kept in place (hoist\'s own files in a container) is refused', async () => {
    const root = mkdtempSync(join(dir, 'kept-'));
    mkdirSync(join(root, 'hoist'));
    writeFileSync(join(root, 'hoist', 'main.ts'), 'hoist');
    const keep = new KeptPaths([join('/', 'hoist')]);
    const layer = await layerInOrder([hardlink('h', 'hoist/main.ts')]);
    await expect(applyLayers(store, [layer], root, { asRoot, keep })).rejects.toThrow('its hardlink target "hoist/main.ts" is not a file inside the layer root');
    const lower = await layerInOrder([directory('p'), directory('p/a')]);
    const opaque = await layerInOrder([file('p/a/x'), file('p/.wh..wh..opq'), symlink('p/a', '/hoist'), file('p/a/main.ts'), file('.wh..wh..opq')]);
    await expect(applyLayers(store, [lower, opaque], root, { asRoot, keep })).rejects.toThrow('goes through the symlink /p/a');
    expect(readFileSync(join(root, 'hoist', 'main.ts'), 'utf8')).toBe('hoist');
  });
});

describe('whiteouts, as umoci applies them', () => {
  test('a whiteout or opaque marker where nothing is makes nothing', async () => {
    const root = mkdtempSync(join(dir, 'nothing-'));
    await applyLayers(store, [await layerInOrder([file('a/.wh.b'), file('b/a/.wh..wh..opq')])], root, { asRoot });
    expect(readdirSync(root)).toEqual([]);
  });

  test('a layer\'s whiteouts hide what lower layers have, never what the layer itself made, however deep', async () => {
    const root = mkdtempSync(join(dir, 'own-'));
    const lower = await layerInOrder([file('a/a/b'), file('a/old'), file('b/old'), file('c/old')]);
    const upper = await layerInOrder([file('a/b'), hardlink('a/a/a', 'a/a/b'), file('b/b/new'), file('a/.wh..wh..opq'), file('.wh.b'), file('.wh.c')]);
    await applyLayers(store, [lower, upper], root, { asRoot });
    const listed = readdirSync(root, { recursive: true, encoding: 'utf8' }).sort();
    expect(listed).toEqual(['a', 'a/a', 'a/a/a', 'a/b', 'b', 'b/b', 'b/b/new']);
  });
});

test('without root, a directory a lower layer left read-only is opened for the moment and set back, as umoci does', async () => {
  const root = mkdtempSync(join(dir, 'read-only-'));
  const lower = await layerInOrder([directory('usr', 0o555), directory('usr/bin', 0o555), file('usr/bin/old'), directory('gone', 0o500), directory('gone/deep', 0o000)]);
  const upper = await layerInOrder([file('usr/bin/new'), directory('usr', 0o555), file('.wh.gone')]);
  await applyLayers(store, [lower, upper], root, { asRoot: false });
  expect(readdirSync(join(root, 'usr', 'bin')).sort()).toEqual(['new', 'old']);
  expect([statSync(join(root, 'usr')).mode & 0o7777, statSync(join(root, 'usr', 'bin')).mode & 0o7777]).toEqual([0o555, 0o555]);
  expect(existsSync(join(root, 'gone'))).toBe(false);
});

describe('headers a hostile tar makes too big or malformed', () => {
  /** A layer of one raw header block with `size` bytes declared and as many following. */
  async function layerWithMeta(flag: 'x' | 'L', size: number): Promise<Layer> {
    const block = encodeHeader({ path: 'meta', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size });
    block.write(flag, 156, 1, 'ascii');
    let sum = 0;
    block.write('        ', 148, 8, 'ascii');
    for (const byte of block) sum += byte;
    block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
    async function* bytes(): AsyncGenerator<Buffer> {
      yield block;
      const piece = Buffer.alloc(1 << 20, 0x61);
      for (let left = size; left > 0; left -= piece.length) yield piece.subarray(0, Math.min(left, piece.length));
      yield END_OF_ARCHIVE;
    }
    const { digest, size: blobSize } = await store.writeBlob(bytes());
    return { mediaType: MediaTypes.ociLayer, digest, size: blobSize, diffId: digest };
  }

  test.each([['PAX', 'x'], ['GNU long-name', 'L']] as const)('a %s header of 64 MiB is refused before it is read into memory', async (_kind, flag) => {
    const layer = await layerWithMeta(flag, 64 << 20);
    await expect(applyLayers(store, [layer], mkdtempSync(join(dir, 'meta-')), { asRoot })).rejects.toThrow(`tar: a ${64 << 20}-byte long name or PAX header (at most 1048576)`);
  });

  test('a PAX size that is not a number is refused by name', async () => {
    const entry = { ...file('f'), xattrs: undefined };
    const chunks: Buffer[] = [];
    for await (const chunk of tarChunks([entry])) chunks.push(chunk);
    const records = Buffer.from('18 size=12abc4567\n');
    const pax = encodeHeader({ path: 'PaxHeaders/f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: records.length });
    pax.write('x', 156, 1, 'ascii');
    pax.write('        ', 148, 8, 'ascii');
    let sum = 0;
    for (const byte of pax) sum += byte;
    pax.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
    const padded = Buffer.concat([records, Buffer.alloc(512 - records.length)]);
    const { digest, size } = await store.writeBlob(Readable.from([pax, padded, ...chunks]));
    const layer = { mediaType: MediaTypes.ociLayer, digest, size, diffId: digest };
    await expect(applyLayers(store, [layer], mkdtempSync(join(dir, 'pax-')), { asRoot })).rejects.toThrow('tar: a PAX size of "12abc4567"');
  });
});
