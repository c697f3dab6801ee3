// hoist push oci-layout://PATH DEST: an image goes up straight from an OCI layout directory or
// tarball, never through the store, each blob checked against its digest as it is read (a large
// one too, which goes up in ranges); skopeo judges what arrived.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistOk, removeTree, writeContext } from '../support/hoist.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let dir: string;
let registry: Registry;
/** The image: a small layer, then one larger than push's 64 MiB chunk. */
let layoutDir: string;
let tarball: string;
let manifest: { config: { digest: string }; layers: { digest: string; size: number }[] };
let digest: string;

const sha256 = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blobPath = (layout: string, blob: string): string => join(layout, 'blobs', 'sha256', blob.slice(7));
const inspect = (ref: string, ...flags: string[]): string => execFileSync('skopeo', ['inspect', '--tls-verify=false', ...flags, `docker://${ref}`], { encoding: 'utf8' });
const indexOf = (layout: string): { manifests: { digest: string; mediaType: string; size: number }[] } => JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-push-layout-'));
  registry = await startRegistry();
  layoutDir = join(dir, 'layout');
  tarball = join(dir, 'app.tar');
  const context = writeContext(dir, 'context', { Dockerfile: 'FROM scratch\nCOPY small /small\nCOPY big /big\n', small: 'small\n' });
  writeFileSync(join(context, 'big'), randomBytes(70 * 1024 * 1024));
  hoistOk(['build', '--root', join(dir, 'build-store'), '-o', `type=oci,dest=${layoutDir},tar=false,name=app:1`, '-o', `type=oci,dest=${tarball},name=app:1`, context]);
  digest = indexOf(layoutDir).manifests[0]!.digest;
  manifest = JSON.parse(readFileSync(blobPath(layoutDir, digest), 'utf8'));
  expect(manifest.layers[1]!.size).toBeGreaterThan(64 * 1024 * 1024);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  removeTree(dir);
});

describe('hoist push from an OCI layout', () => {
  test('a tarball and a directory go up whole, and the store is left without their blobs', () => {
    const root = join(dir, 'store');
    mkdirSync(join(dir, 'copy'));
    for (const [source, dest] of [[`oci-layout://${tarball}:1`, 'site/from-tar:1'], [`oci-layout://${layoutDir}@${digest}`, 'site/from-dir:1']] as const) {
      const pushed = hoistOk(['push', '--root', root, source, `${registry.host}/${dest}`]);
      expect(pushed.stdout.trim()).toBe(digest);
      expect(pushed.stderr).toContain('(3 of 3 blobs uploaded)');
      expect(JSON.parse(inspect(`${registry.host}/${dest}`)).Digest).toBe(digest);
      // skopeo copies it out, checking every blob against its digest.
      execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/${dest}`, `oci:${join(dir, 'copy', dest.replace(/[/:]/g, '-'))}:x`]);
    }
    for (const blob of [digest, manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)]) expect(existsSync(blobPath(root, blob))).toBe(false);
  });

  test('an index in a layout goes up with every platform', () => {
    const merged = join(dir, 'merged');
    mkdirSync(join(merged, 'blobs', 'sha256'), { recursive: true });
    const manifests = [];
    for (const arch of ['amd64', 'arm64']) {
      const out = join(dir, `platform-${arch}`);
      const context = writeContext(dir, `platform-ctx-${arch}`, { Dockerfile: `FROM scratch\nCOPY f /f\n`, f: `${arch}\n` });
      hoistOk(['build', '--root', join(dir, 'build-store'), '--platform', `linux/${arch}`, '-o', `type=oci,dest=${out},tar=false`, context]);
      cpSync(join(out, 'blobs'), join(merged, 'blobs'), { recursive: true });
      const { mediaType, digest: child, size } = indexOf(out).manifests[0]!;
      manifests.push({ mediaType, digest: child, size, platform: { os: 'linux', architecture: arch } });
    }
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
    writeFileSync(blobPath(merged, sha256(index)), index);
    writeFileSync(join(merged, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(merged, 'index.json'), JSON.stringify({
      schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest: sha256(index), size: index.length, annotations: { 'org.opencontainers.image.ref.name': 'both' } }],
    }));
    const pushed = hoistOk(['push', '--root', join(dir, 'store'), `oci-layout://${merged}:both`, `${registry.host}/site/multi:both`]);
    expect(pushed.stdout.trim()).toBe(sha256(index));
    expect(JSON.parse(inspect(`${registry.host}/site/multi:both`, '--raw')).manifests.map((m: { digest: string }) => m.digest)).toEqual(manifests.map((m) => m.digest));
  });

  test('a blob that does not match its digest fails the push, naming the digest, and nothing is tagged', () => {
    for (const [i, layer] of manifest.layers.entries()) {
      const bad = join(dir, `bad-${i}`);
      cpSync(layoutDir, bad, { recursive: true });
      const bytes = readFileSync(blobPath(bad, layer.digest));
      bytes[bytes.length >> 1] ^= 1;
      writeFileSync(blobPath(bad, layer.digest), bytes);
      const dest = `${registry.host}/site/bad-${i}:1`;
      const failed = hoist(['push', '--root', join(dir, 'store'), `oci-layout://${bad}`, dest]);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain(layer.digest);
      expect(failed.stderr).toContain('is corrupt');
      expect(spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${dest}`]).status).not.toBe(0);
    }
  });
});
