// Layer blobs compressed and decompressed.
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Layer } from './layer.ts';
import type { Store } from './store.ts';

/** The decompressed tar stream of a layer blob (gzip or plain, by magic bytes). */
export async function* layerTar(store: Store, layer: Layer): AsyncGenerator<Buffer> {
  const source = store.stream(layer.digest);
  if (!/(\.tar|tar\+gzip|tar\.gzip)$/.test(layer.mediaType)) throw new Error(`unsupported layer media type ${layer.mediaType}`);
  // Decompressed in large pieces, and ahead of their use: gunzip runs on the thread pool while this
  // thread writes the files (with 16 KB pieces on demand, a Debian base took half as long again).
  let stream: Readable = source;
  if (layer.mediaType.endsWith('gzip')) {
    const decompressed = new PassThrough({ highWaterMark: 8 << 20 });
    // A failure destroys every stream of the pipeline: the loop below sees it on `decompressed`.
    pipeline(source, createGunzip({ chunkSize: 1 << 20 }), decompressed).catch(() => undefined);
    stream = decompressed;
  }
  for await (const chunk of stream) yield chunk as Buffer;
}

