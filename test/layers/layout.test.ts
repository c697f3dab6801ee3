// An OCI layout as a source of images, read in place: a directory, and tarballs as hoist, GNU tar
// (gnu, ustar and pax formats) and a long-name writer make them; every blob checked as it is read.
import { execFileSync } from 'node:child_process';
import { cpSync, createReadStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Layout, readImage, Store, writeImage, writeLayer, writeOciLayout, type Image } from '../../layers/index.ts';
import { readTar } from '../../layers/tar.ts';

let dir: string;
let store: Store;
let image: Image;
let layoutDir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-layout-'));
  store = await Store.open(join(dir, 'store'));
  const content = Buffer.from('0123456789'.repeat(100_000));
  const layer = await writeLayer(store, [{ path: 'data', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: content.length, source: () => Readable.from([content]) }]);
  image = await writeImage(store, { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }, [layer]);
  layoutDir = join(dir, 'layout');
  await writeOciLayout(store, [{ descriptor: image.descriptor, refs: ['docker.io/library/demo:1'] }], layoutDir, { tar: false, created: '2025-01-01T00:00:00Z', mtime: 0 });
});
afterAll(() => execFileSync('rm', ['-rf', dir]));

const storeBytes = (digest: string): Buffer => readFileSync(store.blobPath(digest));

async function expectReadsLikeTheStore(layout: Layout): Promise<void> {
  const [descriptor] = layout.select('1');
  expect(descriptor!.digest).toBe(image.descriptor.digest);
  const read = await readImage(layout, descriptor!);
  expect(read.manifest).toEqual(image.manifest);
  expect(read.config).toEqual(image.config);
  const { digest, size } = image.layers[0]!;
  expect(await layout.size(digest)).toBe(size);
  expect(Buffer.concat(await Array.fromAsync(layout.stream(digest)))).toEqual(storeBytes(digest));
  const range = Buffer.concat(await Array.fromAsync(layout.stream(digest, { start: 100, end: 999 })));
  expect(range).toEqual(storeBytes(digest).subarray(100, 1000));
}

describe('an OCI layout read in place', () => {
  test('a directory', async () => {
    await expectReadsLikeTheStore(await Layout.open(layoutDir));
  });

  test("hoist's own tarball, and GNU tar's in the gnu, ustar and pax formats", async () => {
    const tarball = join(dir, 'hoist.tar');
    await writeOciLayout(store, [{ descriptor: image.descriptor, refs: ['docker.io/library/demo:1'] }], tarball, { tar: true, created: '2025-01-01T00:00:00Z', mtime: 0 });
    await expectReadsLikeTheStore(await Layout.open(tarball));
    for (const format of ['gnu', 'ustar', 'pax']) {
      const made = join(dir, `${format}.tar`);
      execFileSync('tar', ['-cf', made, `--format=${format}`, '-C', layoutDir, '.']);
      await expectReadsLikeTheStore(await Layout.open(made));
    }
  });

  test('a layout saves from one layout to another: a tarball to a directory, every blob the same', async () => {
    const tarball = join(dir, 'source.tar');
    execFileSync('tar', ['-cf', tarball, '-C', layoutDir, '.']);
    const layout = await Layout.open(tarball);
    const copy = join(dir, 'copy');
    await writeOciLayout(layout, [{ descriptor: layout.select('1')[0]!, refs: ['docker.io/library/demo:1'] }], copy, { tar: false, created: '2025-01-01T00:00:00Z', mtime: 0 });
    for (const blob of [image.descriptor, image.manifest.config, ...image.layers]) {
      expect(readFileSync(join(copy, 'blobs', 'sha256', blob.digest.slice(7)))).toEqual(storeBytes(blob.digest));
    }
    expect(readFileSync(join(copy, 'index.json'), 'utf8')).toBe(readFileSync(join(layoutDir, 'index.json'), 'utf8'));
  });

  test('members under long names (GNU long-name and PAX path records) are found by their full name', async () => {
    const deep = join(dir, 'deep');
    cpSync(layoutDir, deep, { recursive: true });
    const long = 'x'.repeat(120);
    writeFileSync(join(deep, long), 'a file with a long name');
    for (const format of ['gnu', 'pax']) {
      const made = join(dir, `long-${format}.tar`);
      execFileSync('tar', ['-cf', made, `--format=${format}`, '-C', deep, long, 'index.json', 'oci-layout', 'blobs']);
      // The same members as tar.ts's reader sees them, in the same places.
      const names: string[] = [];
      for await (const { header } of readTar(createReadStream(made))) if (header.type === 'file') names.push(header.path);
      expect(names).toContain(long);
      await expectReadsLikeTheStore(await Layout.open(made));
    }
  });

  test('a blob that does not match its digest fails every read, naming the digest; a missing one is named too', async () => {
    const bad = join(dir, 'bad');
    cpSync(layoutDir, bad, { recursive: true });
    const { digest } = image.layers[0]!;
    const path = join(bad, 'blobs', 'sha256', digest.slice(7));
    const bytes = readFileSync(path);
    bytes[bytes.length - 20] ^= 1;
    writeFileSync(path, bytes);
    const layout = await Layout.open(bad);
    const message = `${bad} blob ${digest} is corrupt`;
    await expect(text(layout.stream(digest))).rejects.toThrow(message);
    await expect(text(layout.stream(digest, { start: 0, end: 9 }))).rejects.toThrow(message);
    await expect(layout.read(digest)).rejects.toThrow(message);
    const store2 = await Store.open(join(dir, 'store2'));
    await expect(store2.writeBlob(layout.stream(digest), { expected: digest })).rejects.toThrow(message);
    expect(await store2.hasBlob(digest)).toBe(false);
    // Saving from it fails too, and leaves no tarball.
    const out = join(dir, 'from-bad.tar');
    await expect(writeOciLayout(layout, layout.select('1').map((descriptor) => ({ descriptor, refs: [] })), out, { tar: true, created: '2025-01-01T00:00:00Z', mtime: 0 })).rejects.toThrow(message);
    expect(existsSync(out)).toBe(false);
    const missing = `sha256:${'0'.repeat(64)}`;
    await expect(layout.read(missing)).rejects.toThrow(`${bad} is incomplete: blob ${missing} is missing`);
  });

  test('a file that is not a tarball, and a tarball with no index.json', async () => {
    const notTar = join(dir, 'not.tar');
    writeFileSync(notTar, 'x'.repeat(2000));
    await expect(Layout.open(notTar)).rejects.toThrow('header checksum mismatch');
    const empty = join(dir, 'empty.tar');
    execFileSync('tar', ['-cf', empty, '-C', layoutDir, 'oci-layout']);
    await expect(Layout.open(empty)).rejects.toThrow(`${empty} is not an OCI image layout tarball: it has no index.json`);
  });
});
