// Applying layers to a directory, refusing any entry that would land outside it: `..`, absolute
// paths, a path through a symlink, a hardlink to outside. Whiteouts delete what lower layers made.
import {
  chmodSync, closeSync, createWriteStream, existsSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, symlinkSync, writeSync,
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

/** The deferred settings that give the directory at `rel` what `info` says it has. */
function directoryHeader(rel: string, { mode, uid, gid, mtimeMs }: Stats): TarHeader {
  return { path: rel, type: 'directory', mode: mode & 0o7777, uid, gid, mtime: mtimeMs / 1000, size: 0 };
}

/** The directory at `rel` in the topmost of `below` that has anything there (a whiteout hides it). */
function directoryBelow(below: string[], rel: string): Stats | undefined {
  for (const dir of below) {
    const info = lstatOrUndefined(join(dir, rel));
    if (info) return info.isDirectory() ? info : undefined;
  }
  return undefined;
}

/**
 * The root as one layer changes it. Every change goes through here, so what it remembers stays
 * true: which directories were checked to be real (no symlink on the way), and the owners, modes,
 * times and xattrs still to be set. Removing or replacing a path forgets all of that for the path
 * and everything below it; the deferred settings are checked once more before they are applied.
 */
class LayerRoot {
  private readonly root: string;
  private readonly keep: KeptPaths;
  private readonly below: string[];
  /** Directories checked to be real directories inside the root, relative (`` is the root). */
  private readonly checked = new Set<string>(['']);
  /** Directories whose owner, mode and time are set last: adding children changes the times, and a read-only mode would stop them being added. */
  private readonly directories = new Map<string, TarHeader>();
  /** Extended attributes, set after owners and modes (a chown clears security.capability). */
  private readonly xattrs = new Map<string, Record<string, Buffer>>();
  /** What this layer made, and the directories above it: its own whiteouts leave them in place. */
  private readonly added = new Set<string>();
  /** Whether the extracting user owns every file (no root): see openUp. */
  private readonly ownerOnly: boolean;

  constructor(root: string, keep: KeptPaths, below: string[], ownerOnly: boolean) {
    this.root = root;
    this.keep = keep;
    this.below = below;
    this.ownerOnly = ownerOnly;
  }

  path(rel: string): string {
    return join(this.root, rel);
  }

  /**
   * Checks that every parent of `parts` is a real directory inside the root, and returns the
   * parent, relative. A missing one is made (`make`); with `skip`, a missing one or a file makes
   * the answer undefined. A symlink is always refused.
   */
  parentOf(parts: string[], entryPath: string, missing: 'make' | 'skip' = 'make'): string | undefined {
    let rel = '';
    for (const part of parts.slice(0, -1)) {
      rel = rel ? `${rel}/${part}` : part;
      if (this.checked.has(rel)) continue;
      const info = lstatOrUndefined(this.path(rel));
      if (info?.isSymbolicLink()) throw new UnsafeLayerError(`refusing layer entry "${entryPath}": its path goes through the symlink /${rel}`);
      if (info && !info.isDirectory() && missing === 'skip') return undefined;
      if (info && !info.isDirectory()) throw new UnsafeLayerError(`refusing layer entry "${entryPath}": /${rel} is not a directory`);
      if (!info) {
        if (missing === 'skip') return undefined;
        mkdirSync(this.path(rel));
        const shown = directoryBelow(this.below, rel);
        if (shown) this.directories.set(rel, directoryHeader(rel, shown));
      } else this.openUp(rel, info);
      this.checked.add(rel);
    }
    return rel;
  }

  /**
   * Without root, a directory that a lower layer left without write, read or search for its owner
   * (Fedora's /usr/bin is 0555) can be neither added to nor emptied: its owner, the extracting
   * user, opens it up for the moment, as umoci does, and its mode is set back when the layer is done.
   */
  private openUp(rel: string, info: Stats): void {
    if (!this.ownerOnly || (info.mode & 0o700) === 0o700) return;
    if (!this.directories.has(rel)) this.directories.set(rel, directoryHeader(rel, info));
    chmodSync(this.path(rel), (info.mode & 0o7777) | 0o700);
  }

  /** openUp for `rel` and every directory below it, before they are removed. */
  private openUpAll(rel: string, info: Stats): void {
    if (!this.ownerOnly || !info.isDirectory()) return;
    this.openUp(rel, info);
    for (const child of readdirSync(this.path(rel))) this.openUpAll(`${rel}/${child}`, lstatSync(this.path(`${rel}/${child}`)));
  }

  /** Records that this layer made `rel` (and so the directories above it). */
  made(rel: string): void {
    for (let path = rel; path !== '' && !this.added.has(path); path = path.slice(0, Math.max(0, path.lastIndexOf('/')))) this.added.add(path);
  }

  /**
   * Hides what lower layers have at `rel`, as a whiteout does: all of it, or, where this layer made
   * `rel` or something below it, what the layer did not make, as umoci applies whiteouts (a layer's
   * whiteouts never remove its own entries). Kept paths stay.
   */
  hideLower(rel: string): void {
    if (this.keep.has(rel)) return;
    if (!this.added.has(rel)) {
      this.remove(rel);
      return;
    }
    const info = lstatOrUndefined(this.path(rel));
    if (!info?.isDirectory()) return;
    this.openUp(rel, info);
    for (const child of readdirSync(this.path(rel))) this.hideLower(`${rel}/${child}`);
  }

  /** Removes `rel` and everything below it, except kept paths, and forgets what was known of them. */
  remove(rel: string): void {
    const info = lstatOrUndefined(this.path(rel));
    if (!info) return;
    this.openUpAll(rel, info);
    this.keep.remove(this.root, rel);
    this.forget(rel, info.isDirectory());
  }

  /** Makes a directory at `rel` (keeping one already there); its metadata is set last. */
  directory(rel: string, header: TarHeader): void {
    const info = lstatOrUndefined(this.path(rel));
    if (info?.isDirectory()) this.openUp(rel, info);
    else mkdirSync(this.path(rel));
    this.checked.add(rel);
    this.directories.set(rel, header);
  }

  /** Extended attributes for `rel`, set when the layer is done. */
  setXattrsLater(rel: string, xattrs: Record<string, Buffer> | undefined): void {
    if (xattrs && Object.keys(xattrs).length > 0) this.xattrs.set(rel, xattrs);
  }

  private forget(rel: string, wasDirectory: boolean): void {
    const under = `${rel}/`;
    for (const known of [this.checked, this.directories, this.xattrs, this.added]) {
      known.delete(rel);
      if (wasDirectory) for (const path of known.keys()) if (path.startsWith(under)) known.delete(path);
    }
  }

  /**
   * Sets the directories' metadata, deepest first, and then every xattr, each on a path checked
   * once more to lie inside the root through real directories only (and, for a directory's
   * metadata, to still be one). Nothing changes the tree's shape meanwhile.
   */
  async finish(owner: Owner, warn: (key: string, message: string) => void, setXattrs: ApplyOptions['setXattrs']): Promise<void> {
    const real = new Set<string>(['']);
    const inside = (rel: string): boolean => {
      const parts = rel.split('/');
      let path = '';
      for (const part of parts.slice(0, -1)) {
        path = path ? `${path}/${part}` : part;
        if (real.has(path)) continue;
        if (!lstatOrUndefined(this.path(path))?.isDirectory()) return false;
        real.add(path);
      }
      return true;
    };
    const depth = (rel: string): number => rel.split('/').length;
    for (const [rel, header] of [...this.directories].sort(([a], [b]) => depth(b) - depth(a))) {
      if (!inside(rel) || !lstatOrUndefined(this.path(rel))?.isDirectory()) throw new Error(`extraction: /${rel} is no longer the directory this layer made`);
      setMetadata(this.path(rel), header, owner, warn);
    }
    const records: [string, string, Buffer][] = [];
    for (const [rel, xattrs] of this.xattrs) {
      if (!inside(rel)) throw new Error(`extraction: /${rel} is no longer inside the root`);
      for (const [name, value] of Object.entries(xattrs)) records.push([this.path(rel), name, value]);
    }
    if (records.length > 0 && setXattrs) await setXattrs(records);
    else if (records.length > 0) warn('xattr', 'extended attributes from the image are not kept in this extraction');
  }
}

async function applyLayer(
  store: Store, layer: Layer, root: string, warn: (key: string, message: string) => void, owner: Owner, { setXattrs, below = [], keep = NOTHING_KEPT }: ApplyOptions,
): Promise<void> {
  const tree = new LayerRoot(root, keep, below, owner !== 'image');
  // What the layer holds, kept for later builds (layerListing) unless the store has it already.
  const listing: LayerListing | undefined = existsSync(store.listingPath(layer.digest)) ? undefined : [];

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
    const whiteout = whiteoutOf(name, header.path);
    if (whiteout?.kind === 'aufs-metadata') continue;
    if (whiteout) {
      // A whiteout where nothing is has nothing to hide, and makes nothing.
      const parent = tree.parentOf(parts, header.path, 'skip');
      if (parent === undefined) continue;
      const under = (child: string): string => (parent ? `${parent}/${child}` : child);
      if (whiteout.kind === 'opaque') for (const child of readdirSync(tree.path(parent))) tree.hideLower(under(child));
      else if (keep.has(under(whiteout.hidden))) left();
      else tree.hideLower(under(whiteout.hidden));
      continue;
    }
    tree.parentOf(parts, header.path);

    const target = tree.path(rel);
    const existing = lstatOrUndefined(target);
    if (existing && !(existing.isDirectory() && header.type === 'directory')) tree.remove(rel);
    tree.made(rel);

    // Every path below is made anew (exclusively: nothing there is followed) under a checked parent.
    switch (header.type) {
      case 'directory':
        tree.directory(rel, header);
        continue;
      case 'file':
        // Small files with synchronous writes: a base image holds thousands of them, and a
        // thread-pool round trip per call would dominate. Their pieces are written as they are,
        // not joined into a buffer for the garbage collector. Large ones are streamed.
        if (header.size <= SMALL_FILE) await writeSmallFile(target, body);
        else await pipeline(body, createWriteStream(target, { flags: 'wx', mode: 0o600 }));
        break;
      case 'symlink':
        symlinkSync(header.linkname ?? '', target);
        break;
      case 'hardlink': {
        const linkParts = safeComponents(header.linkname ?? '', 'hardlink target');
        const linkRel = linkParts.join('/');
        const linkParent = linkParts.length > 0 ? tree.parentOf(linkParts, header.path, 'skip') : undefined;
        const info = linkParent !== undefined ? lstatOrUndefined(tree.path(linkRel)) : undefined;
        if (!info?.isFile() || keep.has(linkRel)) {
          throw new UnsafeLayerError(`refusing layer entry "${header.path}": its hardlink target "${header.linkname}" is not a file inside the layer root`);
        }
        linkSync(tree.path(linkRel), target);
        continue; // a hardlink shares its target's metadata
      }
      default:
        warn('device', `skipping ${header.type} nodes (such as /${rel}): they cannot be created without root`);
        continue;
    }
    setMetadata(target, header, owner, warn);
    tree.setXattrsLater(rel, header.xattrs);
  }
  await tree.finish(owner, warn, setXattrs);
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
  const fd = openSync(target, 'wx', 0o600);
  try {
    for await (const piece of pieces) for (let at = 0; at < piece.length;) at += writeSync(fd, piece, at);
  } finally {
    closeSync(fd);
  }
}

const lstatOrUndefined = (path: string): Stats | undefined => lstatSync(path, { throwIfNoEntry: false });


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
