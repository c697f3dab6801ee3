// A layer's entries as they are gathered, one per path: set, replaced or merged, with the parent
// directories they imply (mkdir -p), then sorted for the tar with files that share content as
// hardlinks. COPY, ADD's archives and RUN's changes are all made this way.
import type { LayerEntry } from './entry.ts';
import { sortEntries } from './layer.ts';

export class LayerBuilder {
  private readonly entries = new Map<string, LayerEntry>();
  /** A key per file whose content others share (the same inode): one file and hardlinks to it in the tar. */
  private readonly inodes = new Map<LayerEntry, string>();
  private readonly isDirectoryBelow: (path: string) => boolean;

  /** `isDirectoryBelow` says whether a path this layer does not hold is a directory in what lies below it. */
  constructor(isDirectoryBelow: (path: string) => boolean = () => false) {
    this.isDirectoryBelow = isDirectoryBelow;
  }

  get(path: string): LayerEntry | undefined {
    return this.entries.get(path);
  }

  /** Whether `path` is a directory: as this layer holds it, else below it (the root always is). */
  isDirectory(path: string): boolean {
    const entry = this.entries.get(path);
    return entry ? entry.type === 'directory' : path === '' || this.isDirectoryBelow(path);
  }

  /** Sets the entry at its path, over whatever was there. `inode` keys a file's content that other entries share. */
  set(entry: LayerEntry, inode?: string): void {
    this.entries.set(entry.path, entry);
    if (inode !== undefined) this.inodes.set(entry, inode);
  }

  /** Puts an entry as go-archive unpacks one: a directory over a directory merges; anything else replaces the old path and all below it. */
  put(entry: LayerEntry, inode?: string): void {
    const old = this.entries.get(entry.path);
    if (old && (old.type !== 'directory' || entry.type !== 'directory')) {
      for (const path of this.entries.keys()) if (path === old.path || path.startsWith(`${old.path}/`)) this.entries.delete(path);
    }
    this.set(entry, inode);
  }

  /**
   * Makes the directories missing along `path` (itself included), as mkdir -p does, with the
   * entries `make` gives. Returns the path of a non-directory of this layer in the way, if there
   * is one: nothing is made from there on.
   */
  mkdirAll(path: string, make: (dir: string) => LayerEntry): string | undefined {
    let dir = '';
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      dir = dir === '' ? part : `${dir}/${part}`;
      if (this.isDirectory(dir)) continue;
      if (this.entries.has(dir)) return dir;
      this.set(make(dir));
    }
    return undefined;
  }

  /**
   * The entries sorted by path, each directory before its contents; files that share content are
   * written as one file, at the first path, and hardlinks to it, as a tar must.
   */
  build(): LayerEntry[] {
    const first = new Map<string, string>();
    return sortEntries(this.entries.values()).map((entry) => {
      const key = this.inodes.get(entry);
      if (key === undefined) return entry;
      const primary = first.get(key);
      if (primary === undefined) {
        first.set(key, entry.path);
        return { ...entry, type: 'file' as const };
      }
      const { source: _source, size: _size, ...rest } = entry;
      return { ...rest, type: 'hardlink' as const, linkname: primary };
    });
  }
}
