// Where an image's documents and blobs come from, as go-containerregistry's v1.Image has it: the
// store (store.ts) and an OCI image layout (a directory or a tarball, layout.ts) present the same small read
// interface, so reading an image, pushing it and saving it work from either. Only the store's
// blobs are trusted (they were checked on the way in); bytes from anywhere else are checked
// against their digest as they are read.
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';

/** Bytes that hash to something other than the digest they were given as. */
export class DigestMismatchError extends Error {}

/** Bytes `start` to `end` of a blob, both included (as createReadStream counts them). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobSource {
  /** How messages name it: `store`, or a layout's path. */
  readonly name: string;
  /** A blob's size in bytes. */
  size(digest: string): Promise<number>;
  /** A blob, or a range of it, as a stream; one from outside the store fails if it does not match its digest. */
  stream(digest: string, range?: ByteRange): Readable;
  /** A whole blob checked against its digest: a manifest, an index or a config. */
  read(digest: string): Promise<Buffer>;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const corrupt = (name: string, digest: string, actual: string): DigestMismatchError =>
  new DigestMismatchError(`${name} blob ${digest} is corrupt (its content hashes to ${actual})`);

/** `bytes`, when they are the blob `digest` names. */
export function checkedBytes(bytes: Buffer, digest: string, name: string): Buffer {
  const actual = sha256(bytes);
  if (actual !== digest) throw corrupt(name, digest, actual);
  return bytes;
}

/** `bytes` passed through, the stream failing at their end when they are not the blob `digest` names. */
export function checkedStream(bytes: Readable, digest: string, name: string): Readable {
  const hash = createHash('sha256');
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = `sha256:${hash.digest('hex')}`;
      done(actual === digest ? null : corrupt(name, digest, actual));
    },
  });
  // A failure on either side ends both; the reader sees it on `check`.
  return pipeline(bytes, check, () => undefined);
}
