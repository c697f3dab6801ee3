// Images out of the store or another source: an OCI image layout (directory or tarball) or a
// `docker load` archive.
import { createWriteStream, existsSync } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LayerEntry } from './entry.ts';
import { referencedBlobs, type Image } from './image.ts';
import { tarChunks } from './layer.ts';
import { familiarReference, familiarRepository, parseReference } from './reference.ts';
import type { BlobSource } from './source.ts';
import { atomicWrite, MediaTypes, REF_NAME, type Descriptor } from './store.ts';

/** A manifest (an image's, an index of several platforms, or a build cache's) and its names. */
export interface NamedManifest {
  descriptor: Descriptor;
  /** Full references (`docker.io/library/demo:latest`); may be empty. */
  refs: string[];
  /** Annotations of its entries in index.json (buildx's index-descriptor annotations). */
  annotations?: Record<string, string>;
}

/** An image (one platform) and its names, for `docker load` archives. */
export interface Named {
  image: Image;
  refs: string[];
}

const hex = (digest: string): string => digest.slice('sha256:'.length);

function file(path: string, content: Buffer | string, mtime: number): LayerEntry {
  const bytes = Buffer.from(content);
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime, size: bytes.length, source: () => Readable.from([bytes]) };
}

function directory(path: string, mtime: number): LayerEntry {
  return { path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime };
}

/** index.json: one descriptor per name (buildx's annotations), or one unnamed. */
function ociIndex(images: NamedManifest[], created: string): object {
  const manifests: Descriptor[] = images.flatMap(({ descriptor, refs, annotations }) => {
    const base = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (refs.length === 0) return [{ ...base, annotations: { ...annotations, 'org.opencontainers.image.created': created } }];
    return refs.map((ref) => ({
      ...base,
      annotations: {
        ...annotations,
        'io.containerd.image.name': ref,
        [REF_NAME]: parseReference(ref).tag ?? 'latest',
        'org.opencontainers.image.created': created,
      },
    }));
  });
  return { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
}

async function blobEntries(source: BlobSource, digests: string[], mtime: number): Promise<LayerEntry[]> {
  const blobs = await Promise.all(digests.map(async (digest): Promise<LayerEntry> => ({
    path: `blobs/sha256/${hex(digest)}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime,
    size: await source.size(digest), source: () => source.stream(digest),
  })));
  return [directory('blobs', mtime), directory('blobs/sha256', mtime), ...blobs];
}

/** Writes `path` whole or not at all: through `NAME.tmp-PID-random` beside it, then a rename. */
function writeWhole(path: string, content: Parameters<typeof atomicWrite>[2]): Promise<void> {
  return atomicWrite(dirname(path), path, content, `${basename(path)}.tmp`);
}

/**
 * Writes a tarball to `dest`: a stream (standard output), or a path. A regular file (or a new one)
 * is replaced whole, through a temp file and a rename; anything else that exists there (a device
 * such as /dev/null, a FIFO, a symlink such as /dev/stdout) is written into in place, never replaced.
 */
async function writeTarFile(dest: string | Writable, entries: LayerEntry[]): Promise<void> {
  if (typeof dest !== 'string') {
    await pipeline(Readable.from(tarChunks(entries)), dest, { end: false });
    return;
  }
  const existing = await lstat(dest).catch(() => undefined);
  if (existing && !existing.isFile()) {
    await pipeline(Readable.from(tarChunks(entries)), createWriteStream(dest));
    return;
  }
  await mkdir(dirname(dest), { recursive: true });
  await writeWhole(dest, (temp) => pipeline(Readable.from(tarChunks(entries)), createWriteStream(temp)));
}

/** A file system (entries from a directory) as a tarball, as `--output type=tar` writes it. */
export function writeFilesystemTar(entries: LayerEntry[], dest: string | Writable): Promise<void> {
  return writeTarFile(dest, entries);
}

/** An OCI image layout, as `docker buildx build --output type=oci` writes it. */
export async function writeOciLayout(source: BlobSource, images: NamedManifest[], dest: string | Writable, options: { tar: boolean; created: string; mtime: number }): Promise<void> {
  const digests = await referencedBlobs(images.map(({ descriptor }) => descriptor), source);
  const layoutFile = JSON.stringify({ imageLayoutVersion: '1.0.0' });
  const index = JSON.stringify(ociIndex(images, options.created));
  if (!options.tar && typeof dest === 'string') {
    // Every file is written whole or not at all, so that builds writing the same directory at once
    // (a CI cache) never leave a partial file.
    await mkdir(join(dest, 'blobs', 'sha256'), { recursive: true });
    for (const digest of digests) {
      const path = join(dest, 'blobs', 'sha256', hex(digest));
      if (!existsSync(path)) await writeWhole(path, (temp) => pipeline(source.stream(digest), createWriteStream(temp)));
    }
    await writeWhole(join(dest, 'oci-layout'), layoutFile);
    await writeWhole(join(dest, 'index.json'), index);
    return;
  }
  const entries: LayerEntry[] = [
    ...(await blobEntries(source, digests, options.mtime)),
    file('index.json', index, options.mtime),
    file('oci-layout', layoutFile, options.mtime),
  ];
  await writeTarFile(dest, entries);
}

/** A `docker load` archive: manifest.json and repositories beside the blobs. */
export async function writeDockerArchive(source: BlobSource, images: Named[], dest: string | Writable, options: { mtime: number }): Promise<void> {
  const manifest = images.map(({ image, refs }) => ({
    Config: `blobs/sha256/${hex(image.manifest.config.digest)}`,
    RepoTags: refs.map((ref) => familiarReference(parseReference(ref))),
    Layers: image.layers.map((layer) => `blobs/sha256/${hex(layer.digest)}`),
  }));
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, refs } of images) {
    const top = image.layers.at(-1);
    for (const ref of refs) {
      const parsed = parseReference(ref);
      const name = familiarRepository(parsed);
      if (top && parsed.tag) (repositories[name] ??= {})[parsed.tag] = hex(top.diffId);
    }
  }
  const digests = [...new Set(images.flatMap(({ image }) => [image.manifest.config.digest, ...image.layers.map((layer) => layer.digest)]))];
  const entries: LayerEntry[] = [
    ...(await blobEntries(source, digests, options.mtime)),
    file('manifest.json', JSON.stringify(manifest), options.mtime),
    file('repositories', JSON.stringify(repositories), options.mtime),
  ];
  await writeTarFile(dest, entries);
}
