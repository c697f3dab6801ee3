// Layer blobs compressed and decompressed: gzip (the default, which every registry and runtime
// reads), zstd and uncompressed, as buildx's `compression=` names them.
//
// Both compressors use every core the way pigz does: the input is cut into 1 MiB blocks, each
// compressed in zlib's thread pool, and the pieces joined in order. For gzip each block is deflated
// with the previous block's last 32 KiB as its dictionary and ended with a sync flush, so the
// blocks join into one deflate stream in one gzip member; a block that looks incompressible
// (random or already compressed data) is written as deflate's stored blocks, which is nearly
// free. For zstd each block is a frame of its own, and a zstd stream may hold any number of
// frames. Either way the output depends only on the input and the level, never on timing, so
// layer digests stay reproducible.
import { availableParallelism } from 'node:os';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, crc32, createGunzip, createZstdDecompress, deflateRaw, zstdCompress } from 'node:zlib';
import { countedChunks, countTransientBytes } from './garbage.ts';
import { writeImage, type Image } from './image.ts';
import type { Layer } from './layer.ts';
import { MediaTypes, type Store } from './store.ts';

export type CompressionType = 'gzip' | 'zstd' | 'uncompressed';

export interface Compression {
  type: CompressionType;
  /** gzip 0 to 9 (default 1), zstd 0 to 22 (default 3); none for uncompressed. */
  level?: number;
}

// gzip -1: on a node_modules-like tree it is twice as fast as -6 for an 8% larger layer.
export const DEFAULT_GZIP_LEVEL = 1;
const DEFAULT_ZSTD_LEVEL = 3;

/** The highest level of each compression (0 is each one's lowest). */
export const MAX_LEVEL: Record<Exclude<CompressionType, 'uncompressed'>, number> = { gzip: 9, zstd: 22 };

/** The OCI media type of a layer compressed so. */
export const LAYER_MEDIA_TYPES: Record<CompressionType, string> = {
  gzip: MediaTypes.ociLayerGzip, zstd: MediaTypes.ociLayerZstd, uncompressed: MediaTypes.ociLayer,
};

/** A layer media type's compression (OCI's and Docker's names), or undefined for one that is not a layer's. */
export function compressionOf(mediaType: string): CompressionType | undefined {
  if (/(\.tar|tar\+gzip|tar\.gzip)$/.test(mediaType)) return mediaType.endsWith('gzip') ? 'gzip' : 'uncompressed';
  if (/tar\+zstd$/.test(mediaType)) return 'zstd';
  return undefined;
}

/**
 * A tar stream compressed as asked. Blocks of `pool` that the tar holds are given back to it once
 * what was made of them has been consumed: the tar's writer takes each block from the pool and
 * leaves it alone once yielded, and the consumer is done with each chunk before it asks for the
 * next (Store.writeBlob is).
 */
export function compressed(tar: AsyncIterable<Buffer>, compression: Compression, pool?: BlockPool): AsyncIterable<Buffer> {
  if (compression.type === 'gzip') return gzipParallel(tar, compression.level ?? DEFAULT_GZIP_LEVEL, pool);
  if (compression.type === 'zstd') return zstdParallel(tar, compression.level ?? DEFAULT_ZSTD_LEVEL, pool);
  return passedOn(tar, pool);
}

/** The tar as it is, each block given back once consumed. */
async function* passedOn(tar: AsyncIterable<Buffer>, pool: BlockPool | undefined): AsyncGenerator<Buffer> {
  for await (const block of tar) {
    yield block;
    pool?.give(block);
  }
}

/** The compressors' block size: a tar written in blocks of it is compressed without copies. */
export const BLOCK_SIZE = 1 << 20;

/**
 * Blocks of BLOCK_SIZE bytes that a tar is written into and that `compressed` gives back once
 * their output has been consumed. A new buffer for each megabyte left dead buffers that only a
 * full garbage collection frees (layers/garbage.ts).
 */
export class BlockPool {
  private readonly free: Buffer[] = [];
  private readonly lent = new WeakSet<Buffer>();

  take(): Buffer {
    const block = this.free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
    this.lent.add(block);
    return block;
  }

  /** Takes a block back if it is one of this pool's: nothing may read or write it after this. */
  give(block: Buffer): void {
    if (this.lent.delete(block)) this.free.push(block);
  }
}
const WINDOW = 32 * 1024;
/** zlib's output pieces: with its default 16 KiB, a block's output came back in some 30 callbacks and a join. */
const OUTPUT_CHUNK = 256 * 1024;
/** Magic, deflate, no flags, mtime 0, no extra flags, OS unix: what `gzip -n` writes. */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

const SAMPLE = 4096;

/** Bits per byte of a sample, by its byte histogram: about 8 for random or compressed data. */
function entropy(sample: Buffer): number {
  const counts = new Uint32Array(256);
  for (const byte of sample) counts[byte]!++;
  let bits = 0;
  for (const count of counts) if (count > 0) bits -= (count / sample.length) * Math.log2(count / sample.length);
  return bits;
}

/** Whether deflate would gain nothing on the block: three samples all look random. */
function incompressible(block: Buffer): boolean {
  if (block.length < 3 * SAMPLE) return false;
  const starts = [0, (block.length - SAMPLE) >> 1, block.length - SAMPLE];
  return starts.every((start) => entropy(block.subarray(start, start + SAMPLE)) > 7.9);
}

/** zlib's one-shot calls leave an output buffer of OUTPUT_CHUNK and the output behind them: garbage. */
const zlibGarbage = (out: Buffer): number => OUTPUT_CHUNK + out.length;

function compress(block: Buffer, level: number, dictionary: Buffer | undefined, flush: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    deflateRaw(block, { level, finishFlush: flush, chunkSize: OUTPUT_CHUNK, ...(dictionary ? { dictionary } : {}) }, (error, out) => {
      if (error) return reject(error);
      countTransientBytes(zlibGarbage(out));
      resolve([out]);
    });
  });
}

/** Regroups a stream of chunks into blocks of `size` bytes (the last may be shorter); a block in one chunk is not copied. */
async function* blocks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  const joined = (): Buffer => (parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  for await (const chunk of source) {
    let rest = chunk;
    while (held + rest.length >= size) {
      parts.push(rest.length === size - held ? rest : rest.subarray(0, size - held));
      rest = rest.subarray(size - held);
      yield joined();
      parts = [];
      held = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield joined();
}

/** Deflate's largest stored block. */
const STORED_MAX = 0xffff;

/**
 * A block as deflate stored blocks, not final, written here rather than by zlib at level 0 (which
 * costs a thread-pool trip and a copy per 16 KiB): a 5-byte header before each piece of at most
 * 65,535 bytes, the pieces themselves not copied. The stream is byte-aligned where it starts,
 * after the gzip header or a block ended with a sync flush, and where it ends.
 */
function storedBlocks(block: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  for (let at = 0; at < block.length; at += STORED_MAX) {
    const piece = block.subarray(at, at + STORED_MAX);
    const header = Buffer.alloc(5); // BFINAL 0, BTYPE 00 (stored), padding bits
    header.writeUInt16LE(piece.length, 1);
    header.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(header, piece);
  }
  return parts;
}

/**
 * Compression jobs, started in block order and their outputs taken in it: at most two per core at
 * once. A job's block goes back to the pool once its outputs have been consumed (the generator
 * is resumed after the last of them), stored blocks being pieces of the block itself.
 */
class InOrder {
  private readonly pending: { outputs: Promise<Buffer[]>; block?: Buffer }[] = [];
  private readonly pool: BlockPool | undefined;

  constructor(pool: BlockPool | undefined) {
    this.pool = pool;
  }

  add(outputs: Promise<Buffer[]>, block?: Buffer): void {
    outputs.catch(() => undefined); // awaited in order by take; this only stops an early "unhandled" report
    this.pending.push({ outputs, ...(block ? { block } : {}) });
  }

  /** The outputs of the oldest jobs, until `left` are still pending (2 per core by default). */
  async *take(left = 2 * availableParallelism() - 1): AsyncGenerator<Buffer> {
    while (this.pending.length > left) {
      const { outputs, block } = this.pending.shift()!;
      yield* await outputs;
      if (block) this.pool?.give(block);
    }
  }
}

/** gzip (one member) on every core; blocks of `pool` go back to it once their output is consumed. */
export async function* gzipParallel(source: AsyncIterable<Buffer>, level: number, pool?: BlockPool): AsyncGenerator<Buffer> {
  const jobs = new InOrder(pool);
  let crc = 0;
  let length = 0;
  let dictionary: Buffer | undefined;
  yield HEADER;
  for await (const block of blocks(source, BLOCK_SIZE)) {
    crc = crc32(block, crc);
    length += block.length;
    jobs.add(incompressible(block) ? Promise.resolve(storedBlocks(block)) : compress(block, level, dictionary, constants.Z_SYNC_FLUSH), block);
    // A copy: the block may go back to the pool before the next block's job has read it.
    dictionary = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
    yield* jobs.take();
  }
  jobs.add(compress(Buffer.alloc(0), level, dictionary, constants.Z_FINISH));
  yield* jobs.take(0);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  yield trailer;
}

function zstdFrame(block: Buffer, level: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    zstdCompress(block, { chunkSize: OUTPUT_CHUNK, params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_checksumFlag]: 1 } }, (error, out) => {
      if (error) return reject(error);
      countTransientBytes(zlibGarbage(out));
      resolve([out]);
    });
  });
}

/** zstd (one frame per block) on every core; blocks of `pool` go back to it once their output is consumed. */
export async function* zstdParallel(source: AsyncIterable<Buffer>, level: number, pool?: BlockPool): AsyncGenerator<Buffer> {
  const jobs = new InOrder(pool);
  let empty = true;
  for await (const block of blocks(source, BLOCK_SIZE)) {
    empty = false;
    jobs.add(zstdFrame(block, level), block);
    yield* jobs.take();
  }
  // An empty input is one empty frame, as zstd writes it, never zero bytes.
  if (empty) jobs.add(zstdFrame(Buffer.alloc(0), level));
  yield* jobs.take(0);
}

/** The decompressed tar stream of a layer blob (by its media type: gzip, zstd or plain). */
export async function* layerTar(store: Store, layer: Layer): AsyncGenerator<Buffer> {
  const compression = compressionOf(layer.mediaType);
  if (!compression) throw new Error(`unsupported layer media type ${layer.mediaType}`);
  const source = store.stream(layer.digest);
  // Decompressed in large pieces, and ahead of their use: the decompressor runs on the thread pool
  // while this thread writes the files (with 16 KB pieces on demand, a Debian base took half as
  // long again).
  let stream: Readable = source;
  if (compression !== 'uncompressed') {
    const decompressed = new PassThrough({ highWaterMark: 8 << 20 });
    const decompressor = compression === 'gzip' ? createGunzip({ chunkSize: 1 << 20 }) : createZstdDecompress({ chunkSize: 1 << 20 });
    // A failure destroys every stream of the pipeline: the loop below sees it on `decompressed`.
    pipeline(source, decompressor, decompressed).catch(() => undefined);
    stream = decompressed;
  }
  yield* countedChunks(stream);
}

/**
 * The image with every layer compressed as asked (buildx's force-compression): a layer already so
 * compressed is kept as it is; another is decompressed and compressed again (its diffID stays).
 */
export async function recompressed(store: Store, image: Image, compression: Compression): Promise<Image> {
  if (image.layers.every((layer) => compressionOf(layer.mediaType) === compression.type)) return image;
  const layers: Layer[] = [];
  for (const layer of image.layers) {
    if (compressionOf(layer.mediaType) === compression.type) {
      layers.push(layer);
      continue;
    }
    const { digest, size } = await store.writeBlob(compressed(layerTar(store, layer), compression));
    layers.push({ mediaType: LAYER_MEDIA_TYPES[compression.type], digest, size, diffId: layer.diffId });
  }
  return writeImage(store, image.config, layers, image.manifest.annotations);
}
