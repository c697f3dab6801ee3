// What a RUN changed, as layer entries: new and changed files as they are, deletions as
// `.wh.NAME`, replaced directories as `.wh..wh..opq`, files sharing an inode as tar hardlinks, and
// xattrs except overlay's own. Read from an overlay upper dir, or, where overlay is unavailable,
// from a copied root compared with a snapshot taken before the step.
import { lstatSync, readdirSync, type BigIntStats, type Stats } from 'node:fs';
import { join } from 'node:path';
import { entryFromStats, mtimeOf, OPAQUE_MARKER, parentOf, WHITEOUT_PREFIX, whiteoutEntry, type LayerEntry } from './entry.ts';
import { LayerBuilder } from './layer-builder.ts';

const OVERLAY_XATTR = /^(user|trusted)\.overlay\./;
const SPECIAL_FILES = 'sockets, FIFOs and device nodes made by RUN are left out of the layer';

export interface UpperDirOptions {
  /** Extended attributes by absolute path (Node cannot read them itself). */
  xattrs: Map<string, Record<string, Buffer>>;
  /** Told once per kind of thing a layer cannot hold (sockets, devices). */
  warn: (message: string) => void;
}

/** The entry for what lstat saw at `abs`, with its xattrs but overlay's own; undefined for sockets, FIFOs and devices. */
function entryAt(path: string, abs: string, stats: Stats | BigIntStats, options: UpperDirOptions): LayerEntry | undefined {
  const entry = entryFromStats(path, stats, abs);
  const xattrs = Object.entries(options.xattrs.get(abs) ?? {}).filter(([key]) => !OVERLAY_XATTR.test(key));
  if (entry && xattrs.length > 0) entry.xattrs = Object.fromEntries(xattrs);
  return entry;
}

/** The key of a file's content that other paths share (hardlinks), if any. */
const sharedInode = (stats: Stats | BigIntStats): string | undefined => (stats.isFile() && stats.nlink > 1 ? `${stats.dev}:${stats.ino}` : undefined);

export function upperDirEntries(upper: string, options: UpperDirOptions): LayerEntry[] {
  const layer = new LayerBuilder();
  let warned = false;
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const stats = lstatSync(abs);
      if (stats.isCharacterDevice() && stats.rdev === 0) {
        layer.set(whiteoutEntry(rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, mtimeOf(stats)));
        continue;
      }
      const entry = entryAt(path, abs, stats, options);
      if (!entry) {
        if (!warned) options.warn(`${SPECIAL_FILES} (such as /${path})`);
        warned = true;
        continue;
      }
      layer.set(entry, sharedInode(stats));
      if (!stats.isDirectory()) continue;
      const xattrs = options.xattrs.get(abs) ?? {};
      if (xattrs['user.overlay.opaque']?.toString() === 'y' || xattrs['trusted.overlay.opaque']?.toString() === 'y') {
        layer.set(whiteoutEntry(`${path}/${OPAQUE_MARKER}`, entry.mtime));
      }
      walk(abs, path);
    }
  };
  walk(upper, '');
  return layer.build();
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
  const layer = new LayerBuilder();
  const seen = new Set<string>();
  const add = (abs: string, path: string, stats: BigIntStats): void => {
    const entry = entryAt(path, abs, stats, options);
    if (entry) layer.set(entry, sharedInode(stats));
    else options.warn(`${SPECIAL_FILES} (such as /${path})`);
  };
  const addParents = (path: string): void => {
    layer.mkdirAll(parentOf(path), (dir) => entryAt(dir, join(root, dir), lstatSync(join(root, dir), { bigint: true }), options)!);
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
        if (replaced && stats.isDirectory()) layer.set(whiteoutEntry(`${path}/${OPAQUE_MARKER}`, mtimeOf(stats)));
      }
      if (stats.isDirectory()) walk(abs, path, allNew || old === undefined || replaced);
    }
  };
  walk(root, '', false);
  for (const [path] of before) {
    if (seen.has(path)) continue;
    const parent = parentOf(path);
    // Only the topmost deleted path needs a whiteout; a replaced parent is opaque already.
    if (parent !== '' && (!seen.has(parent) || layer.get(`${parent}/${OPAQUE_MARKER}`))) continue;
    const whiteout = `${parent ? `${parent}/` : ''}${WHITEOUT_PREFIX}${path.slice(path.lastIndexOf('/') + 1)}`;
    addParents(whiteout);
    layer.set(whiteoutEntry(whiteout, 0));
  }
  return layer.build();
}
