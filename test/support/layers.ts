// Reading the layers of an image in an OCI layout directory, and building one with rootless
// buildah as a judge.
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { MediaTypes, type Layer, type LayerEntry, type Store } from '../../layers/index.ts';
import { tarChunks } from '../../layers/layer.ts';
import { readTar, type TarEntry } from '../../layers/tar.ts';

const execFileAsync = promisify(execFile);

/** One entry of a layer as a row: `path type mode uid:gid[ -> link]` (no times: builders differ there). */
export type Row = string;

/** The layer blobs of an image in an OCI layout directory: the one tagged `tag`, or else its index's first. */
export async function layoutLayers(layout: string, tag?: string): Promise<string[]> {
  const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const { manifests } = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const entry = tag === undefined
    ? manifests[0]
    : manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8'));
  return manifest.layers.map((layer: { digest: string }) => blob(layer.digest));
}

async function decompressed(blob: string): Promise<AsyncIterable<Buffer>> {
  const handle = await open(blob);
  const magic = Buffer.alloc(4);
  await handle.read(magic, 0, 4, 0);
  await handle.close();
  const stream = createReadStream(blob);
  if (magic[0] === 0x1f && magic[1] === 0x8b) return stream.pipe(createGunzip());
  if (magic.readUInt32LE(0) === 0xfd2fb528) return stream.pipe(createZstdDecompress());
  return stream;
}

/** An uncompressed layer holding `entries` in the order given, as a hostile image may (writeLayer sorts them). */
export async function layerInOrder(store: Store, entries: LayerEntry[]): Promise<Layer> {
  const { digest, size } = await store.writeBlob(tarChunks(entries));
  return { mediaType: MediaTypes.ociLayer, digest, size, diffId: digest };
}

/** The entries of a layer blob (tar, gzip or zstd), in its order. */
export async function* layerEntries(blob: string): AsyncGenerator<TarEntry> {
  yield* readTar(await decompressed(blob));
}

/** The rows of a layer blob, in its order. */
export async function layerRows(blob: string): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const { header } of layerEntries(blob)) {
    const { path, type, mode, uid, gid, linkname } = header;
    rows.push(`${path.replace(/\/$/, '')} ${type} ${mode.toString(8)} ${uid}:${gid}${linkname ? ` -> ${linkname}` : ''}`);
  }
  return rows;
}

/**
 * Rootless buildah (chroot isolation) with storage of its own in a temporary directory: overlay
 * where the kernel lets an ordinary user mount it (much faster), else vfs. As root buildah runs as
 * it is; as anyone else it makes its own user namespace (newuidmap, /etc/subuid).
 */
export class Buildah {
  private readonly dir: string;
  private readonly storage: string[];

  private constructor(dir: string, driver: string) {
    this.dir = dir;
    this.storage = ['--root', join(dir, driver), '--runroot', join(dir, `${driver}-run`), '--storage-driver', driver];
  }

  static async start(): Promise<Buildah> {
    const dir = await mkdtemp(join(tmpdir(), 'hoist-buildah-'));
    await mkdir(join(dir, 'tmp'));
    const overlay = new Buildah(dir, 'overlay');
    try {
      await overlay.run(['images']);
      return overlay;
    } catch {
      return new Buildah(dir, 'vfs');
    }
  }

  /** Runs buildah on this storage, with its TMPDIR (where RUN's cache mounts live) inside too; resolves to its stdout. */
  async run(args: string[]): Promise<string> {
    const env = { ...process.env, TMPDIR: join(this.dir, 'tmp') };
    return (await execFileAsync('buildah', [...this.storage, ...args], { env, maxBuffer: 1 << 26 })).stdout;
  }

  /**
   * Builds `dockerfile` (its text) in `context` as `tag`, `flags` added (--build-arg, --pull), and
   * resolves to the image's layer blobs, pushed uncompressed into an OCI layout. The docker format,
   * as the OCI one has no Shell: buildah would drop SHELL from the config.
   */
  async build(tag: string, context: string, dockerfile: string, flags: string[] = []): Promise<string[]> {
    const file = join(this.dir, `${tag}.Dockerfile`);
    await writeFile(file, dockerfile);
    await this.run(['bud', '--isolation', 'chroot', '--layers', '--format', 'docker', '--quiet', ...flags, '-t', tag, '-f', file, context]);
    const layout = join(this.dir, 'oci');
    await this.run(['push', '--quiet', '--disable-compression', tag, `oci:${layout}:${tag}`]);
    return layoutLayers(layout, tag);
  }

  /** Files of other owners are subordinate ids: only inside buildah's namespace can they be removed. */
  async remove(): Promise<void> {
    if (process.getuid!() === 0) await rm(this.dir, { recursive: true, force: true });
    else await execFileAsync('buildah', ['unshare', 'rm', '-rf', this.dir]);
  }
}
