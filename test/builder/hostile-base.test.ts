// A hostile base image, through every path that applies its layers: FROM with a RUN step, COPY
// --from and a file system output. Its layers replace a path within one layer (an opaque marker
// then a symlink; a directory then a symlink) so that a later entry or a deferred chmod would land
// in a sentinel tree beside the store. Nothing there may change, whichever way the image is used.
// In a locked-down container (--isolation=container) the layers are applied to / itself, and hoist's
// own files and its store must stay as they are.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store, writeImage, type Image, type LayerEntry } from '../../layers/index.ts';
import { inContainer, type Container } from '../support/container.ts';
import { hoist, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { layerInOrder } from '../support/layers.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;
let outside: string;
let sentinel: string[];
let container: Container;

const owner = { uid: 0, gid: 0, mtime: 0 };
const file = (path: string): LayerEntry => ({ path, type: 'file', mode: 0o644, ...owner, size: 4, source: () => Readable.from([Buffer.from('evil')]) });
const symlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'symlink', mode: 0o777, ...owner, linkname });
const directory = (path: string, mode: number): LayerEntry => ({ path, type: 'directory', mode, ...owner });
const hardlink = (path: string, linkname: string): LayerEntry => ({ path, type: 'hardlink', mode: 0o644, ...owner, linkname });

/** The entries that replace p/a, checked as a parent, by a symlink to `to`, then write `name` through it. */
const throughOpaque = (to: string, name: string): LayerEntry[] => [directory('p', 0o755), file('p/a/x'), file('p/.wh..wh..opq'), symlink('p/a', to), file(`p/a/${name}`)];

/** The sentinel tree's every path with its mode and content. */
function sentinelState(): string[] {
  return readdirSync(outside, { recursive: true, encoding: 'utf8' }).sort().map((rel) => {
    const info = lstatSync(join(outside, rel));
    return `${rel} ${info.mode.toString(8)} ${info.isFile() ? readFileSync(join(outside, rel), 'utf8') : ''}`;
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-base-'));
  chmodSync(dir, 0o755);
  root = join(dir, 'store');
  outside = join(dir, 'outside');
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'file'), 'sentinel');
  chmodSync(join(outside, 'file'), 0o640);
  sentinel = sentinelState();

  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  const base = busybox!.image;
  await store.tag(normalizeReference('busybox'), base.descriptor);
  const tagWithLayer = async (name: string, entries: LayerEntry[]): Promise<Image> => {
    const image = await writeImage(store, base.config, [...base.layers, await layerInOrder(store, entries)]);
    await store.tag(normalizeReference(name), image.descriptor);
    return image;
  };
  // p/a is checked as a parent, the opaque marker removes it, a symlink to the sentinel takes its place.
  await tagWithLayer('hostile-opaque', throughOpaque(outside, 'pwned'));
  // d3 is a directory whose mode is set last, after a symlink to the sentinel's file replaced it.
  await tagWithLayer('hostile-chmod', [directory('d3', 0o777), symlink('d3', join(outside, 'file')), directory('d4', 0o777), symlink('d4', join(outside, 'sub'))]);
  // The same against what a container keeps: hoist's runtime at /hoist and the store at /work/store.
  await tagWithLayer('hostile-runtime', throughOpaque('/hoist/builder', 'main.ts'));
  await tagWithLayer('hostile-store', throughOpaque('/work/store', 'planted'));
  await tagWithLayer('hostile-runtime-mode', [directory('d3', 0o777), symlink('d3', '/hoist/package.json')]);
  await tagWithLayer('hostile-runtime-link', [hardlink('h', 'hoist/package.json'), file('h')]);
  container = { dir, store: root, executor: execFileSync('bash', [join(repoRoot, 'scripts', 'executor.sh'), join(dir, 'executor')], { encoding: 'utf8' }).trim() };
}, 300_000);
afterAll(() => removeTree(dir));

const uses: [string, (image: string) => { dockerfile: string; args: string[] }][] = [
  ['FROM with a RUN step', (image) => ({ dockerfile: `FROM ${image}\nRUN true\n`, args: [] })],
  ['COPY --from', (image) => ({ dockerfile: `FROM busybox\nCOPY --from=${image} / /copied/\n`, args: [] })],
  ['a type=local output', (image) => ({ dockerfile: `FROM ${image}\n`, args: ['--output', `type=local,dest=${join(dir, `local-${image}-${Math.random().toString(36).slice(2)}`)}`] })],
];

describe.each(uses)('a hostile base image used through %s', (_use, make) => {
  const build = (image: string): ReturnType<typeof hoist> => {
    const { dockerfile, args } = make(image);
    const context = writeContext(dir, `ctx-${Math.random().toString(36).slice(2)}`, { Dockerfile: dockerfile });
    return hoist(['build', '--root', root, '--pull=false', '--no-cache', ...args, context]);
  };

  test('a symlink made where an opaque marker removed a checked directory: the build stops, naming the entry, and nothing outside changes', () => {
    const built = build('hostile-opaque');
    expect(built.code).not.toBe(0);
    expect(built.stderr).toContain('refusing layer entry "p/a/pwned": its path goes through the symlink /p/a');
    expect(sentinelState()).toEqual(sentinel);
  });

  test('a directory replaced by a symlink within its layer: the build goes on and the symlink\'s target keeps its mode', () => {
    const built = build('hostile-chmod');
    expect(built.stderr).not.toContain('refusing');
    expect(built.code).toBe(0);
    expect(statSync(join(outside, 'file')).mode & 0o7777).toBe(0o640);
    expect(sentinelState()).toEqual(sentinel);
  });
});

describe('in a locked-down container, where layers are applied to / itself', () => {
  /** hoist's files in the container (the executor, at /hoist) that an image must never change, with their modes. */
  const runtimeState = (): string[] => ['builder/main.ts', 'package.json'].map((rel) => {
    const path = join(container.executor, rel);
    return `${rel} ${statSync(path).mode.toString(8)} ${readFileSync(path, 'utf8').length}:${readFileSync(path, 'utf8').slice(0, 64)}`;
  });
  const buildIn = (image: string): ReturnType<typeof inContainer> => {
    const context = writeContext(dir, `ctx-${image}`, { Dockerfile: `FROM ${image}\nRUN true\n` });
    return inContainer(container, ['build', '--root', '/work/store', '--pull=false', '--no-cache', '/work/ctx'], context);
  };

  test.each([
    ['hostile-runtime', 'refusing layer entry "p/a/main.ts": its path goes through the symlink /p/a'],
    ['hostile-store', 'refusing layer entry "p/a/planted": its path goes through the symlink /p/a'],
    ['hostile-runtime-link', 'refusing layer entry "h": its hardlink target "hoist/package.json" is not a file inside the layer root'],
  ])('%s: the build stops, naming the entry, and hoist\'s files and the store are as they were', (image, message) => {
    const before = runtimeState();
    const built = buildIn(image);
    expect(built.code, built.stderr).not.toBe(0);
    expect(built.stderr).toContain('isolation: container');
    expect(built.stderr).toContain(message);
    expect(runtimeState()).toEqual(before);
    expect(existsSync(join(root, 'planted'))).toBe(false);
  });

  test('a directory replaced by a symlink to hoist\'s package.json: the build goes on and the file keeps its mode', () => {
    const before = runtimeState();
    const built = buildIn('hostile-runtime-mode');
    expect(built.code, built.stderr).toBe(0);
    expect(runtimeState()).toEqual(before);
  });
});
