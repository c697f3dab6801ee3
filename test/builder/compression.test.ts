// Layer compression as buildx offers it on image outputs: compression=gzip|zstd|uncompressed,
// compression-level=N, force-compression=true. The registry is real; skopeo, the zstd tool and
// GNU tar judge what hoist wrote, and a second store builds on a zstd image.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const PLAIN = 'application/vnd.oci.image.layer.v1.tar';

interface Manifest { layers: { mediaType: string; digest: string; size: number }[]; config: { digest: string } }

let dir: string;
let registry: Registry;
let busyboxLayout: string;
let context: string;

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blob = (layout: string, digest: string): Buffer => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));

/** A store with busybox (gzip layers) as `busybox`. */
function newStore(name: string): string {
  const root = join(dir, name);
  hoistOk(['load', '--root', root, '-t', 'busybox', busyboxLayout]);
  return root;
}

/** Builds the context into an OCI layout directory with these output options; returns its manifest and diffIDs. */
function buildLayout(root: string, name: string, options: string, extra: string[] = []): { layout: string; manifest: Manifest; diffIds: string[] } {
  const layout = join(dir, name);
  hoistOk(['build', '--root', root, '-q', ...extra, '-o', `type=oci,dest=${layout},tar=false${options}`, context], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(blob(layout, index.manifests[0]!.digest).toString()) as Manifest;
  const config = JSON.parse(blob(layout, manifest.config.digest).toString()) as { rootfs: { diff_ids: string[] } };
  return { layout, manifest, diffIds: config.rootfs.diff_ids };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-compression-'));
  registry = await startRegistry();
  busyboxLayout = makeBusyboxLayout(join(dir, 'busybox'));
  context = writeContext(dir, 'context', {
    Dockerfile: 'FROM busybox\nCOPY notes.txt /notes.txt\nRUN echo ran > /ran.txt\n',
    'notes.txt': 'a line that compresses well\n'.repeat(20_000),
  });
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  removeTree(dir);
});

describe('--output compression=', () => {
  test('zstd: the new layers are zstd and the base stays gzip; skopeo reads them, and another store builds on the image', () => {
    const ref = `${registry.host}/app:zstd`;
    hoistOk(['build', '--root', newStore('zstd'), '-q', '--provenance=false', '--output', `type=image,name=${ref},push=true,compression=zstd`, context]);
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as Manifest;
    expect(raw.layers.map((layer) => layer.mediaType)).toEqual([GZIP, ZSTD, ZSTD]);

    // skopeo decompresses the zstd layers to write them as gzip; GNU tar reads what it wrote.
    const copy = join(dir, 'skopeo-copy');
    execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-compress-format', 'gzip', `docker://${ref}`, `oci:${copy}:x`]);
    const copied = JSON.parse(blob(copy, (JSON.parse(readFileSync(join(copy, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest).toString()) as Manifest;
    expect(copied.layers.map((layer) => layer.mediaType)).toEqual([GZIP, GZIP, GZIP]);
    const tarFile = (layer: number, path: string): string => execFileSync('tar', ['-xzOf', join(copy, 'blobs', 'sha256', copied.layers[layer]!.digest.slice(7)), path], { encoding: 'utf8' });
    expect(tarFile(1, 'notes.txt')).toBe('a line that compresses well\n'.repeat(20_000));
    expect(tarFile(2, 'ran.txt')).toBe('ran\n');

    const next = writeContext(dir, 'on-zstd', { Dockerfile: `FROM ${ref}\nRUN grep -q ran /ran.txt && grep -c compresses /notes.txt > /count\n` });
    hoistOk(['build', '--root', join(dir, 'second-store'), '-q', '-o', `type=oci,dest=${join(dir, 'on-zstd-layout')},tar=false`, next]);
  });

  test('force-compression=true compresses every layer so, base included; uncompressed layers are their own diffIDs', () => {
    const root = newStore('force');
    const zstd = buildLayout(root, 'forced-zstd', ',compression=zstd,force-compression=true');
    expect(zstd.manifest.layers.map((layer) => layer.mediaType)).toEqual([ZSTD, ZSTD, ZSTD]);
    zstd.manifest.layers.forEach((layer, i) => {
      expect(sha256(execFileSync('zstd', ['-d', '-c'], { input: blob(zstd.layout, layer.digest), maxBuffer: 1 << 28 }))).toBe(zstd.diffIds[i]);
    });

    const plain = buildLayout(root, 'forced-plain', ',compression=uncompressed,force-compression=true');
    expect(plain.manifest.layers.map((layer) => layer.mediaType)).toEqual([PLAIN, PLAIN, PLAIN]);
    expect(plain.manifest.layers.map((layer) => layer.digest)).toEqual(plain.diffIds);
    expect(plain.diffIds).toEqual(zstd.diffIds);
  });

  test('without force, reused layers keep their compression, as in BuildKit: cached steps stay gzip under compression=zstd', () => {
    const root = newStore('reuse');
    const gzip = buildLayout(root, 'reuse-gzip', '');
    expect(gzip.manifest.layers.map((layer) => layer.mediaType)).toEqual([GZIP, GZIP, GZIP]);
    const cached = buildLayout(root, 'reuse-zstd', ',compression=zstd');
    expect(cached.manifest.layers).toEqual(gzip.manifest.layers);
    const fresh = buildLayout(root, 'reuse-zstd-no-cache', ',compression=zstd', ['--no-cache']);
    expect(fresh.manifest.layers.map((layer) => layer.mediaType)).toEqual([GZIP, ZSTD, ZSTD]);
  });

  test('compression-level is honoured (gzip -9 is smaller than the default -1), and the same options give the same digests', () => {
    const fast = buildLayout(newStore('level-1'), 'level-1', ',compression=gzip');
    const small = buildLayout(newStore('level-9'), 'level-9', ',compression=gzip,compression-level=9');
    expect(small.manifest.layers[1]!.size).toBeLessThan(fast.manifest.layers[1]!.size);
    expect(small.diffIds).toEqual(fast.diffIds);
    const again = buildLayout(newStore('level-9-again'), 'level-9-again', ',compression=gzip,compression-level=9');
    expect(again.manifest).toEqual(small.manifest);
    const zstd19 = buildLayout(newStore('zstd-19'), 'zstd-19', ',compression=zstd,compression-level=19');
    expect(zstd19.manifest.layers[1]!.mediaType).toBe(ZSTD);
  });

  test('bad compression options are refused with exit 2, by name, before anything is built', () => {
    const layout = join(dir, 'refused');
    const refused: [string[], RegExp][] = [
      [['-o', `type=oci,dest=${layout},compression=estargz`], /compression=estargz is not supported \(use gzip, zstd or uncompressed\)/],
      [['-o', `type=oci,dest=${layout},compression=zstd,compression-level=23`], /compression-level=23: zstd takes a level from 0 to 22/],
      [['-o', `type=oci,dest=${layout},compression-level=10`], /compression-level=10: gzip takes a level from 0 to 9/],
      [['-o', `type=oci,dest=${layout},compression=gzip,compression-level=fast`], /compression-level=fast: gzip takes a level/],
      [['-o', `type=oci,dest=${layout},compression=uncompressed,compression-level=3`], /compression-level has no meaning with compression=uncompressed/],
      [['-o', `type=oci,dest=${layout},compression=zstd,force-compression=maybe`], /force-compression/],
      [['-o', `type=local,dest=${layout},compression=zstd`], /hoist does not support "compression" here/],
      [['-o', `type=oci,dest=${layout},compression=zstd`, '-o', `type=image,name=${registry.host}/x:1,push=true`], /the outputs ask for different layer compressions/],
      [['-o', `type=oci,dest=${layout},compression=zstd`, '--cache-to', `type=local,dest=${join(dir, 'cache')},compression=gzip`], /the cache holds layers as the build made them; leave compression= out of --cache-to/],
    ];
    for (const [flags, message] of refused) {
      const run = hoist(['build', '--root', join(dir, 'refused-store'), ...flags, context]);
      expect(run.code, flags.join(' ')).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });
});
