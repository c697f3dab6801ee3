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
