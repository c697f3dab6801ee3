// Layer entries to a compressed, content-addressed blob in one streaming pass: the tar's sha256
// (the diffID) and the compressed sha256 (the digest) are computed as the bytes go by, so a
// layer is never held in memory and never compressed twice.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { LayerEntry } from './entry.ts';
import { MediaTypes, Hasher, type Descriptor, type Store } from './store.ts';
import { END_OF_ARCHIVE, encodeHeader, padding } from './tar.ts';

export interface Layer extends Descriptor {
  /** sha256 of the uncompressed tar, as the image config's rootfs.diff_ids lists it. */
  diffId: string;
}

export interface LayerOptions {
  /** gzip level, 1 (fastest) to 9 (smallest). */
  level?: number;
}

/** Sorts entries as the layer holds them: by path, so each directory comes before its contents. */
export function sortEntries(entries: LayerEntry[]): LayerEntry[] {
  return [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The bytes of a tar holding `entries` in the order given. */
export async function* tarChunks(entries: LayerEntry[]): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
    yield encodeHeader({ ...entry, size });
    if (size === 0) continue;
    const source = entry.source;
    if (source === undefined) throw new Error(`layer entry ${entry.path} has no content source`);
    let written = 0;
    const stream = typeof source === 'string' ? createReadStream(source) : source();
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > size) break;
      yield chunk;
    }
    if (written !== size) throw new Error(`${entry.path} changed while it was being added to a layer (expected ${size} bytes, read ${written})`);
    yield padding(size);
  }
  yield END_OF_ARCHIVE;
}

/** Writes the entries (in path order) as a gzip-compressed layer blob. */
export async function writeLayer(store: Store, entries: LayerEntry[], options: LayerOptions = {}): Promise<Layer> {
  const tar = new Hasher();
  const gzip = createGzip({ level: options.level ?? 6 });
  const { digest, size } = await store.writeBlob(Readable.from(tarChunks(sortEntries(entries))), { through: [tar, gzip] });
  return { mediaType: MediaTypes.ociLayerGzip, digest, size, diffId: tar.digest() };
}
