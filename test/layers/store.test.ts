// The store and the export formats, judged by skopeo and umoci.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  acquireLock, applyLayers, atomicWrite, chainKey, normalizeReference, readImage, readImageFile, Store, writeDockerArchive, writeImage, writeLayer, writeOciLayout,
  type Image, type LayerEntry,
} from '../../layers/index.ts';
import { tempName, tempOwner } from '../../layers/store.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let store: Store;
let image: Image;
const ref = normalizeReference('hoist-test/demo:1.0');

const fileEntry = (path: string, text: string, extra: Partial<LayerEntry> = {}): LayerEntry => ({
  path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1700000000, size: Buffer.byteLength(text), source: () => Readable.from([Buffer.from(text)]), ...extra,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-store-'));
  store = await Store.open(join(dir, 'store'));
  const base = await writeLayer(store, [
    { path: 'etc', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    fileEntry('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n'),
    fileEntry('etc/old', 'to be deleted'),
    { path: 'opt', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    fileEntry('opt/lower', 'hidden by an opaque dir'),
  ]);
  const top = await writeLayer(store, [
    { path: 'app', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: 5 },
    fileEntry('app/run.sh', '#!/bin/sh\necho hi\n', { mode: 0o755, uid: 1000, gid: 1000 }),
    fileEntry('etc/.wh.old', '', { size: 0 }),
    { path: 'opt', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    fileEntry('opt/.wh..wh..opq', '', { size: 0 }),
    fileEntry('opt/upper', 'new'),
  ]);
  image = await writeImage(store, {
    architecture: 'amd64', os: 'linux', created: '2025-01-01T00:00:00.000Z',
    config: { Env: ['PATH=/bin'], Cmd: ['/app/run.sh'], User: '1000', Labels: { a: 'b' } },
    rootfs: { type: 'layers', diff_ids: [] }, history: [{ created_by: 'base' }, { created_by: 'top' }],
  }, [base, top]);
  await store.tag(ref, image.descriptor);
});
afterAll(() => execFileSync('rm', ['-rf', dir]));

const skopeoInspect = (transport: string): { Digest: string; Layers: string[]; Labels: Record<string, string>; Architecture: string } =>
  JSON.parse(execFileSync('skopeo', ['inspect', transport], { encoding: 'utf8' }));
const skopeoConfig = (transport: string): { config: { Cmd: string[]; User: string }; rootfs: { diff_ids: string[] } } =>
  JSON.parse(execFileSync('skopeo', ['inspect', '--config', transport], { encoding: 'utf8' }));

describe('store', () => {
  test('tags resolve to the image; images read back whole', async () => {
    const back = await readImage(store, (await store.resolve(ref))!);
    expect(back.descriptor.digest).toBe(image.descriptor.digest);
    expect(back.layers.map((layer) => layer.diffId)).toEqual(image.config.rootfs.diff_ids);
  });

  test('a blob whose bytes do not match the expected digest is refused and nothing is kept', async () => {
    const wrong = `sha256:${'0'.repeat(64)}`;
    await expect(store.writeBlob(Readable.from([Buffer.from('x')]), { expected: wrong })).rejects.toThrow('content does not match its digest');
    expect(await store.hasBlob(wrong)).toBe(false);
    expect(readdirSync(join(store.root, 'tmp'))).toEqual([]);
  });

  test('two processes tagging at once lose no tag', async () => {
    const script = `import { Store } from ${JSON.stringify(join(repoRoot, 'layers/index.ts'))};
      const store = await Store.open(process.argv[1]);
      for (let i = 0; i < 40; i++) await store.tag('docker.io/library/p' + process.argv[2] + '-' + i + ':latest', { mediaType: 'x', digest: ${JSON.stringify(image.descriptor.digest)}, size: 1 });`;
    const runs = ['a', 'b'].map((name) => new Promise<number>((resolve) => {
      spawn(process.execPath, ['--input-type=module', '-e', script, store.root, name], { stdio: 'inherit' }).on('exit', (code) => resolve(code ?? 1));
    }));
    expect(await Promise.all(runs)).toEqual([0, 0]);
    const tags = (await store.listTags()).map((descriptor) => descriptor.annotations!['org.opencontainers.image.ref.name']);
    expect(tags.filter((tag) => /\/p[ab]-\d+:latest$/.test(tag!))).toHaveLength(80);
  });


  test('a lock left by a dead process, or an empty one from an older hoist, does not block a tag', async () => {
    const lock = join(store.root, 'index.json.lock');
    // Each is taken over at once (waiting no time at all), and a tag goes through.
    const takenAtOnce = async (tag: string): Promise<void> => {
      const release = await acquireLock(lock, { waitMs: 0, what: 'the store' });
      expect(release, `the lock holding "${readFileSync(lock, 'utf8')}" is waited for`).toBeDefined();
      await release!();
      await store.tag(tag, image.descriptor);
    };
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(lock, String(dead));
    await takenAtOnce('docker.io/library/after-dead:1');
    writeFileSync(lock, '');
    utimesSync(lock, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
    await takenAtOnce('docker.io/library/after-empty:1');
    // A live pid that started later than the lock's owner is not the owner (a pid reused in a container).
    writeFileSync(lock, `${process.pid} 1`);
    await takenAtOnce('docker.io/library/after-reuse:1');
    expect(existsSync(lock)).toBe(false);
    expect(readdirSync(store.root).filter((name) => name.startsWith('index.json.lock'))).toEqual([]);
    // The owner itself, alive, keeps it.
    const holder = spawn('sleep', ['30']);
    const stat = readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
    writeFileSync(lock, `${holder.pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`);
    expect(await acquireLock(lock, { waitMs: 0, what: 'the store' })).toBeUndefined();
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const release = await acquireLock(lock, { waitMs: 0, what: 'the store' });
    expect(release).toBeDefined();
    await release!();
  });
  test('a rootfs chain is made once, by whichever fill finishes first, and marked used when asked for again', async () => {
    const diffIds = [image.layers[0]!.diffId];
    // Both fills run at once, as in two builds that find the chain missing together.
    let started = 0;
    let bothStarted!: () => void;
    const both = new Promise<void>((resolve) => (bothStarted = resolve));
    const fill = (name: string) => async (into: string): Promise<void> => {
      if (++started === 2) bothStarted();
      await both;
      mkdirSync(into);
      writeFileSync(join(into, name), name);
    };
    const [first, second] = await Promise.all([store.rootfsChain(diffIds, fill('a')), store.rootfsChain(diffIds, fill('b'))]);
    expect(first).toBe(join(store.root, 'rootfs', chainKey(diffIds)));
    expect(second).toBe(first);
    expect(['a', 'b'].map((name) => [name]), 'one whole fill, not a mix').toContainEqual(readdirSync(first));
    expect(readdirSync(join(store.root, 'tmp'))).toEqual([]);

    const longAgo = new Date(Date.now() - 3_600_000);
    utimesSync(first, longAgo, longAgo);
    expect(await store.rootfsChain(diffIds, () => Promise.reject(new Error('filled again')))).toBe(first);
    expect(statSync(first).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  });

  test('a rootfs chain whose fill fails leaves nothing behind', async () => {
    const diffIds = [image.layers[1]!.diffId];
    await expect(store.rootfsChain(diffIds, async (into) => {
      mkdirSync(into);
      writeFileSync(join(into, 'half'), 'x');
      throw new Error('no space left');
    })).rejects.toThrow('no space left');
    expect(existsSync(join(store.root, 'rootfs', chainKey(diffIds)))).toBe(false);
    expect(readdirSync(join(store.root, 'tmp'))).toEqual([]);
  });

  test('temp entries name their process; opening the store removes those of dead processes', async () => {
    expect(tempOwner(tempName('cache-private'))).toBe(process.pid);
    expect(tempOwner('index.json')).toBeUndefined();
    const tmp = join(store.root, 'tmp');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    mkdirSync(join(tmp, `cache-private-${dead}-abc123`));
    writeFileSync(join(tmp, `blob-${dead}-0123456789abcdef`), 'half');
    const ours = await store.tempDir('rootfs');
    await Store.open(store.root);
    expect(readdirSync(tmp)).toEqual([ours.slice(tmp.length + 1)]);
    rmSync(ours, { recursive: true });
  });

  test('atomicWrite puts a file in place whole, from content or a temp file filled by the caller', async () => {
    const out = join(dir, 'atomic');
    mkdirSync(out);
    const path = join(out, 'file');
    await atomicWrite(out, path, 'text');
    expect(readFileSync(path, 'utf8')).toBe('text');
    await atomicWrite(out, path, async (temp) => writeFileSync(temp, Buffer.from('filled')));
    expect(readFileSync(path, 'utf8')).toBe('filled');
    await expect(atomicWrite(out, path, async (temp) => {
      writeFileSync(temp, 'half');
      throw new Error('interrupted');
    })).rejects.toThrow('interrupted');
    expect(readFileSync(path, 'utf8')).toBe('filled');
    expect(readdirSync(out)).toEqual(['file']);
  });

  test('readImageFile sees the top layer, through whiteouts', async () => {
    expect((await readImageFile(store, image.layers, '/etc/passwd'))?.toString()).toContain('app:x:1000');
    expect(await readImageFile(store, image.layers, '/etc/old')).toBeUndefined();
    expect(await readImageFile(store, image.layers, '/opt/lower')).toBeUndefined();
    expect((await readImageFile(store, image.layers, '/opt/upper'))?.toString()).toBe('new');
  });
});

describe('exports, judged by skopeo and umoci', () => {
  test('OCI layout tarball and directory', async () => {
    const tarball = join(dir, 'image.oci.tar');
    const layoutDir = join(dir, 'layout');
    await writeOciLayout(store, [{ descriptor: image.descriptor, refs: [ref] }], tarball, { tar: true, created: '2025-01-01T00:00:00Z', mtime: 0 });
    await writeOciLayout(store, [{ descriptor: image.descriptor, refs: [ref] }], layoutDir, { tar: false, created: '2025-01-01T00:00:00Z', mtime: 0 });
    for (const transport of [`oci-archive:${tarball}:1.0`, `oci:${layoutDir}:1.0`]) {
      const inspected = skopeoInspect(transport);
      expect(inspected.Digest).toBe(image.descriptor.digest);
      expect(inspected.Layers).toEqual(image.layers.map((layer) => layer.digest));
      expect(inspected.Labels).toEqual({ a: 'b' });
      expect(skopeoConfig(transport).config).toMatchObject({ Cmd: ['/app/run.sh'], User: '1000' });
    }
    const index = JSON.parse(readFileSync(join(layoutDir, 'index.json'), 'utf8'));
    expect(index.manifests[0].annotations).toEqual({
      'io.containerd.image.name': 'docker.io/hoist-test/demo:1.0', 'org.opencontainers.image.ref.name': '1.0', 'org.opencontainers.image.created': '2025-01-01T00:00:00Z',
    });

    const bundle = join(dir, 'bundle');
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${layoutDir}:1.0`, bundle], { stdio: 'pipe' });
    const rootfs = join(bundle, 'rootfs');
    expect(readFileSync(join(rootfs, 'app/run.sh'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(join(rootfs, 'app/run.sh')).mode & 0o7777).toBe(0o755);
    expect(existsSync(join(rootfs, 'etc/old'))).toBe(false);
    expect(readdirSync(join(rootfs, 'opt'))).toEqual(['upper']);
  });

  test('docker load archive', async () => {
    const tarball = join(dir, 'image.docker.tar');
    await writeDockerArchive(store, [{ image, refs: [ref] }], tarball, { mtime: 0 });
    const listing = execFileSync('tar', ['-tf', tarball], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toContain('manifest.json');
    expect(listing).toContain('repositories');
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', tarball, 'manifest.json'], { encoding: 'utf8' }));
    expect(manifest[0].RepoTags).toEqual(['hoist-test/demo:1.0']);
    const inspected = skopeoInspect(`docker-archive:${tarball}`);
    expect(inspected.Architecture).toBe('amd64');
    expect(skopeoConfig(`docker-archive:${tarball}`).rootfs.diff_ids).toEqual(image.config.rootfs.diff_ids);
  });

  test('local: the merged filesystem, whiteouts applied', async () => {
    const out = join(dir, 'local');
    await applyLayers(store, image.layers, out, { asRoot: process.getuid!() === 0 });
    expect(readFileSync(join(out, 'etc/passwd'), 'utf8')).toContain('root:x:0:0');
    expect(existsSync(join(out, 'etc/old'))).toBe(false);
    expect(readdirSync(join(out, 'opt'))).toEqual(['upper']);
    expect(statSync(join(out, 'app')).mode & 0o777).toBe(0o750);
  });
});
