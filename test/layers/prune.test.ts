// `hoist prune`: real builds through bin/hoist, cache records made with CacheStore, and the
// result judged by the store's files, `hoist save`, umoci and skopeo.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CacheStore, type CacheRecord } from '../../layers/cache-records.ts';
import { chainKey, MediaTypes, normalizeReference, parseSize, prune, Store, writeImage, writeLayer, type Layer } from '../../layers/index.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';

let dir: string;
let busyboxLayout: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-prune-'));
  busyboxLayout = makeBusyboxLayout(join(dir, 'busybox'));
});
afterAll(() => removeTree(dir));

/** A store holding busybox, tagged `busybox`. */
function newStore(name: string): string {
  const root = join(dir, name);
  hoistOk(['load', '--root', root, '-t', 'busybox', busyboxLayout]);
  return root;
}

function buildTagged(root: string, tag: string, dockerfile: string): void {
  hoistOk(['build', '--root', root, '-t', tag, writeContext(dir, `${tag}-context`, { Dockerfile: dockerfile })]);
}

interface Inspected {
  Digest: string;
  Id: string;
  Manifest: { layers: { digest: string }[] };
  Config: { rootfs: { diff_ids: string[] } };
}

const inspect = (root: string, name: string): Inspected => JSON.parse(hoistOk(['inspect', '--root', root, name]).stdout);

/** Every blob the image needs: manifest, config and layers. */
const imageBlobs = (image: Inspected): string[] => [image.Digest, image.Id, ...image.Manifest.layers.map((layer) => layer.digest)];

const blobs = (root: string): string[] => readdirSync(join(root, 'blobs', 'sha256')).map((name) => `sha256:${name}`).sort();
/** The files under `path`, at any depth. */
const files = (path: string): string[] => readdirSync(path, { recursive: true, withFileTypes: true })
  .filter((entry) => !entry.isDirectory()).map((entry) => join(entry.parentPath, entry.name).slice(path.length + 1)).sort();

/** A layer of incompressible bytes, so its blob is about `size` bytes. */
async function randomLayer(store: Store, size: number): Promise<Layer> {
  const content = randomBytes(size);
  return writeLayer(store, [{ path: 'data', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, source: () => Readable.from([content]) }]);
}

const key = (): string => randomBytes(32).toString('hex');
// Prune never reads a record's inputs.
const inputs = { parent: '', env: {}, args: {} } as unknown as CacheRecord['inputs'];

function setAge(path: string, secondsAgo: number): void {
  const time = new Date(Date.now() - secondsAgo * 1000);
  utimesSync(path, time, time);
}

/** `hoist save`s the image, then unpacks it with umoci and returns the content of `file` in it. */
function savedFile(root: string, name: string, file: string): string {
  const tarball = join(dir, `${name}-${randomBytes(4).toString('hex')}.tar`);
  hoistOk(['save', '--root', root, '-o', tarball, name]);
  const layout = `${tarball}.d`;
  mkdirSync(layout);
  execFileSync('tar', ['-xf', tarball, '-C', layout]);
  execFileSync('skopeo', ['inspect', `oci:${layout}:latest`], { stdio: 'pipe' });
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:latest`, `${layout}/bundle`], { stdio: 'pipe' });
  return readFileSync(join(layout, 'bundle', 'rootfs', file), 'utf8');
}

describe('hoist prune', () => {
  test('removes an untagged image, broken records and stray rootfs dirs; keeps tagged images and the blobs of records', async () => {
    const root = newStore('default');
    buildTagged(root, 'kept', 'FROM busybox\nRUN echo kept > /kept.txt\n');
    buildTagged(root, 'gone', 'FROM busybox\nRUN echo gone > /gone.txt\n');
    const kept = inspect(root, 'kept');
    const gone = inspect(root, 'gone');
    hoistOk(['rmi', '--root', root, 'gone']);
    // The builds' own cache records (if the build writes any) would keep gone's layer: only ours count here.
    removeTree(join(root, 'cache'));

    const store = await Store.open(root);
    const cache = new CacheStore(store);
    const layer = await randomLayer(store, 1000);
    const [good, broken] = [key(), key()];
    await cache.put(good, { layer, created: '2025-01-01T00:00:00Z', inputs });
    await cache.put(broken, { layer: { ...layer, digest: `sha256:${'0'.repeat(64)}` }, created: '2025-01-01T00:00:00Z', inputs });
    await cache.setLastKey('Dockerfile/good', good);
    await cache.setLastKey('Dockerfile/broken', broken);
    const chain = chainKey(kept.Config.rootfs.diff_ids.slice(0, 1));
    const stray = key();
    for (const name of [chain, stray]) writeContext(join(root, 'rootfs'), name, { 'etc/file': 'content' });

    const run = hoistOk(['prune', '--root', root]);
    expect(run.stdout).toMatch(/^removed 3 blobs, 1 cache record, 1 rootfs dir, 0 cache mounts: .*B freed\n$/);
    const left = blobs(root);
    for (const digest of imageBlobs(kept)) expect(left).toContain(digest);
    for (const digest of [gone.Digest, gone.Id, gone.Manifest.layers.at(-1)!.digest]) expect(left).not.toContain(digest);
    expect(left).toContain(gone.Manifest.layers[0]!.digest); // busybox's layer, which kept needs too
    expect(left).toContain(layer.digest);
    expect(await cache.keys()).toEqual([good]);
    expect(files(join(root, 'cache', 'steps'))).toEqual(['Dockerfile/good']);
    expect(readdirSync(join(root, 'rootfs'))).toContain(chain);
    expect(readdirSync(join(root, 'rootfs'))).not.toContain(stray);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(savedFile(root, 'kept', 'kept.txt')).toBe('kept\n');

    expect(hoistOk(['prune', '--root', root]).stdout).toBe('removed 0 blobs, 0 cache records, 0 rootfs dirs, 0 cache mounts: 0B freed\n');
  });

  test('--keep-storage removes the least recently used cache first and stops once under the limit', async () => {
    const root = newStore('keep');
    const store = await Store.open(root);
    const cache = new CacheStore(store);
    const records: { key: string; layer: Layer }[] = [];
    for (let i = 0; i < 3; i++) {
      records.push({ key: key(), layer: await randomLayer(store, 100_000) });
      await cache.put(records[i]!.key, { layer: records[i]!.layer, created: '2025-01-01T00:00:00Z', inputs });
    }
    const mount = await cache.mount('apt');
    mkdirSync(mount.data);
    writeFileSync(join(mount.data, 'archive'), randomBytes(50_000));
    // From oldest to newest: record 0, the mount, record 1, record 2.
    setAge(store.recordPath(records[0]!.key), 3000);
    setAge(join(root, 'cache', 'mounts', 'apt'), 2500);
    setAge(store.recordPath(records[1]!.key), 2000);
    setAge(store.recordPath(records[2]!.key), 1000);
    const limit = records[1]!.layer.size + records[2]!.layer.size;

    const run = hoistOk(['prune', '--root', root, '--keep-storage', `${limit}b`]);
    expect(run.stdout).toMatch(/^removed 1 blob, 1 cache record, 0 rootfs dirs, 1 cache mount: 15\d\.\dkB freed\n$/);
    expect((await cache.keys()).sort()).toEqual([records[1]!.key, records[2]!.key].sort());
    expect(await store.hasBlob(records[0]!.layer.digest)).toBe(false);
    expect(await store.hasBlob(records[1]!.layer.digest)).toBe(true);
    expect(await store.hasBlob(records[2]!.layer.digest)).toBe(true);
    expect(readdirSync(join(root, 'cache', 'mounts'))).toEqual([]);

    // Under 1kB, only what the tagged busybox needs stays.
    hoistOk(['prune', '--root', root, '--keep-storage', '1kB']);
    expect(await cache.keys()).toEqual([]);
    expect(blobs(root)).toEqual(imageBlobs(inspect(root, 'busybox')).sort());
  });

  test('keeps every image of a tagged index', async () => {
    const root = newStore('index');
    const store = await Store.open(root);
    const config = { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers' as const, diff_ids: [] } };
    const images = [await writeImage(store, config, [await randomLayer(store, 1000)]), await writeImage(store, { ...config, architecture: 'arm64' }, [await randomLayer(store, 1000)])];
    const missing = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'2'.repeat(64)}`, size: 1 };
    const index = await store.writeJson(MediaTypes.ociIndex, { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [...images.map((image) => image.descriptor), missing] });
    await store.tag(normalizeReference('multi'), index);
    const before = blobs(root);

    expect(hoistOk(['prune', '--root', root]).stdout).toMatch(/^removed 0 blobs,/);
    expect(blobs(root)).toEqual(before);
    hoistOk(['rmi', '--root', root, 'multi']);
    expect(hoistOk(['prune', '--root', root]).stdout).toMatch(/^removed 7 blobs,/);
  });

  test('--all leaves only what tagged images need, and they still load', async () => {
    const root = newStore('all');
    buildTagged(root, 'kept', 'FROM busybox\nRUN echo kept > /kept.txt\n');
    buildTagged(root, 'other', 'FROM busybox\nRUN echo other > /other.txt\n');
    hoistOk(['rmi', '--root', root, 'other']);
    const store = await Store.open(root);
    const cache = new CacheStore(store);
    const record = key();
    await cache.put(record, { layer: await randomLayer(store, 1000), created: '2025-01-01T00:00:00Z', inputs });
    await cache.setLastKey('Dockerfile/1', record);
    const mount = await cache.mount('go');
    mkdirSync(mount.data);
    writeFileSync(join(mount.data, 'object'), 'cached');
    await cache.saveHints('context', {});
    writeContext(join(root, 'rootfs'), chainKey(inspect(root, 'kept').Config.rootfs.diff_ids.slice(0, 1)), { 'bin/sh': 'x' });

    hoistOk(['prune', '--root', root, '--all']);
    const wanted = new Set([...imageBlobs(inspect(root, 'kept')), ...imageBlobs(inspect(root, 'busybox'))]);
    expect(blobs(root)).toEqual([...wanted].sort());
    expect(files(join(root, 'cache'))).toEqual([]);
    expect(readdirSync(join(root, 'cache', 'mounts'))).toEqual([]);
    expect(readdirSync(join(root, 'rootfs'))).toEqual([]);
    expect(savedFile(root, 'kept', 'kept.txt')).toBe('kept\n');
    buildTagged(root, 'again', 'FROM kept\nRUN cat /kept.txt > /again.txt\n');
    expect(savedFile(root, 'again', 'again.txt')).toBe('kept\n');
  });

  test('finds what the store keeps through its methods: rootfs chains, records, steps, hints and cache mounts', async () => {
    const root = join(dir, 'areas');
    const store = await Store.open(root);
    const cache = new CacheStore(store);
    const chain = await store.rootfsChain([`sha256:${key()}`], async (into) => {
      mkdirSync(into);
      writeFileSync(join(into, 'file'), 'applied');
    });
    const record = key();
    await cache.put(record, { layer: null, created: '2025-01-01T00:00:00Z', inputs });
    await cache.setLastKey('Dockerfile/1', record);
    await cache.saveHints('context', {});
    const mount = await cache.mount('go');
    mkdirSync(mount.data);
    writeFileSync(join(mount.data, 'object'), 'cached');
    for (const path of [chain, store.recordPath(record), store.stepPath('Dockerfile/1'), store.hintsPath('context'), join(root, 'cache', 'mounts', 'go')]) setAge(path, 100);

    expect(await prune(store, { all: true })).toMatchObject({ records: { count: 1 }, rootfsDirs: { count: 1 }, cacheMounts: { count: 1 } });
    expect(existsSync(chain)).toBe(false);
    expect(await cache.keys()).toEqual([]);
    expect(files(join(root, 'cache'))).toEqual([]);
    expect(readdirSync(join(root, 'cache', 'mounts'))).toEqual([]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  test('reads last use as the store marks it: a cache mount used again outlives an older one', async () => {
    const root = join(dir, 'last-use');
    const store = await Store.open(root);
    const cache = new CacheStore(store);
    for (const id of ['again', 'once']) {
      const mount = await cache.mount(id);
      mkdirSync(mount.data);
      writeFileSync(join(mount.data, 'object'), randomBytes(10_000));
    }
    setAge(join(root, 'cache', 'mounts', 'again'), 2000);
    setAge(join(root, 'cache', 'mounts', 'once'), 1000);
    await cache.mount('again');
    // So that prune, which keeps what is as new as its start, starts a clock tick later.
    await new Promise((resolve) => setTimeout(resolve, 20));

    expect((await prune(store, { keepStorage: 15_000 })).cacheMounts.count).toBe(1);
    expect(readdirSync(join(root, 'cache', 'mounts'))).toEqual(['again']);
  });

  describe('while another process works on the store', () => {
    let sleeper: ChildProcess;
    beforeAll(() => {
      sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    });
    afterAll(() => {
      sleeper.kill();
    });

    test('nothing as new as its oldest temp entry is removed', async () => {
      const root = newStore('busy');
      const store = await Store.open(root);
      const cache = new CacheStore(store);
      const [older, newer] = [await randomLayer(store, 1000), await randomLayer(store, 1000)];
      const record = key();
      await cache.put(record, { layer: { ...older, digest: `sha256:${'1'.repeat(64)}` }, created: '2025-01-01T00:00:00Z', inputs });
      const working = join(root, 'tmp', `build-${sleeper.pid}-abc123`);
      mkdirSync(working);
      setAge(working, 1000);
      setAge(store.blobPath(older.digest), 2000);
      setAge(store.blobPath(newer.digest), 500);
      // A dead process's temp entry does not count.
      const dead = join(root, 'tmp', 'build-999999999-abc123');
      mkdirSync(dead);
      setAge(dead, 5000);

      expect(hoistOk(['prune', '--root', root]).stdout).toMatch(/^removed 1 blob, 0 cache records,/);
      expect(await store.hasBlob(older.digest)).toBe(false);
      expect(await store.hasBlob(newer.digest)).toBe(true);
      expect(await cache.keys()).toEqual([record]);
      expect(readdirSync(join(root, 'tmp'))).toEqual([`build-${sleeper.pid}-abc123`]);
    });
  });

  test('a bad --keep-storage size is a usage error', () => {
    const root = newStore('usage');
    const run = hoist(['prune', '--root', root, '--keep-storage', '10XB']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--keep-storage 10XB');
    expect(hoist(['prune', '--root', root, 'extra']).code).toBe(2);
  });

  test('sizes read as docker reads them', () => {
    expect(parseSize('10GB')).toBe(10e9);
    expect(parseSize('512MB')).toBe(512e6);
    expect(parseSize('512mb')).toBe(512e6);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseSize('2Ki')).toBe(2048);
    expect(parseSize('3k')).toBe(3000);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('4096b')).toBe(4096);
    for (const bad of ['', 'GB', '-1GB', '10XB', '1.5.5GB', '10 G B']) expect(parseSize(bad)).toBeUndefined();
  });
});
