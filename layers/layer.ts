// Layer entries to a compressed, content-addressed blob in one streaming pass: the tar's sha256
// (the diffID) and the blob's sha256 (the digest) are computed as the bytes go by, so a layer is
// never held in memory and never compressed twice.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { LayerEntry } from './entry.ts';
import { compressed, LAYER_MEDIA_TYPES, type Compression } from './compression.ts';
import { keepListing, listingRow } from './listing.ts';
import type { Descriptor, Store } from './store.ts';
import { END_OF_ARCHIVE, encodeHeader, padding } from './tar.ts';

export interface Layer extends Descriptor {
  /** sha256 of the uncompressed tar, as the image config's rootfs.diff_ids lists it. */
  diffId: string;
}

export interface LayerOptions {
  /** How the blob is compressed (default gzip at level 1). */
  compression?: Compression;
  /** Filled with the sha256 (hex) of each file read from a host path, by that path. */
  contentHashes?: Map<string, string>;
}

/** Sorts entries as the layer holds them: by path, so each directory comes before its contents. */
export function sortEntries(entries: Iterable<LayerEntry>): LayerEntry[] {
  return [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Files up to this size are read in one call; larger ones are streamed. */
const SMALL_FILE = 1 << 20;

/**
 * Large files are read in pieces that end on the tar's 1 MiB boundaries, the compressors' block
 * size (compression.ts), so that their blocks are these pieces, never copies joined from two.
 */
const ALIGNMENT = 1 << 20;

/** The bytes of a tar holding `entries` in the order given. */
export async function* tarChunks(entries: LayerEntry[], contentHashes?: Map<string, string>): AsyncGenerator<Buffer> {
  let offset = 0;
  for (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
    const header = encodeHeader({ ...entry, size });
    if (size === 0) {
      yield header;
      offset += header.length;
      continue;
    }
    const source = entry.source;
    if (source === undefined) throw new Error(`layer entry ${entry.path} has no content source`);
    const changed = (read: number): Error => new Error(`${entry.path} changed while it was being added to a layer (expected ${size} bytes, read ${read})`);
    if (typeof source === 'string' && size <= SMALL_FILE) {
      // Many small files: a synchronous read costs far less than a stream, and compression runs
      // in zlib's threads meanwhile.
      const content = readFileSync(source);
      if (content.length !== size) throw changed(content.length);
      contentHashes?.set(source, createHash('sha256').update(content).digest('hex'));
      const chunk = Buffer.concat([header, content, padding(size)]);
      yield chunk;
      offset += chunk.length;
      continue;
    }
    yield header;
    offset += header.length;
    const contentHash = typeof source === 'string' && contentHashes ? createHash('sha256') : undefined;
    let written = 0;
    const pieces = typeof source === 'string' ? alignedPieces(source, size, offset, changed) : source();
    for await (const chunk of pieces as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > size) break;
      contentHash?.update(chunk);
      yield chunk;
    }
    if (written !== size) throw changed(written);
    if (contentHash) contentHashes!.set(source as string, contentHash.digest('hex'));
    const end = padding(size);
    yield end;
    offset += size + end.length;
  }
  yield END_OF_ARCHIVE;
}

/** A file's `size` bytes, in pieces ending where the tar (the file starting at `offset`) reaches a multiple of ALIGNMENT. */
async function* alignedPieces(path: string, size: number, offset: number, changed: (read: number) => Error): AsyncGenerator<Buffer> {
  const file = await open(path, 'r');
  try {
    for (let position = 0; position < size;) {
      const want = Math.min(size - position, ALIGNMENT - ((offset + position) % ALIGNMENT));
      const { buffer, bytesRead } = await file.read(Buffer.allocUnsafeSlow(want), 0, want, position);
      if (bytesRead === 0) throw changed(position);
      position += bytesRead;
      yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
    }
    // A file that grew while it was read is not the file that was planned either.
    const now = (await file.stat()).size;
    if (now !== size) throw changed(now);
  } finally {
    await file.close();
  }
}

/** Writes the entries (in path order) as a layer blob, compressed as asked. */
export async function writeLayer(store: Store, entries: LayerEntry[], options: LayerOptions = {}): Promise<Layer> {
  const tarHash = createHash('sha256');
  async function* hashed(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of chunks) {
      tarHash.update(chunk);
      yield chunk;
    }
  }
  const sorted = sortEntries(entries);
  const tar = hashed(tarChunks(sorted, options.contentHashes));
  const compression = options.compression ?? { type: 'gzip' };
  const { digest, size } = await store.writeBlob(Readable.from(compressed(tar, compression)));
  await keepListing(store, digest, sorted.map(listingRow));
  return { mediaType: LAYER_MEDIA_TYPES[compression.type], digest, size, diffId: `sha256:${tarHash.digest('hex')}` };
}
