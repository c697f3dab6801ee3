// Layer entries to a compressed, content-addressed blob in one streaming pass: the tar's sha256
// (the diffID) and the blob's sha256 (the digest) are computed as the bytes go by, so a layer is
// never held in memory and never compressed twice.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, read, readSync } from 'node:fs';
import { promisify } from 'node:util';
import type { LayerEntry } from './entry.ts';
import { BLOCK_SIZE, BlockPool, compressed, LAYER_MEDIA_TYPES, type Compression } from './compression.ts';
import { keepListing, listingRow } from './listing.ts';
import type { Descriptor, Store } from './store.ts';
import { BLOCK, END_OF_ARCHIVE, encodeHeader } from './tar.ts';

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

/** Files up to this size are read with synchronous calls: for many small files that costs far less than a stream, and compression runs in zlib's threads meanwhile. */
const SMALL_FILE = 1 << 20;


const readAsync = promisify(read);

/**
 * The tar's bytes gathered into blocks of the compressors' size, taken from a pool when there is
 * one: file contents are read straight into them, so a block is the one copy of its bytes that
 * writing a layer makes.
 */
class Pieces {
  private readonly pool: BlockPool | undefined;
  buffer: Buffer;
  used = 0;

  constructor(pool: BlockPool | undefined) {
    this.pool = pool;
    this.buffer = this.newBuffer();
  }

  private newBuffer(): Buffer {
    return this.pool ? this.pool.take() : Buffer.allocUnsafeSlow(BLOCK_SIZE);
  }

  get room(): number {
    return BLOCK_SIZE - this.used;
  }

  /** What is written so far, and a new buffer to go on in. */
  take(): Buffer {
    const piece = this.used === BLOCK_SIZE ? this.buffer : this.buffer.subarray(0, this.used);
    this.buffer = this.newBuffer();
    this.used = 0;
    return piece;
  }

  /** Copies `bytes` in, yielding each piece it fills. */
  *copy(bytes: Buffer): Generator<Buffer> {
    for (let at = 0; at < bytes.length;) {
      const copied = bytes.copy(this.buffer, this.used, at);
      this.used += copied;
      at += copied;
      if (this.room === 0) yield this.take();
    }
  }

  /** Writes `count` zero bytes (the buffers are not zeroed when made), yielding each piece it fills. */
  *zeros(count: number): Generator<Buffer> {
    while (count > 0) {
      const n = Math.min(count, this.room);
      this.buffer.fill(0, this.used, this.used + n);
      this.used += n;
      count -= n;
      if (this.room === 0) yield this.take();
    }
  }
}

/**
 * The bytes of a tar holding `entries` in the order given, in blocks of BLOCK_SIZE bytes (the last
 * shorter), taken from `pool` if given (see `compressed`).
 */
export async function* tarChunks(entries: LayerEntry[], options: { contentHashes?: Map<string, string>; pool?: BlockPool } = {}): AsyncGenerator<Buffer> {
  const { contentHashes } = options;
  const out = new Pieces(options.pool);
  for (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
    yield* out.copy(encodeHeader({ ...entry, size }));
    if (size === 0) continue;
    const source = entry.source;
    if (source === undefined) throw new Error(`layer entry ${entry.path} has no content source`);
    const changed = (read: number): Error => new Error(`${entry.path} changed while it was being added to a layer (expected ${size} bytes, read ${read})`);
    if (typeof source === 'string') {
      const hash = contentHashes ? createHash('sha256') : undefined;
      const fd = openSync(source, 'r');
      try {
        for (let position = 0; position < size;) {
          const want = Math.min(size - position, out.room);
          const read = size <= SMALL_FILE ? readSync(fd, out.buffer, out.used, want, position) : (await readAsync(fd, out.buffer, out.used, want, position)).bytesRead;
          if (read === 0) throw changed(position);
          hash?.update(out.buffer.subarray(out.used, out.used + read));
          out.used += read;
          position += read;
          if (out.room === 0) yield out.take();
        }
        // A file that grew while it was read is not the file that was planned either.
        const now = fstatSync(fd).size;
        if (now !== size) throw changed(now);
      } finally {
        closeSync(fd);
      }
      if (hash) contentHashes!.set(source, hash.digest('hex'));
    } else {
      let written = 0;
      for await (const chunk of source() as AsyncIterable<Buffer>) {
        written += chunk.length;
        if (written > size) break;
        yield* out.copy(chunk);
      }
      if (written !== size) throw changed(written);
    }
    yield* out.zeros((BLOCK - (size % BLOCK)) % BLOCK);
  }
  yield* out.copy(END_OF_ARCHIVE);
  if (out.used > 0) yield out.take();
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
  const pool = new BlockPool();
  const tar = hashed(tarChunks(sorted, { contentHashes: options.contentHashes, pool }));
  const compression = options.compression ?? { type: 'gzip' };
  const { digest, size } = await store.writeBlob(compressed(tar, compression, pool));
  await keepListing(store, digest, sorted.map(listingRow));
  return { mediaType: LAYER_MEDIA_TYPES[compression.type], digest, size, diffId: `sha256:${tarHash.digest('hex')}` };
}
