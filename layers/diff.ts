// What a RUN changed, as layer entries: new and changed files as they are, deletions as
// `.wh.NAME`, replaced directories as `.wh..wh..opq`, files sharing an inode as tar hardlinks, and
// xattrs except overlay's own. Read from an overlay upper dir, or, where overlay is unavailable,
// from a copied root compared with a snapshot taken before the step.
import { closeSync, lstatSync, openSync, readdirSync, readSync, type BigIntStats, type Stats } from 'node:fs';
import { join } from 'node:path';
import { entryFromStats, mtimeOf, OPAQUE_MARKER, parentOf, WHITEOUT_PREFIX, whiteoutEntry, type LayerEntry } from './entry.ts';
import type { KeptPaths } from './kept.ts';
import { LayerBuilder } from './layer-builder.ts';
import type { EntryInfo } from './listing.ts';

const OVERLAY_XATTR = /^(user|trusted)\.overlay\./;
const SPECIAL_FILES = 'sockets, FIFOs and device nodes made by RUN are left out of the layer';

export interface UpperDirOptions {
  /** Extended attributes by absolute path (Node cannot read them itself). */
  xattrs: Map<string, Record<string, Buffer>>;
  /** Told once per kind of thing a layer cannot hold (sockets, devices). */
  warn: (message: string) => void;
}

/** What lies below an upper dir: the layers' merged metadata at a path, and the file holding a path's content. */
export interface Below {
  info(path: string): EntryInfo | undefined;
  file(path: string): string | undefined;
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

/**
 * The entries of an overlay upper dir. With `below`, what the step did not change is left out, as a
 * snapshot of the whole root would leave it out (changedEntries): files only copied up (opened for
 * writing, locked: apt's and debconf's lock files) when their metadata and content are those
 * below; directories holding nothing else that are as they were; whiteouts and opaque markers
 * over nothing.
 */
export function upperDirEntries(upper: string, options: UpperDirOptions & { below?: Below }): LayerEntry[] {
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
  const entries = layer.build();
  return options.below ? leftAsTheyWere(entries, upper, options.below) : entries;
}

/** The entries without those that change nothing below (see upperDirEntries). */
function leftAsTheyWere(entries: LayerEntry[], upper: string, below: Below): LayerEntry[] {
  const same = (entry: LayerEntry): boolean => {
    const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
    if (name.startsWith(WHITEOUT_PREFIX)) {
      const hidden = name === OPAQUE_MARKER ? parentOf(entry.path) : `${parentOf(entry.path) ? `${parentOf(entry.path)}/` : ''}${name.slice(WHITEOUT_PREFIX.length)}`;
      return below.info(hidden) === undefined;
    }
    const info = below.info(entry.path);
    if (!info || info.type !== entry.type || info.mode !== entry.mode || info.uid !== entry.uid || info.gid !== entry.gid) return false;
    if (Math.floor(info.mtime) !== Math.floor(entry.mtime) || (info.linkname ?? '') !== (entry.linkname ?? '') || entry.xattrs) return false;
    if (entry.type !== 'file') return entry.type === 'directory' || entry.type === 'symlink';
    const file = below.file(entry.path);
    return file !== undefined && sameContent(file, join(upper, entry.path), entry.size ?? 0);
  };
  // Children first: a directory as it was stays only while something below it stays.
  const kept = new Set<string>();
  const result: LayerEntry[] = [];
  for (const entry of [...entries].reverse()) {
    const holdsKept = entry.type === 'directory' && kept.has(entry.path);
    if (!holdsKept && same(entry)) continue;
    result.push(entry);
    for (let parent = parentOf(entry.path); parent !== ''; parent = parentOf(parent)) kept.add(parent);
  }
  return result.reverse();
}

/** Whether two files both hold `size` bytes, the same ones (read a megabyte at a time). */
function sameContent(a: string, b: string, size: number): boolean {
  if (lstatSync(a).size !== size || lstatSync(b).size !== size) return false;
  const [fdA, fdB] = [openSync(a, 'r'), openSync(b, 'r')];
  try {
    const [bufferA, bufferB] = [Buffer.allocUnsafe(1 << 20), Buffer.allocUnsafe(1 << 20)];
    for (let position = 0; position < size;) {
      const read = readSync(fdA, bufferA, 0, bufferA.length, position);
      if (read === 0 || readSync(fdB, bufferB, 0, read, position) !== read || !bufferA.subarray(0, read).equals(bufferB.subarray(0, read))) return false;
      position += read;
    }
    return true;
  } finally {
    closeSync(fdA);
    closeSync(fdB);
  }
}

/**
 * Identity and change time of every path under a root, before a step runs on it. An inode number
 * alone is no identity: a file system reuses a freed one at once, so the birth time goes with it.
 */
export type Snapshot = Map<string, { ino: bigint; birth: bigint; ctime: bigint; directory: boolean }>;

/** `keep`: paths left out, with all below them (in place: hoist's own, the container's mounts). */
export function snapshot(root: string, keep?: KeptPaths): Snapshot {
  const result: Snapshot = new Map();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      if (keep?.has(path)) continue;
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
export function changedEntries(root: string, before: Snapshot, options: UpperDirOptions & { keep?: KeptPaths }): LayerEntry[] {
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
      if (options.keep?.has(path)) continue;
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
