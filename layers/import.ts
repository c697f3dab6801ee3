// Images into the store from an OCI image layout, a directory or a tarball (layout.ts): the blobs
// the chosen images need are copied in, each checked against its digest on the way.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { readImage, referencedBlobs, type Image, type PlatformChoice } from './image.ts';
import { Layout } from './layout.ts';
import type { Descriptor, Store } from './store.ts';

export interface Imported {
  /** What the layout's index.json lists: an image's manifest, or an index of several platforms. */
  descriptor: Descriptor;
  /** The image for the platform asked for (or the index's first). */
  image: Image;
  /** The full name the layout gives the image (buildx's io.containerd.image.name), if any. */
  name?: string;
}

/**
 * Imports an OCI layout and returns its images: the one whose ref.name annotation is `select`
 * (a tag) or whose digest it is (`sha256:...`), or every one in the index when none is given. An
 * index is resolved to `platform` (default: its first image); every platform's blobs are imported.
 */
export async function importOciLayout(store: Store, path: string, select?: string, platform?: PlatformChoice): Promise<Imported[]> {
  const info = await stat(path);
  if (info.isFile() || info.isDirectory()) return importFrom(store, await Layout.open(path), select, platform);
  // A pipe (`hoist load /dev/stdin`) cannot be read at offsets: it is kept in a temp file first.
  // A descriptor is read as it is: a socket (a parent's stdio) cannot be opened again by its path.
  const descriptor = /^\/(?:dev\/stdin|dev\/fd\/(\d+)|proc\/self\/fd\/(\d+))$/.exec(path);
  const dir = await store.tempDir('load');
  try {
    const copy = join(dir, 'layout.tar');
    const input = descriptor ? createReadStream('', { fd: Number(descriptor[1] ?? descriptor[2] ?? 0) }) : createReadStream(path);
    await pipeline(input, createWriteStream(copy));
    return await importFrom(store, await Layout.open(copy, path), select, platform);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function importFrom(store: Store, layout: Layout, select: string | undefined, platform: PlatformChoice | undefined): Promise<Imported[]> {
  const chosen = layout.select(select);
  for (const digest of await referencedBlobs(chosen, layout)) {
    if (!(await store.hasBlob(digest))) await store.writeBlob(layout.stream(digest), { expected: digest });
  }
  return Promise.all(chosen.map(async (descriptor) => {
    const name = descriptor.annotations?.['io.containerd.image.name'];
    const { mediaType, digest, size } = descriptor;
    return { descriptor: { mediaType, digest, size }, image: await readImage(store, descriptor, platform), ...(name ? { name } : {}) };
  }));
}
