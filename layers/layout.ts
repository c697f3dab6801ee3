// An OCI image layout as a source of images: a directory, or a tarball of one (hoist save, buildx
// --output type=oci, skopeo's oci-archive:). A tarball is read in place: one pass over its headers,
// seeking past the contents, finds where each member's bytes lie, so a blob or any range of one
// is read without unpacking anything. Every blob is checked against its digest as it is read.
import { createReadStream } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { parseIndex, type ImageIndex } from './image.ts';
import { checkedBytes, checkedStream, type BlobSource, type ByteRange } from './source.ts';
import { REF_NAME, type Descriptor } from './store.ts';
import { BLOCK, checkHeader, headerName, headerNumber, META_LIMIT, parsePax, paxNumber } from './tar.ts';
import { parseDigest, parseJson } from './untrusted.ts';

/** Where a tarball's file lies in it. */
interface Member {
  offset: number;
  size: number;
}

/** Where a blob's bytes lie: `size` bytes of `file` from `offset` (a tarball's member, or a file of the directory). */
interface Place extends Member {
  file: string;
}

export class Layout implements BlobSource {
  readonly name: string;
  /** What index.json lists: images' manifests, or indexes of several platforms. */
  readonly index: ImageIndex;
  private readonly path: string;
  /** A tarball's files by name (`blobs/sha256/...`); none for a directory. */
  private readonly members: Map<string, Member> | undefined;
  /** Blobs read whole and found to match their digest, for reads of a range (see open). */
  private readonly verified = new Map<string, Promise<void>>();

  private constructor(path: string, name: string, index: ImageIndex, members: Map<string, Member> | undefined) {
    this.path = path;
    this.name = name;
    this.index = index;
    this.members = members;
  }

  /** The layout at `path` (a directory or a tarball); `name` names it in messages. */
  static async open(path: string, name = path): Promise<Layout> {
    const what = `${name}: index.json`;
    if ((await stat(path)).isDirectory()) {
      return new Layout(path, name, parseIndex(parseJson(await readFile(join(path, 'index.json')), what), what), undefined);
    }
    const members = await tarMembers(path, name);
    const index = members.get('index.json');
    if (!index) throw new Error(`${name} is not an OCI image layout tarball: it has no index.json`);
    return new Layout(path, name, parseIndex(parseJson(await readPart({ file: path, ...index }), what), what), members);
  }

  /** The images whose ref.name is `select` (a tag) or whose digest it is, or every one when none is given. */
  select(select?: string): Descriptor[] {
    const chosen = this.index.manifests.filter((descriptor) => select === undefined || descriptor.annotations?.[REF_NAME] === select || descriptor.digest === select);
    if (chosen.length === 0) throw new Error(`${this.name} has no image ${select?.startsWith('sha256:') ? select : `tagged "${select}"`}`);
    return chosen;
  }

  async size(digest: string): Promise<number> {
    return (await this.place(digest)).size;
  }

  /**
   * A blob, checked against its digest as it streams. A range cannot be checked alone: the whole
   * blob is read and checked first (once), as a large blob goes to a registry in ranges.
   */
  stream(digest: string, range?: ByteRange): Readable {
    if (range) return Readable.from(this.checkedRange(digest, range), { objectMode: false });
    return checkedStream(Readable.from(this.bytes(digest), { objectMode: false }), digest, this.name);
  }

  async read(digest: string): Promise<Buffer> {
    return checkedBytes(await readPart(await this.place(digest)), digest, this.name);
  }

  private async place(digest: string): Promise<Place> {
    const hex = parseDigest(digest, this.name).slice('sha256:'.length);
    if (this.members) {
      const member = this.members.get(`blobs/sha256/${hex}`);
      if (member) return { file: this.path, ...member };
    } else {
      const file = join(this.path, 'blobs', 'sha256', hex);
      const info = await stat(file).catch(() => undefined);
      if (info?.isFile()) return { file, offset: 0, size: info.size };
    }
    throw new Error(`${this.name} is incomplete: blob ${digest} is missing`);
  }

  /** A blob's bytes (or a range of them) as they are, never past the blob's end. */
  private async *bytes(digest: string, range?: ByteRange): AsyncGenerator<Buffer> {
    const { file, offset, size } = await this.place(digest);
    const end = Math.min(range?.end ?? size - 1, size - 1);
    const start = range?.start ?? 0;
    if (start <= end) yield* createReadStream(file, { start: offset + start, end: offset + end });
  }

  private async *checkedRange(digest: string, range: ByteRange): AsyncGenerator<Buffer> {
    let verified = this.verified.get(digest);
    if (!verified) this.verified.set(digest, (verified = finished(this.stream(digest).resume())));
    await verified;
    yield* this.bytes(digest, range);
  }
}

/** `size` bytes of a file from `offset`. */
async function readPart({ file, offset, size }: Place): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    return await readAt(handle, offset, size);
  } finally {
    await handle.close();
  }
}

async function readAt(handle: FileHandle, offset: number, size: number): Promise<Buffer> {
  const buffer = Buffer.alloc(size);
  const { bytesRead } = await handle.read(buffer, 0, size, offset);
  return buffer.subarray(0, bytesRead);
}

/**
 * Where each file of a tarball lies, from its headers alone (USTAR, GNU long names, PAX path and
 * size records): the contents are seeked past, never read. A name given twice is its last copy.
 */
async function tarMembers(path: string, name: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const handle = await open(path, 'r');
  try {
    // A GNU long name (L) or PAX records (x) describe the entry that follows them.
    let longName: string | undefined;
    let paxSize: number | undefined;
    // Sizes are the archive's word: none may reach past its end, so nothing is read or allocated beyond it.
    const { size: fileSize } = await handle.stat();
    for (let at = 0; ;) {
      const block = await readAt(handle, at, BLOCK);
      if (block.length === 0 || block.every((byte) => byte === 0)) return members;
      if (block.length < BLOCK) throw new Error('tar: truncated header');
      checkHeader(block);
      const flag = String.fromCharCode(block[156]!);
      const size = (flag === 'x' || flag === 'L' ? undefined : paxSize) ?? headerNumber(block, 124, 12);
      const data = at + BLOCK;
      if (!Number.isSafeInteger(size) || size < 0 || data + size > fileSize) throw new Error('tar: an entry reaches past the end of the archive (truncated or corrupt)');
      if (flag === 'S') throw new Error('tar: sparse files are not supported');
      if ((flag === 'L' || flag === 'x') && size > META_LIMIT) throw new Error(`tar: a ${size}-byte long name or PAX header`);
      if (flag === 'L') longName = (await readAt(handle, data, size)).toString('utf8').replace(/\0.*$/s, '');
      else if (flag === 'x') {
        const records = parsePax(await readAt(handle, data, size));
        longName = records.get('path')?.toString('utf8') ?? longName;
        paxSize = paxNumber(records, 'size') ?? paxSize;
      } else if (flag !== 'g' && flag !== 'K') {
        if (flag === '0' || flag === '\0' || flag === '7') members.set((longName ?? headerName(block)).replace(/^(\.\/)+/, ''), { offset: data, size });
        longName = undefined;
        paxSize = undefined;
      }
      at = data + Math.ceil(size / BLOCK) * BLOCK;
    }
  } catch (error) {
    throw new Error(`${name}: ${(error as Error).message}`);
  } finally {
    await handle.close();
  }
}
