// ADD's sources that are not plain files: local tar archives (unpacked) and URLs (downloaded).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdtemp, open, rm, stat, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { followSymlinks, LayerBuilder, parentOf, readTar, type LayerEntry } from '../layers/index.ts';
import { httpGet, type ClientOptions } from '../registry/index.ts';
import { cleanPath } from './context.ts';

type Compression = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'none';

/** The compression of a file, by its magic number, as moby's compression.Detect sees it. */
function detect(head: Buffer): Compression {
  const starts = (...bytes: number[]): boolean => bytes.every((byte, i) => head[i] === byte);
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (starts(0x1f, 0x8b, 0x08)) return 'gzip';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  // A zstd frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F).
  if (starts(0x28, 0xb5, 0x2f, 0xfd) || (head.length >= 8 && (head.readUInt32LE(0) & 0xfffffff0) === 0x184d2a50)) return 'zstd';
  return 'none';
}

/**
 * A file's bytes, decompressed as they are read. Node has no bzip2 or xz, and no npm package both
 * streams and is kept up, so those two go through the system's `bzip2` and `xz` (packages bzip2
 * and xz-utils, in every Debian and Ubuntu install). Closing the generator early ends the reading.
 */
async function* decompressed(path: string): AsyncGenerator<Buffer> {
  const handle = await open(path, 'r');
  const head = Buffer.alloc(8);
  const { bytesRead } = await handle.read(head, 0, 8, 0).finally(() => handle.close());
  const compression = detect(head.subarray(0, bytesRead));
  if (compression === 'bzip2' || compression === 'xz') {
    const child = spawn(compression, ['-dc', '--', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exit = once(child, 'close');
    exit.catch(() => undefined); // the rejection is seen below, unless the reader stopped early
    try {
      yield* child.stdout;
      const [code] = await exit;
      if (code !== 0) throw new Error(`${compression}: ${path}: ${stderr.trim() || `exit status ${code}`}`);
    } finally {
      if (child.exitCode === null) child.kill();
    }
    return;
  }
  const file = createReadStream(path);
  if (compression === 'none') {
    yield* file;
    return;
  }
  const decompressor = compression === 'gzip' ? createGunzip() : createZstdDecompress();
  const done = pipeline(file, decompressor);
  done.catch(() => undefined); // the error also reaches the decompressor, read below
  yield* decompressor;
}

/**
 * Whether ADD unpacks a local file: a regular file whose (decompressed) start is a tar header, as
 * BuildKit decides by content alone. An empty tar is not an archive there either.
 */
export async function isLocalArchive(path: string): Promise<boolean> {
  if (!(await stat(path).catch(() => undefined))?.isFile()) return false;
  const chunks = decompressed(path);
  try {
    return !(await readTar(chunks).next()).done;
  } catch {
    return false;
  } finally {
    await chunks.return(undefined);
  }
}

export interface ArchiveOptions {
  /** Where file contents are extracted to (in a new directory). The caller removes it. */
  tmpDir: string;
  /** `--chown`: every entry from the archive gets this owner, else the archive's owners stay. */
  chown?: { uid: number; gid: number };
  /** The mtime of the directories the extraction creates (destDir and missing parents). */
  createdDirMtime?: number;
  /** Whether a path (absolute, in the image) is already a directory below this layer. */
  destIsDirectory?: (absPath: string) => boolean;
  /** What the layers below have at a path (absolute in the image, symlinks not followed), if anything. */
  below?: (absPath: string) => { type: string; linkname?: string } | undefined;
  /** Told once of entries a rootless build cannot make (device nodes, FIFOs). */
  warn?: (message: string) => void;
}

/**
 * The entries of a tar archive unpacked into `destDir` (absolute in the image), as BuildKit's ADD
 * does with moby's go-archive: owners, modes, mtimes and links are kept; a leading `/` is dropped;
 * names and hardlinks that leave the destination (`..`) are refused; a later entry replaces an
 * earlier one; missing parents are made 0755 root:root. `--chmod` does not apply. An entry's
 * parent directories are resolved inside the image's root, through the archive's own symlinks and
 * the image's, as BuildKit's chrooted unpack does: `evil -> /outside` then `evil/pwned` gives
 * `/outside/pwned`, never a layer with a path through a symlink. Devices and FIFOs are skipped,
 * with a warning: a rootless build cannot make them.
 */
export async function archiveEntries(archivePath: string, destDir: string, options: ArchiveOptions): Promise<LayerEntry[]> {
  const dest = cleanPath(`/${destDir}`).slice(1);
  const mtime = options.createdDirMtime ?? 0;
  const layer = new LayerBuilder((path) => options.destIsDirectory?.(`/${path}`) === true);
  const failure = (entryName: string, message: string): Error => new Error(`${archivePath}: entry "${entryName}": ${message}`);
  const makeDirectories = (path: string, owner: { uid: number; gid: number }, entryName: string): void => {
    const blocked = layer.mkdirAll(path, (dir) => ({ path: dir, type: 'directory', mode: 0o755, ...owner, mtime }));
    if (blocked !== undefined) throw failure(entryName, `/${blocked} is not a directory`);
  };
  /** `path` (relative to the image's root) with symlinks in its parents followed, inside the root. */
  const resolveParents = (path: string, entryName: string): string => {
    const linkAt = (rel: string): string | undefined => {
      const node = layer.get(rel) ?? options.below?.(`/${rel}`);
      return node?.type === 'symlink' ? node.linkname : undefined;
    };
    try {
      const parent = followSymlinks(parentOf(path), linkAt);
      const name = path.slice(path.lastIndexOf('/') + 1);
      return parent === '' ? name : `${parent}/${name}`;
    } catch (error) {
      throw failure(entryName, (error as Error).message);
    }
  };
  const skipped = new Set<string>();

  makeDirectories(dest, options.chown ?? { uid: 0, gid: 0 }, destDir);
  const contentDir = await mkdtemp(join(options.tmpDir, 'add-'));
  let files = 0;
  const chunks = decompressed(archivePath);
  try {
    for await (const { header, body } of readTar(chunks)) {
      const name = cleanPath(header.path.replace(/^\/+/, ''));
      if (name === '.') continue;
      if (name === '..' || name.startsWith('../')) throw new Error(`${archivePath}: invalid entry name "${header.path}"`);
      if (header.type !== 'file' && header.type !== 'directory' && header.type !== 'symlink' && header.type !== 'hardlink') {
        if (!skipped.has(header.type)) options.warn?.(`${archivePath}: skipping ${header.type} entries (such as ${name}): a rootless build cannot make them`);
        skipped.add(header.type);
        continue;
      }
      const path = resolveParents(dest ? `${dest}/${name}` : name, header.path);
      const owner = options.chown ?? { uid: header.uid, gid: header.gid };
      makeDirectories(parentOf(path), { uid: 0, gid: 0 }, header.path);
      const entry: LayerEntry = { path, type: header.type, mode: header.mode & 0o7777, ...owner, mtime: header.mtime };
      if (header.xattrs && Object.keys(header.xattrs).length > 0) entry.xattrs = header.xattrs;
      let inode: string | undefined;
      if (header.type === 'file') {
        entry.source = join(contentDir, String(files++));
        entry.size = header.size;
        await pipeline(body, createWriteStream(entry.source));
      } else if (header.type === 'symlink') {
        entry.linkname = header.linkname ?? '';
      } else if (header.type === 'hardlink') {
        // Hardlink targets are names in the archive; an absolute one is taken from the archive's root.
        const target = cleanPath((header.linkname ?? '').replace(/^\/+/, ''));
        if (target === '.' || target === '..' || target.startsWith('../')) throw new Error(`${archivePath}: invalid hardlink target "${header.linkname}"`);
        const linked = layer.get(resolveParents(dest ? `${dest}/${target}` : target, header.path));
        if (linked?.type !== 'file') throw new Error(`${archivePath}: hardlink "${header.path}" to "${header.linkname}", a file the archive does not hold before it`);
        // Kept as a file sharing the target's content (its source file): the layer makes the links.
        inode = linked.source as string;
        layer.set(linked, inode); // the same entry, now known to share its content
        Object.assign(entry, { type: 'file', source: linked.source, size: linked.size });
      }
      layer.put(entry, inode);
    }
  } finally {
    // readTar leaves its source open when the loop stops early.
    await chunks.return(undefined);
  }
  return layer.build();
}

/**
 * Downloads a URL for ADD into a new directory under `tmpDir` and returns the file's path: named
 * after the URL's last path segment (`__unnamed__` without one), mode 0600, mtime from
 * Last-Modified (else the epoch), as BuildKit's HTTP source does. `checksum` is `sha256:<hex>`.
 * The download goes as registry requests do (`registry`'s CAs, the proxies, the timeouts). URL
 * sources are not unpacked unless `ADD --unpack=true`.
 */
export async function fetchUrl(url: string, tmpDir: string, checksum?: string, registry?: ClientOptions): Promise<string> {
  if (checksum !== undefined && !/^sha256:[0-9a-f]{64}$/.test(checksum)) {
    throw new Error(`invalid checksum "${checksum}": expected sha256: and 64 lowercase hex digits`);
  }
  const response = await httpGet(url, registry).catch((error: Error) => {
    throw new Error(`downloading ${url}: ${error.message}`);
  });
  if (response.status < 200 || response.status >= 400) {
    await response.body.dump();
    throw new Error(`downloading ${url}: invalid response status ${response.status}`);
  }
  const file = join(await mkdtemp(join(tmpDir, 'url-')), urlFileName(url));
  const hash = createHash('sha256');
  await pipeline(response.body, async function* (chunks: AsyncIterable<Buffer>) {
    for await (const chunk of chunks) {
      hash.update(chunk);
      yield chunk;
    }
  }, createWriteStream(file));
  const digest = `sha256:${hash.digest('hex')}`;
  if (checksum !== undefined && digest !== checksum) {
    await rm(file, { force: true });
    throw new Error(`digest mismatch for ${url}: ${digest} (expected: ${checksum})`);
  }
  await chmod(file, 0o600);
  const lastModified = Date.parse(String(response.headers['last-modified'] ?? ''));
  const mtime = Number.isNaN(lastModified) ? 0 : lastModified / 1000;
  await utimes(file, mtime, mtime);
  return file;
}

/** BuildKit's name for a downloaded file: the URL path's base, made safe. */
function urlFileName(url: string): string {
  let base = '';
  try {
    base = posix.basename(decodeURIComponent(new URL(url).pathname));
  } catch {
    // An unparsable URL gets the default name, as in BuildKit.
  }
  if (base === '' || base === '/') return '__unnamed__';
  // Go's path.Base of the decoded path, then pathutil.SafeFileName.
  const name = base.trim();
  return name === '' || name === '.' || name === '..' || /[\u0000-\u001f\u007f-\u009f]/.test(name) ? 'download' : name;
}
