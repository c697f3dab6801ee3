// The layer tar codec, checked against GNU tar as an independent reader.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readTar, Store, writeLayer, type LayerEntry } from '../../layers/index.ts';

let store: Store;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-tar-'));
  store = await Store.open(join(dir, 'store'));
});
afterAll(() => execFileSync('rm', ['-rf', dir]));

const capability = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service, binary with NULs
const longName = `deep/${'d'.repeat(120)}/${'f'.repeat(90)}`;

function entries(): LayerEntry[] {
  const content = join(dir, 'content');
  writeFileSync(content, 'hello\n');
  return [
    { path: 'bin', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 },
    { path: 'bin/ping', type: 'file', mode: 0o4755, uid: 0, gid: 0, mtime: 1700000000, size: 6, source: content, xattrs: { 'security.capability': capability } },
    { path: 'bin/ping2', type: 'hardlink', mode: 0o4755, uid: 0, gid: 0, mtime: 1700000000, linkname: 'bin/ping' },
    { path: 'bin/sh', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 1, linkname: '/bin/busybox' },
    { path: 'home/ünïcødé', type: 'file', mode: 0o644, uid: 40000, gid: 65534, mtime: 2, size: 0 },
    { path: 'tmp', type: 'directory', mode: 0o1777, uid: 0, gid: 0, mtime: 3 },
    { path: longName, type: 'file', mode: 0o600, uid: 3000000, gid: 3000001, mtime: 4, size: 6, source: () => Readable.from([Buffer.from('stream')]) },
  ];
}

describe('layer tars', () => {
  test('round trip: every field, binary xattrs, long and non-ASCII names, big ids', async () => {
    const layer = await writeLayer(store, entries());
    const read = [];
    for await (const { header, body } of readTar(store.stream(layer.digest).pipe(createGunzip()))) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      read.push({ ...header, content: Buffer.concat(chunks).toString() });
    }
    expect(read.map((e) => [e.path, e.type, e.mode.toString(8), e.uid, e.gid, e.mtime, e.linkname, e.content])).toEqual([
      ['bin', 'directory', '755', 0, 0, 0, '', ''],
      ['bin/ping', 'file', '4755', 0, 0, 1700000000, '', 'hello\n'],
      ['bin/ping2', 'hardlink', '4755', 0, 0, 1700000000, 'bin/ping', ''],
      ['bin/sh', 'symlink', '777', 0, 0, 1, '/bin/busybox', ''],
      [longName, 'file', '600', 3000000, 3000001, 4, '', 'stream'],
      ['home/ünïcødé', 'file', '644', 40000, 65534, 2, '', ''],
      ['tmp', 'directory', '1777', 0, 0, 3, '', ''],
    ]);
    expect(read[1]!.xattrs).toEqual({ 'security.capability': capability });
  });

  test('GNU tar reads the same entries, owners and modes', async () => {
    const layer = await writeLayer(store, entries());
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvzf', store.blobPath(layer.digest)], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    const rows = listing.trim().split('\n').map((line) => line.split(/\s+/));
    expect(rows.map((row) => [row[0], row[1], row.slice(5).join(' ')])).toEqual([
      ['drwxr-xr-x', '0/0', 'bin/'],
      ['-rwsr-xr-x', '0/0', 'bin/ping'],
      ['hrwsr-xr-x', '0/0', 'bin/ping2 link to bin/ping'],
      ['lrwxrwxrwx', '0/0', 'bin/sh -> /bin/busybox'],
      ['-rw-------', '3000000/3000001', longName],
      ['-rw-r--r--', '40000/65534', 'home/ünïcødé'],
      ['drwxrwxrwt', '0/0', 'tmp/'],
    ]);
    const xattrs = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvzf', store.blobPath(layer.digest)], { encoding: 'utf8' });
    expect(xattrs).toMatch(/x: 20 security\.capability/);
  });

  test('the same entries give the same digest and diffID; a changed file is caught', async () => {
    const [a, b] = [await writeLayer(store, entries()), await writeLayer(store, [...entries()].reverse())];
    expect(a.digest).toBe(b.digest);
    expect(a.diffId).toBe(b.diffId);
    expect(a.diffId).not.toBe(a.digest);
    const wrongSize = entries().map((entry) => (entry.path === 'bin/ping' ? { ...entry, size: 7 } : entry));
    await expect(writeLayer(store, wrongSize)).rejects.toThrow('bin/ping changed while it was being added to a layer (expected 7 bytes, read 6)');
  });
});

describe('layers written through reused 1 MiB blocks', () => {
  // Files of every size, straddling block boundaries, text and random, small and streamed: if a
  // block went back to the pool while a compressor or the output still used it, contents would differ.
  function tree(): { root: string; entries: LayerEntry[] } {
    const root = mkdtempSync(join(dir, 'tree-'));
    const entries: LayerEntry[] = [];
    const sizes = [0, 1, 511, 512, 513, 4095, 70_000, 300_000, 1_048_575, 1_048_576, 1_048_577, 2_500_000];
    for (let i = 0; i < 120; i++) {
      const size = sizes[i % sizes.length]! + i;
      const content = i % 3 === 0 ? randomBytes(size) : Buffer.from(`line ${i} of a text file\n`.repeat(Math.ceil(size / 20) + 1)).subarray(0, size);
      const name = `f${String(i).padStart(3, '0')}`;
      writeFileSync(join(root, name), content);
      entries.push({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size, source: join(root, name) });
    }
    // Whole blocks of random data: gzip writes them as stored blocks, pieces of the block itself.
    writeFileSync(join(root, 'random'), randomBytes(6_000_000));
    entries.push({ path: 'random', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 6_000_000, source: join(root, 'random') });
    return { root, entries };
  }

  test.each(['gzip', 'zstd', 'uncompressed'] as const)('%s: GNU tar extracts every file exactly, and the digest is the same again', async (type) => {
    const { root, entries } = tree();
    const layer = await writeLayer(store, entries, { compression: { type } });
    expect((await writeLayer(store, entries, { compression: { type } })).digest).toBe(layer.digest);
    const out = mkdtempSync(join(dir, 'out-'));
    execFileSync('tar', [...{ gzip: ['-z'], zstd: ['--zstd'], uncompressed: [] }[type], '-xf', store.blobPath(layer.digest), '-C', out]);
    execFileSync('diff', ['-r', root, out]);
  });

  test('a file that grew after it was listed is caught', async () => {
    const { entries } = tree();
    const grown = entries[5]!;
    writeFileSync(grown.source as string, Buffer.alloc(grown.size! + 10));
    await expect(writeLayer(store, entries)).rejects.toThrow(`${grown.path} changed while it was being added to a layer (expected ${grown.size} bytes, read ${grown.size! + 10})`);
  });
});
