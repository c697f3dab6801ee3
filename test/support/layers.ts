// Reading the layers of an image in an OCI layout directory, and building one with rootless
// buildah as a judge.
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { readTar } from '../../layers/tar.ts';

const execFileAsync = promisify(execFile);

/** One entry of a layer as a row: `path type mode uid:gid[ -> link]` (no times: builders differ there). */
export type Row = string;

/** The digests of the layers of the image in an OCI layout directory (its index's first manifest). */
export async function layoutLayers(layout: string): Promise<string[]> {
  const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(await readFile(blob(index.manifests[0].digest), 'utf8'));
  return manifest.layers.map((layer: { digest: string }) => blob(layer.digest));
}

/** The rows of a gzipped layer blob, in its order. */
export async function layerRows(blob: string): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const { header } of readTar(createReadStream(blob).pipe(createGunzip()))) {
    const { path, type, mode, uid, gid, linkname } = header;
    rows.push(`${path.replace(/\/$/, '')} ${type} ${mode.toString(8)} ${uid}:${gid}${linkname ? ` -> ${linkname}` : ''}`);
  }
  return rows;
}

/**
 * Builds `dockerfile` in `context` (with `buildArgs`) with rootless buildah (chroot isolation, overlay storage of its
 * own) into an OCI layout directory, and returns its path. `cleanup` removes buildah's files.
 */
export async function buildahBuild(context: string, dockerfile: string, buildArgs: Record<string, string> = {}): Promise<{ layout: string; cleanup: () => Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), 'hoist-buildah-'));
  const storage = ['--root', join(work, 'root'), '--runroot', join(work, 'runroot'), '--storage-driver', 'overlay'];
  const layout = join(work, 'oci');
  const args = Object.entries(buildArgs).flatMap(([name, value]) => ['--build-arg', `${name}=${value}`]);
  await execFileAsync('buildah', [...storage, 'bud', '--isolation', 'chroot', '--layers', '--quiet', ...args, '-t', 'judge', '-f', dockerfile, context], { maxBuffer: 1 << 26 });
  await execFileAsync('buildah', [...storage, 'push', '--quiet', 'judge', `oci:${layout}`]);
  return {
    layout,
    // Files of other owners are subordinate ids: only inside buildah's namespace can they be removed.
    cleanup: async () => {
      if (process.getuid!() === 0) await rm(work, { recursive: true, force: true });
      else await execFileAsync('buildah', ['unshare', 'rm', '-rf', work]);
    },
  };
}
