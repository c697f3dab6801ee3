// A tar codec of our own: deterministic USTAR headers with PAX records where needed (long or
// non-ASCII names, big ids and sizes, xattrs). tar-stream is not used because it turns PAX
// values into strings, which corrupts binary xattrs such as security.capability.
import type { EntryType } from './entry.ts';

export const BLOCK = 512;
export const END_OF_ARCHIVE = Buffer.alloc(BLOCK * 2);

export interface TarHeader {
  path: string;
  type: EntryType | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPEFLAGS: Record<TarHeader['type'], string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6',
};
const TYPES_BY_FLAG: Record<string, TarHeader['type']> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'directory', '6': 'fifo',
};
const XATTR_PREFIX = 'SCHILY.xattr.';
/** The largest value a field of `width` bytes holds in octal with its NUL. */
const octalMax = (width: number): number => 8 ** (width - 1) - 1;

function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  block.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  // The length prefix counts itself.
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

const isAscii = (text: string): boolean => /^[\x20-\x7e]*$/.test(text);

/** Splits a long ASCII name into USTAR's prefix and name fields, if it fits. */
function splitUstarName(name: string): [string, string] | undefined {
  if (name.length <= 100) return ['', name];
  for (let cut = name.indexOf('/'); cut >= 0; cut = name.indexOf('/', cut + 1)) {
    if (cut <= 155 && name.length - cut - 1 <= 100 && cut > 0 && cut < name.length - 1) return [name.slice(0, cut), name.slice(cut + 1)];
  }
  return undefined;
}

function ustarBlock(header: TarHeader, name: string, prefix: string, linkname: string, typeflag: string, size: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  writeOctal(block, 100, 8, header.mode & 0o7777);
  writeOctal(block, 108, 8, Math.min(header.uid, octalMax(8)));
  writeOctal(block, 116, 8, Math.min(header.gid, octalMax(8)));
  writeOctal(block, 124, 12, Math.min(size, octalMax(12)));
  writeOctal(block, 136, 12, Math.min(Math.max(0, Math.floor(header.mtime)), octalMax(12)));
  block.write('        ', 148, 8, 'ascii');
  block.write(typeflag, 156, 1, 'ascii');
  block.write(linkname, 157, 100, 'utf8');
  block.write('ustar\x0000', 257, 8, 'ascii');
  writeOctal(block, 329, 8, header.devmajor ?? 0);
  writeOctal(block, 337, 8, header.devminor ?? 0);
  block.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return block;
}

/** The header blocks of one entry (a PAX block first when needed). Content and padding follow. */
export function encodeHeader(header: TarHeader): Buffer {
  const name = header.type === 'directory' ? `${header.path}/` : header.path;
  const linkname = header.linkname ?? '';
  const records: Buffer[] = [];
  const split = isAscii(name) ? splitUstarName(name) : undefined;
  if (!split) records.push(paxRecord('path', name));
  if (!isAscii(linkname) || linkname.length > 100) records.push(paxRecord('linkpath', linkname));
  if (header.uid > octalMax(8)) records.push(paxRecord('uid', String(header.uid)));
  if (header.gid > octalMax(8)) records.push(paxRecord('gid', String(header.gid)));
  if (header.size > octalMax(12)) records.push(paxRecord('size', String(header.size)));
  for (const key of Object.keys(header.xattrs ?? {}).sort()) records.push(paxRecord(XATTR_PREFIX + key, header.xattrs![key]!));

  const size = header.type === 'file' ? header.size : 0;
  const [prefix, shortName] = split ?? ['', name.slice(0, 100)];
  const main = ustarBlock(header, shortName, prefix, linkname.length <= 100 && isAscii(linkname) ? linkname : '', TYPEFLAGS[header.type], size);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxHeader = ustarBlock({ ...header, uid: 0, gid: 0, mode: 0o644 }, 'PaxHeaders/' + shortName.slice(0, 88), '', '', 'x', pax.length);
  return Buffer.concat([paxHeader, pax, padding(pax.length), main]);
}

export function padding(size: number): Buffer {
  const remainder = size % BLOCK;
  return remainder === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - remainder);
}

/** Reads exact byte counts from an async stream of chunks, without joining large bodies. */
class ByteReader {
  private readonly source: AsyncIterator<Buffer>;
  private buffer: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  /** Takes the next chunk, once the last one is used up. */
  private async fill(): Promise<boolean> {
    const { value, done } = await this.source.next();
    if (done) return false;
    this.buffer = value;
    return true;
  }

  /** Exactly `count` bytes, or fewer at the end of the stream; a header across two chunks copies only its own bytes. */
  async read(count: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let have = 0; have < count;) {
      if (this.buffer.length === 0 && !(await this.fill())) break;
      const part = this.buffer.subarray(0, count - have);
      this.buffer = this.buffer.subarray(part.length);
      parts.push(part);
      have += part.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** `count` bytes as a series of chunks. */
  async *chunks(count: number): AsyncGenerator<Buffer> {
    let left = count;
    while (left > 0) {
      if (this.buffer.length === 0 && !(await this.fill())) throw new Error('tar: unexpected end of archive inside an entry');
      const chunk = this.buffer.subarray(0, left);
      this.buffer = this.buffer.subarray(chunk.length);
      left -= chunk.length;
      yield chunk;
    }
  }
}

const readString = (block: Buffer, offset: number, width: number): string => {
  const end = block.indexOf(0, offset);
  return block.toString('utf8', offset, end < 0 || end > offset + width ? offset + width : end);
};

/** A numeric header field: octal text, or GNU's base-256 for values too big for it. */
export function headerNumber(block: Buffer, offset: number, width: number): number {
  if (block[offset]! & 0x80) {
    let value = block[offset]! & 0x7f;
    for (let i = 1; i < width; i++) value = value * 256 + block[offset + i]!;
    return value;
  }
  const text = block.toString('ascii', offset, offset + width).replace(/[\0 ].*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** Refuses a block whose checksum (its bytes summed, the checksum field counted as spaces) is wrong. */
export function checkHeader(block: Buffer): void {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  if (sum !== headerNumber(block, 148, 8)) throw new Error('tar: header checksum mismatch (not a tar archive, or corrupt)');
}

/** The name a header holds, with its prefix field in a POSIX header (GNU's own keeps other data there). */
export function headerName(block: Buffer): string {
  const prefix = block.toString('ascii', 257, 263) === 'ustar\0' ? readString(block, 345, 155) : '';
  return prefix ? `${prefix}/${readString(block, 0, 100)}` : readString(block, 0, 100);
}

/** PAX records (`LENGTH key=value\n`, LENGTH counting the whole record in bytes). */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = Number(data.toString('ascii', at, space));
    if (space < 0 || !Number.isInteger(length) || length <= 0 || at + length > data.length) throw new Error('tar: malformed PAX header');
    const record = data.subarray(space + 1, at + length - 1);
    const equals = record.indexOf(0x3d);
    records.set(record.toString('utf8', 0, equals), record.subarray(equals + 1));
    at += length;
  }
  return records;
}

export interface TarEntry {
  header: TarHeader;
  /** The content; an entry's body must be read or left before the next entry is asked for. */
  body: AsyncIterable<Buffer>;
}

/** More than any long name or PAX header needs (Linux caps a file's xattrs at 64 KiB), and never a hostile one's gigabytes. */
export const META_LIMIT = 1024 * 1024;

/** A PAX record's number: digits only (a sign and a fraction for times), never what Number() makes of other text. */
export function paxNumber(pax: Map<string, Buffer>, key: string): number | undefined {
  const text = pax.get(key)?.toString('ascii');
  if (text === undefined) return undefined;
  const pattern = key === 'mtime' ? /^-?\d{1,16}(\.\d*)?$/ : /^\d{1,16}$/;
  if (!pattern.test(text)) throw new Error(`tar: a PAX ${key} of "${text.slice(0, 40)}"`);
  return Math.floor(Number(text));
}

/** Reads a tar stream entry by entry (USTAR, PAX, GNU long names). */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length === 0) return;
    if (block.length < BLOCK) throw new Error('tar: truncated header');
    if (block.every((byte) => byte === 0)) return;
    checkHeader(block);

    const flag = String.fromCharCode(block[156]!);
    const size = headerNumber(block, 124, 12);
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > META_LIMIT) throw new Error(`tar: a ${size}-byte long name or PAX header (at most ${META_LIMIT})`);
      const data = Buffer.concat(await collect(reader.chunks(size)));
      await reader.read(padding(size).length);
      if (flag === 'x') pax = parsePax(data);
      if (flag === 'L') longName = readString(data, 0, data.length);
      if (flag === 'K') longLink = readString(data, 0, data.length);
      continue;
    }
    const type = TYPES_BY_FLAG[flag];
    if (!type) throw new Error(`tar: unsupported entry type '${flag}'`);
    let path = pax.get('path')?.toString('utf8') ?? longName ?? headerName(block);
    if (type === 'directory') path = path.replace(/\/+$/, '');
    const xattrs: Record<string, Buffer> = {};
    for (const [key, value] of pax) if (key.startsWith(XATTR_PREFIX)) xattrs[key.slice(XATTR_PREFIX.length)] = value;
    const number = (key: string, offset: number, width: number): number => paxNumber(pax, key) ?? headerNumber(block, offset, width);
    const entrySize = paxNumber(pax, 'size') ?? size;
    const header: TarHeader = {
      path,
      type,
      mode: headerNumber(block, 100, 8) & 0o7777,
      uid: number('uid', 108, 8),
      gid: number('gid', 116, 8),
      size: type === 'file' ? entrySize : 0,
      mtime: number('mtime', 136, 12),
      linkname: pax.get('linkpath')?.toString('utf8') ?? longLink ?? readString(block, 157, 100),
      devmajor: headerNumber(block, 329, 8),
      devminor: headerNumber(block, 337, 8),
      xattrs,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;

    const dataSize = type === 'file' ? entrySize : size;
    let remaining = dataSize;
    const body = {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of reader.chunks(remaining)) {
          remaining -= chunk.length;
          yield chunk;
        }
      },
    };
    yield { header, body };
    // Skip whatever the consumer left unread.
    for await (const chunk of reader.chunks(remaining)) remaining -= chunk.length;
    await reader.read(padding(dataSize).length);
  }
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}
