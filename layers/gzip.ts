// gzip on every core, as pigz does it: the input is cut into 1 MiB blocks, each compressed in
// zlib's thread pool with the previous block's last 32 KiB as its dictionary and ended with a
// sync flush, so the blocks join into one deflate stream in one gzip member. A block that looks
// incompressible (random or already compressed data) is stored instead of deflated, which is
// nearly free. The output depends only on the input and the level, never on timing, so layer
// digests stay reproducible.
import { availableParallelism } from 'node:os';
import { constants, crc32, deflateRaw } from 'node:zlib';

const BLOCK_SIZE = 1 << 20;
const WINDOW = 32 * 1024;
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

function compress(block: Buffer, level: number, dictionary: Buffer | undefined, flush: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(block, { level, finishFlush: flush, ...(dictionary ? { dictionary } : {}) }, (error, out) => (error ? reject(error) : resolve(out)));
  });
}

/** Regroups a stream of chunks into blocks of `size` bytes (the last may be shorter). */
async function* blocks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const chunk of source) {
    let rest = chunk;
    while (held + rest.length >= size) {
      parts.push(rest.subarray(0, size - held));
      rest = rest.subarray(size - held);
      yield Buffer.concat(parts);
      parts = [];
      held = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

export async function* gzipParallel(source: AsyncIterable<Buffer>, level: number): AsyncGenerator<Buffer> {
  const inFlight = 2 * availableParallelism();
  const pending: Promise<Buffer>[] = [];
  const queue = (promise: Promise<Buffer>): void => {
    promise.catch(() => undefined); // awaited in order below; this only stops an early "unhandled" report
    pending.push(promise);
  };
  let crc = 0;
  let length = 0;
  let dictionary: Buffer | undefined;
  yield HEADER;
  for await (const block of blocks(source, BLOCK_SIZE)) {
    crc = crc32(block, crc);
    length += block.length;
    queue(compress(block, incompressible(block) ? 0 : level, dictionary, constants.Z_SYNC_FLUSH));
    dictionary = block.subarray(Math.max(0, block.length - WINDOW));
    while (pending.length >= inFlight) yield await pending.shift()!;
  }
  queue(compress(Buffer.alloc(0), level, dictionary, constants.Z_FINISH));
  while (pending.length > 0) yield await pending.shift()!;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  yield trailer;
}
