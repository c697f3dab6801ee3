// What a RUN changed, as layer entries: new and changed files as they are, deletions as
// `.wh.NAME`, replaced directories as `.wh..wh..opq`, files sharing an inode as tar hardlinks, and
// xattrs except overlay's own. Read from an overlay upper dir, or, where overlay is unavailable,
// from a copied root compared with a snapshot taken before the step.
import { lstatSync, readdirSync, readlinkSync, type BigIntStats, type Stats } from 'node:fs';
import { join } from 'node:path';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, type LayerEntry } from './entry.ts';
import { sortWithHardlinks } from './layer.ts';

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

  return sortWithHardlinks(entries, inodes);
}

/**
 * Identity and change time of every path under a root, before a step runs on it. An inode number
 * alone is no identity: a file system reuses a freed one at once, so the birth time goes with it.
 */
export type Snapshot = Map<string, { ino: bigint; birth: bigint; ctime: bigint; directory: boolean }>;

export function snapshot(root: string): Snapshot {
  const result: Snapshot = new Map();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const stats = lstatSync(abs, { bigint: true });
      result.set(path, { ino: stats.ino, birth: stats.birthtimeNs, ctime: stats.ctimeNs, directory: stats.isDirectory() });
      if (stats.isDirectory()) walk(abs, path);
    }
  };
  walk(root, '');
  return result;
}

/**
 * The entries for what changed under `root` since `before`. The change time is the truth (no
 * user-space call can set it back): a path whose inode or change time differs was written. A
 * directory with a new inode replaced the old one: it is opaque, with all it holds. Every changed
 * path's parent directories come along, as in an overlay upper dir.
 */
export function changedEntries(root: string, before: Snapshot, options: UpperDirOptions): LayerEntry[] {
  const entries = new Map<string, LayerEntry>();
  const inodes = new Map<LayerEntry, string>();
  const seen = new Set<string>();
  const add = (abs: string, path: string, stats: BigIntStats): void => {
    const xattrs = Object.fromEntries(Object.entries(options.xattrs.get(abs) ?? {}).filter(([key]) => !OVERLAY_XATTR.test(key)));
    const common = { path, mode: Number(stats.mode & 0o7777n), uid: Number(stats.uid), gid: Number(stats.gid), mtime: Number(stats.mtimeMs / 1000n), ...(Object.keys(xattrs).length ? { xattrs } : {}) };
    if (stats.isDirectory()) entries.set(path, { ...common, type: 'directory' });
    else if (stats.isSymbolicLink()) entries.set(path, { ...common, type: 'symlink', linkname: readlinkSync(abs) });
    else if (stats.isFile()) {
      const entry: LayerEntry = { ...common, type: 'file', size: Number(stats.size), source: abs };
      entries.set(path, entry);
      if (stats.nlink > 1n) inodes.set(entry, `${stats.dev}:${stats.ino}`);
    } else options.warn(`sockets, FIFOs and device nodes made by RUN are left out of the layer (such as /${path})`);
  };
  const addParents = (path: string): void => {
    for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
      const parent = path.slice(0, slash);
      if (!entries.has(parent)) add(join(root, parent), parent, lstatSync(join(root, parent), { bigint: true }));
    }
  };
  const walk = (dir: string, rel: string, allNew: boolean): void => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const stats = lstatSync(abs, { bigint: true });
      seen.add(path);
      const old = before.get(path);
      const replaced = old !== undefined && (old.ino !== stats.ino || old.birth !== stats.birthtimeNs || old.directory !== stats.isDirectory());
      const changed = allNew || old === undefined || replaced || old.ctime !== stats.ctimeNs;
      if (changed) {
        addParents(path);
        add(abs, path, stats);
        if (replaced && stats.isDirectory()) entries.set(`${path}/${OPAQUE_MARKER}`, { path: `${path}/${OPAQUE_MARKER}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: Number(stats.mtimeMs / 1000n), size: 0 });
      }
      if (stats.isDirectory()) walk(abs, path, allNew || old === undefined || replaced);
    }
  };
  walk(root, '', false);
  for (const [path] of before) {
    if (seen.has(path)) continue;
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? '' : path.slice(0, slash);
    // Only the topmost deleted path needs a whiteout; a replaced parent is opaque already.
    if (parent !== '' && (!seen.has(parent) || entries.has(`${parent}/${OPAQUE_MARKER}`))) continue;
    const whiteout = `${parent ? `${parent}/` : ''}${WHITEOUT_PREFIX}${path.slice(slash + 1)}`;
    if (parent) addParents(whiteout);
    entries.set(whiteout, { path: whiteout, type: 'file', mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 });
  }
  return sortWithHardlinks([...entries.values()], inodes);
}
