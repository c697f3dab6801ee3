// What a layer holds, one entry per path, before it becomes a tar.
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

/** Linux's limit on the symlinks one path lookup follows (ELOOP). */
const MAX_SYMLINK_HOPS = 40;

/**
 * Follows the symlinks in `path` (in an image, absolute or relative to its root) as a process
 * chrooted at the root would: `..` and absolute targets never leave it. `linkAt` gives the target
 * of the symlink at a relative path, if one is there. Returns the parts of the resulting path.
 */
export function followSymlinks(path: string, linkAt: (rel: string) => string | undefined): string[] {
  let pending = path.split('/').filter((part) => part !== '' && part !== '.');
  const resolved: string[] = [];
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const linkname = linkAt([...resolved, part].join('/'));
    if (linkname === undefined) {
      resolved.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new Error(`too many levels of symbolic links in /${path.replace(/^\/+/, '')}`);
    if (linkname.startsWith('/')) resolved.length = 0;
    pending = [...linkname.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return resolved;
}
