// V8 frees a dead Buffer's memory only when it collects the object that holds it, and it starts a
// full collection for such memory (outside its heap) only once 64 MB of it has piled up: a layer
// compressed or applied, or a blob written, raised a build's peak by that much in blocks, zlib's
// output pieces and stream chunks nobody used any more. Code that makes megabytes of short-lived
// buffers counts them here, and every 32 MiB of them starts an incremental full collection. That
// needs `gc`, which bin/hoist exposes (--expose-gc); without it (modules imported by tests) this
// does nothing.
const STEP = 32 << 20;

const gc = (globalThis as { gc?: (options: { type: 'major'; execution: 'async' }) => Promise<void> }).gc;
let sinceLast = 0;

/** Counts `bytes` of buffers that will soon be garbage. */
export function countTransientBytes(bytes: number): void {
  if (gc === undefined) return;
  sinceLast += bytes;
  if (sinceLast < STEP) return;
  sinceLast = 0;
  void gc({ type: 'major', execution: 'async' });
}

/** The chunks as they are, counted as transient (a blob read to be sent, say). */
export async function* countedChunks(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    countTransientBytes(chunk.length);
    yield chunk;
  }
}
