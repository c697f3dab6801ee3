// What a RUN changed, read from its overlay upper directory: new and changed files as they are,
// deletions (overlay's 0/0 character devices) as `.wh.NAME`, directories overlay made opaque as
// `.wh..wh..opq`, files sharing an inode as tar hardlinks, and xattrs except overlay's own.
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type LayerEntry } from './entry.ts';
import { sortEntries } from './layer.ts';

const OVERLAY_XATTR = /^(user|trusted)\.overlay\./;

export interface UpperDirOptions {
  /** Extended attributes by absolute path (Node cannot read them itself). */
  xattrs: Map<string, Record<string, Buffer>>;
  /** Told once per kind of thing a layer cannot hold (sockets, devices). */
  warn: (message: string) => void;
}

export function upperDirEntries(upper: string, options: UpperDirOptions): LayerEntry[] {
  const entries: LayerEntry[] = [];
  const inodes = new Map<LayerEntry, string>();
  const warned = new Set<string>();
  const mtime = (stats: Stats): number => Math.floor(stats.mtimeMs / 1000);

  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const stats = lstatSync(abs);
      const xattrs = options.xattrs.get(abs) ?? {};
      const kept = Object.fromEntries(Object.entries(xattrs).filter(([key]) => !OVERLAY_XATTR.test(key)));
      const common = { path, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid, mtime: mtime(stats), ...(Object.keys(kept).length ? { xattrs: kept } : {}) };
      if (stats.isCharacterDevice() && stats.rdev === 0) {
        entries.push({ path: rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: mtime(stats), size: 0 });
      } else if (stats.isDirectory()) {
        entries.push({ ...common, type: 'directory' });
        if (xattrs['user.overlay.opaque']?.toString() === 'y' || xattrs['trusted.overlay.opaque']?.toString() === 'y') {
          entries.push({ path: `${path}/${OPAQUE_MARKER}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: mtime(stats), size: 0 });
        }
        walk(abs, path);
      } else if (stats.isSymbolicLink()) {
        entries.push({ ...common, type: 'symlink', linkname: readlinkSync(abs) });
      } else if (stats.isFile()) {
        const entry: LayerEntry = { ...common, type: 'file', size: stats.size, source: abs };
        entries.push(entry);
        if (stats.nlink > 1) inodes.set(entry, `${stats.dev}:${stats.ino}`);
      } else if (!warned.has('special')) {
        warned.add('special');
        options.warn(`sockets, FIFOs and device nodes made by RUN are left out of the layer (such as /${path})`);
      }
    }
  };
  walk(upper, '');

  // The first path of an inode, in the layer's order, holds the content; the others link to it.
  const firstPath = new Map<string, string>();
  return sortEntries(entries).map((entry) => {
    const inode = inodes.get(entry);
    if (inode === undefined) return entry;
    const first = firstPath.get(inode);
    if (first === undefined) {
      firstPath.set(inode, entry.path);
      return entry;
    }
    const { source: _source, size: _size, ...link } = entry;
    return { ...link, type: 'hardlink', linkname: first };
  });
}
