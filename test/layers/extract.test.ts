// Hostile layers: every way out of the root is refused, and nothing is written outside.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { applyLayers, Store, UnsafeLayerError, writeLayer, type LayerEntry } from '../../layers/index.ts';

let dir: string;
let store: Store;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-'));
  store = await Store.open(join(dir, 'store'));
});
afterAll(() => execFileSync('rm', ['-rf', dir]));
/** Files get the layer's owners only as root. */
const asRoot = process.getuid!() === 0;

const file = (path: string): LayerEntry => ({ path, type: 'file', mode: 0o644, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, size: 4, source: () => Readable.from([Buffer.from('evil')]) });
const symlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'symlink', mode: 0o777, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, linkname });
const hardlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'hardlink', mode: 0o644, uid: process.getuid!(), gid: process.getgid!(), mtime: 0, linkname });

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
