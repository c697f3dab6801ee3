// What a layer holds, one entry per path, before it becomes a tar.
import { readlinkSync, type BigIntStats, type Stats } from 'node:fs';
import type { Readable } from 'node:stream';

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface LayerEntry {
  /** Path inside the image, relative, no leading or trailing slash: `usr/local/bin/app`. */
  path: string;
  type: EntryType;
  /** Permission bits with setuid, setgid and sticky (`0o7777` at most). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Symlink target as written, or the hardlink's target path (same form as `path`, in this layer). */
  linkname?: string;
  /** Byte count of a file's content. */
  size?: number;
  /** Where a file's content comes from: an absolute host path, or a stream factory. */
  source?: string | (() => Readable);
  xattrs?: Record<string, Buffer>;
}

/** The whiteout that deletes `path` in the layers below (`dir/.wh.name`). */
export const WHITEOUT_PREFIX = '.wh.';
/** The marker that hides a directory's lower contents (`dir/.wh..wh..opq`). */
export const OPAQUE_MARKER = '.wh..wh..opq';

/** A layer entry that would land outside the root, or that means nothing a runtime could apply. */
export class UnsafeLayerError extends Error {}

/**
 * What a layer entry's base name asks for: hide the directory's lower contents (`opaque`), delete
 * a sibling (`whiteout`), nothing at all (AUFS's own `.wh..wh.*` metadata, which runtimes skip),
 * or undefined for an ordinary entry. A whiteout of nothing, `.` or `..` is refused: it would
 * delete the directory itself, or its parent.
 */
export function whiteoutOf(name: string, path: string): { kind: 'opaque' } | { kind: 'whiteout'; hidden: string } | { kind: 'aufs-metadata' } | undefined {
  if (name === OPAQUE_MARKER) return { kind: 'opaque' };
  if (!name.startsWith(WHITEOUT_PREFIX)) return undefined;
  if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'aufs-metadata' };
  const hidden = name.slice(WHITEOUT_PREFIX.length);
  if (hidden === '' || hidden === '.' || hidden === '..') throw new UnsafeLayerError(`refusing layer entry "${path}": a whiteout must name what it deletes`);
  return { kind: 'whiteout', hidden };
}

/** A whiteout or opaque marker (`path` ends in one of the names above): an empty file of root's, mode 0. */
export function whiteoutEntry(path: string, mtime: number): LayerEntry {
  return { path, type: 'file', mode: 0, uid: 0, gid: 0, mtime, size: 0 };
}

/** Linux's limit on the symlinks one path lookup follows (ELOOP). */
const MAX_SYMLINK_HOPS = 40;

/**
 * Follows the symlinks in `path` (absolute or relative to a root) as a process chrooted at the
 * root would: `..` and absolute targets never leave it. `linkAt` gives the target of the symlink
 * at a relative path, if one is there. Returns the resulting path, relative (`` for the root). Time
 * grows with the length of the path, however many parts it has.
 */
export function followSymlinks(path: string, linkAt: (rel: string) => string | undefined, maxHops = MAX_SYMLINK_HOPS): string {
  let pending = path.split('/').reverse(); // the next part last
  let resolved = '';
  for (let hops = 0; pending.length > 0;) {
    const part = pending.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved = resolved.slice(0, Math.max(0, resolved.lastIndexOf('/')));
      continue;
    }
    const next = resolved === '' ? part : `${resolved}/${part}`;
    const linkname = linkAt(next);
    if (linkname === undefined) {
      resolved = next;
      continue;
    }
    if (++hops > maxHops) throw new Error(`too many levels of symbolic links in /${path.replace(/^\/+/, '')}`);
    if (linkname.startsWith('/')) resolved = '';
    pending = pending.concat(linkname.split('/').reverse());
  }
  return resolved;
}

/** The directory a relative path is in (`` for the root). */
export const parentOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf('/')));

/**
 * A modification time as a layer entry holds it: whole seconds. From bigint stats it is exact; a
 * number's milliseconds may have rounded up into the next second.
 */
export const mtimeOf = (stats: Stats | BigIntStats): number => (
  typeof stats.mtimeMs === 'bigint' ? Number(stats.mtimeMs / 1000n) : Math.floor(stats.mtimeMs / 1000)
);

/**
 * The entry for what lstat saw at `source` on the host: a file (its content read from there), a
 * directory or a symlink (its target read), with its owner, mode and mtime; undefined for sockets,
 * FIFOs and devices.
 */
export function entryFromStats(path: string, stats: Stats | BigIntStats, source: string): LayerEntry | undefined {
  const common = { path, mode: Number(stats.mode) & 0o7777, uid: Number(stats.uid), gid: Number(stats.gid), mtime: mtimeOf(stats) };
  if (stats.isFile()) return { ...common, type: 'file', size: Number(stats.size), source };
  if (stats.isDirectory()) return { ...common, type: 'directory' };
  if (stats.isSymbolicLink()) return { ...common, type: 'symlink', linkname: readlinkSync(source) };
  return undefined;
}
