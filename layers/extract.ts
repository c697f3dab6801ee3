// Applying layers to a directory, refusing any entry that would land outside it: `..`, absolute
// paths, a path through a symlink, a hardlink to outside. Whiteouts delete what lower layers made.
import {
  chmodSync, closeSync, createWriteStream, existsSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, rmSync, symlinkSync, writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UnsafeLayerError, whiteoutOf } from './entry.ts';
import type { Layer } from './layer.ts';
import { layerTar } from './compression.ts';
import { KeptPaths } from './kept.ts';
import { keepListing, listingRow, type LayerListing } from './listing.ts';
import type { Store } from './store.ts';
import { readTar, type TarHeader } from './tar.ts';

/** Files up to this size are written in one call. */
const SMALL_FILE = 1 << 20;

/** Splits a tar path into components, refusing `..` and absolute paths. */
export function safeComponents(path: string, what = 'entry'): string[] {
  if (path.startsWith('/')) throw new UnsafeLayerError(`refusing layer ${what} "${path}": absolute paths are not allowed`);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new UnsafeLayerError(`refusing layer ${what} "${path}": it would land outside the root (..)`);
  return parts;
}

export interface ApplyOptions {
  /**
   * Whether the extraction runs as root (in hoist's user namespace): then files get the image's
   * owners; otherwise they are the extracting user's, with a warning where the image's differ.
   */
  asRoot: boolean;
  /** Called once per kind of thing that could not be reproduced here (device nodes, xattrs, owners). */
  warn?: (message: string) => void;
  /** Sets extended attributes ([path, name, value]); without it they are left out, with a warning. */
  setXattrs?: (records: [string, string, Buffer][]) => Promise<void>;
  /**
   * Directories holding what lies below these layers, topmost first (overlay lower dirs). A parent
   * that a layer implies but does not hold is made with the owner, mode and time it has there, as
   * an overlay mount shows it; without them, root's and 0755.
   */
  below?: string[];
  /** Paths left as they are, with all below them (applied in place: hoist's own, the container's mounts). */
  keep?: KeptPaths;
}

/** Nothing kept: a path is removed whole (what applying to a directory of its own wants). */
const NOTHING_KEPT = new KeptPaths([]);

/** Applies layers in order to `root`, as a container runtime would see them merged. */
export async function applyLayers(store: Store, layers: Layer[], root: string, options: ApplyOptions): Promise<void> {
  mkdirSync(root, { recursive: true });
  const warned = new Set<string>();
  const warnOnce = (key: string, message: string): void => {
    if (warned.has(key)) return;
    warned.add(key);
    options.warn?.(message);
  };
  // Without root, files are owned by whoever extracts them.
  const owner = options.asRoot ? 'image' : { uid: process.getuid!(), gid: process.getgid!() };
  for (const layer of layers) await applyLayer(store, layer, root, warnOnce, owner, options);
}

/** Who owns the files extracted: as the image says (as root), or the extracting user. */
type Owner = 'image' | { uid: number; gid: number };

/** The directory at `rel` in the topmost of `below` that has anything there (a whiteout hides it). */
function directoryBelow(below: string[], rel: string): Stats | undefined {
  for (const dir of below) {
    const info = lstatOrUndefined(join(dir, rel));
    if (info) return info.isDirectory() ? info : undefined;
  }
  return undefined;
}

async function applyLayer(
  store: Store, layer: Layer, root: string, warn: (key: string, message: string) => void, owner: Owner, { setXattrs, below = [], keep = NOTHING_KEPT }: ApplyOptions,
): Promise<void> {
  const xattrs: [string, string, Buffer][] = [];
  const verifiedDirs = new Set<string>(['']);
  const addedHere = new Set<string>();
  // Directory modes and times are set last: adding children changes the times, and a read-only
  // mode would stop the children being added.
  const directories: [string, TarHeader][] = [];
  // What the layer holds, kept for later builds (layerListing) unless the store has it already.
  const listing: LayerListing | undefined = existsSync(store.listingPath(layer.digest)) ? undefined : [];

  /** Checks that every parent of `parts` is a real directory inside root, creating missing ones. */
  const parentDir = (parts: string[], entryPath: string): string => {
    let rel = '';
    for (const part of parts.slice(0, -1)) {
      rel = rel ? `${rel}/${part}` : part;
      if (verifiedDirs.has(rel)) continue;
      const info = lstatOrUndefined(join(root, rel));
      if (info?.isSymbolicLink()) throw new UnsafeLayerError(`refusing layer entry "${entryPath}": its path goes through the symlink /${rel}`);
      if (info && !info.isDirectory()) throw new UnsafeLayerError(`refusing layer entry "${entryPath}": /${rel} is not a directory`);
      if (!info) {
        mkdirSync(join(root, rel));
        const shown = directoryBelow(below, rel);
        if (shown) {
          const { mode, uid, gid, mtimeMs } = shown;
          directories.push([join(root, rel), { path: rel, type: 'directory', mode: mode & 0o7777, uid, gid, mtime: mtimeMs / 1000, size: 0 }]);
        }
      }
      verifiedDirs.add(rel);
    }
    return rel;
  };

  for await (const { header, body } of readTar(layerTar(store, layer))) {
    listing?.push(listingRow(header));
    const parts = safeComponents(header.path);
    if (parts.length === 0) continue; // the root itself
    const name = parts[parts.length - 1]!;
    const rel = parts.join('/');
    const left = (): void => warn('kept', `layer entries at or above what hoist keeps while it builds here (its own files, the store, the container's mounts), such as /${rel}, are left as they are`);
    if (keep.has(rel) || (keep.isAbove(rel) && header.type !== 'directory')) {
      left();
      continue;
    }
    const parent = parentDir(parts, header.path);

    const whiteout = whiteoutOf(name, header.path);
    if (whiteout?.kind === 'aufs-metadata') continue;
    if (whiteout?.kind === 'opaque') {
      for (const child of readdirSync(join(root, parent))) {
        const childRel = parent ? `${parent}/${child}` : child;
        if (!addedHere.has(childRel)) keep.remove(root, childRel);
      }
      continue;
    }
    if (whiteout?.kind === 'whiteout') {
      const hidden = parent ? `${parent}/${whiteout.hidden}` : whiteout.hidden;
      if (keep.has(hidden)) left();
      else keep.remove(root, hidden);
      forget(verifiedDirs, hidden);
      continue;
    }

    const target = join(root, rel);
    const existing = lstatOrUndefined(target);
    if (existing && !(existing.isDirectory() && header.type === 'directory')) {
      rmSync(target, { recursive: true, force: true });
      forget(verifiedDirs, rel);
    }
    addedHere.add(rel);

    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) mkdirSync(target);
        verifiedDirs.add(rel);
        directories.push([target, header]);
        continue;
      case 'file':
        // Small files with synchronous writes: a base image holds thousands of them, and a
        // thread-pool round trip per call would dominate. Their pieces are written as they are,
        // not joined into a buffer for the garbage collector. Large ones are streamed.
        if (header.size <= SMALL_FILE) await writeSmallFile(target, body);
        else await pipeline(body, createWriteStream(target, { mode: 0o600 }));
        break;
      case 'symlink':
        symlinkSync(header.linkname ?? '', target);
        break;
      case 'hardlink': {
        const linkParts = safeComponents(header.linkname ?? '', 'hardlink target');
        parentDir(linkParts, header.path);
        const source = join(root, ...linkParts);
        const info = lstatOrUndefined(source);
        if (!info || info.isDirectory() || info.isSymbolicLink()) {
          throw new UnsafeLayerError(`refusing layer entry "${header.path}": its hardlink target "${header.linkname}" is not a file inside the layer root`);
        }
        linkSync(source, target);
        continue; // a hardlink shares its target's metadata
      }
      default:
        warn('device', `skipping ${header.type} nodes (such as /${rel}): they cannot be created without root`);
        continue;
    }
    setMetadata(target, header, owner, warn);
    for (const [name, value] of Object.entries(header.xattrs ?? {})) xattrs.push([target, name, value]);
  }
  for (const [path, header] of directories.reverse()) {
    setMetadata(path, header, owner, warn);
    for (const [name, value] of Object.entries(header.xattrs ?? {})) xattrs.push([path, name, value]);
  }
  // After owners and modes: a chown would clear security.capability.
  if (xattrs.length > 0 && setXattrs) await setXattrs(xattrs);
  else if (xattrs.length > 0) warn('xattr', 'extended attributes from the image are not kept in this extraction');
  if (listing) await keepListing(store, layer.digest, listing);
}

function setMetadata(target: string, header: TarHeader, owner: Owner, warn: (key: string, message: string) => void): void {
  if (owner === 'image') {
    try {
      lchownSync(target, header.uid, header.gid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
      throw new Error(`the image has files owned by ${header.uid}:${header.gid}, which your user namespace does not map: give your user a range in /etc/subuid and /etc/subgid (65536 ids)`);
    }
  } else if (header.uid !== owner.uid || header.gid !== owner.gid) {
    warn('owner', 'file owners from the image are not kept: extracting without root');
  }
  if (header.type !== 'symlink') chmodSync(target, header.mode);
  lutimesSync(target, header.mtime, header.mtime);
}

async function writeSmallFile(target: string, pieces: AsyncIterable<Buffer>): Promise<void> {
  const fd = openSync(target, 'w', 0o600);
  try {
    for await (const piece of pieces) for (let at = 0; at < piece.length;) at += writeSync(fd, piece, at);
  } finally {
    closeSync(fd);
  }
}

const lstatOrUndefined = (path: string): Stats | undefined => lstatSync(path, { throwIfNoEntry: false });

/** Drops a path and everything under it from the set of verified directories. */
function forget(verified: Set<string>, rel: string): void {
  for (const dir of verified) if (dir === rel || dir.startsWith(`${rel}/`)) verified.delete(dir);
}

/** Reads one file of an image, top layer first, without extracting anything. */
export async function readImageFile(store: Store, layers: Layer[], path: string): Promise<Buffer | undefined> {
  const wanted = safeComponents(path.replace(/^\/+/, '')).join('/');
  const ancestors = wanted.split('/').map((_, i, parts) => parts.slice(0, i).join('/'));
  for (const layer of [...layers].reverse()) {
    let hidden = false;
    for await (const { header, body } of readTar(layerTar(store, layer))) {
      const rel = safeComponents(header.path).join('/');
      if (rel === wanted && header.type === 'file') {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk);
        return Buffer.concat(chunks);
      }
      const slash = rel.lastIndexOf('/');
      const dir = slash < 0 ? '' : rel.slice(0, slash);
      const name = rel.slice(slash + 1);
      if (rel === wanted) return undefined; // something other than a file
      const whiteout = whiteoutOf(name, header.path);
      if (whiteout?.kind === 'opaque' && ancestors.includes(dir)) hidden = true;
      if (whiteout?.kind === 'whiteout' && [wanted, ...ancestors].includes(dir ? `${dir}/${whiteout.hidden}` : whiteout.hidden)) return undefined;
    }
    if (hidden) return undefined;
  }
  return undefined;
}
