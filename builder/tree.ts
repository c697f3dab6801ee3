// The merged view of an image's file tree (metadata only), for questions a build asks without
// extracting anything: does /app exist, is the destination a directory, who owns /usr.
import { followSymlinks, layerTar, parentOf, readTar, whiteoutOf, type EntryType, type Layer, type Store } from '../layers/index.ts';

export interface NodeInfo {
  type: EntryType | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** A symlink's target as written. */
  linkname?: string;
}

/** The entries of one layer, in tar order, with whiteouts as they were written. */
type LayerListing = [path: string, info: NodeInfo][];
const listings = new Map<string, Promise<LayerListing>>();

async function listLayer(store: Store, layer: Layer): Promise<LayerListing> {
  const listing: LayerListing = [];
  for await (const { header } of readTar(layerTar(store, layer))) {
    const path = header.path.split('/').filter((part) => part !== '' && part !== '.').join('/');
    const { type, mode, uid, gid, mtime, linkname } = header;
    listing.push([path, type === 'symlink' ? { type, mode, uid, gid, mtime, linkname } : { type, mode, uid, gid, mtime }]);
  }
  return listing;
}

export class FileTree {
  private readonly nodes = new Map<string, NodeInfo>();

  /** Applies a stored layer on top, reading its tar's headers (once per layer and process). */
  async applyLayer(store: Store, layer: Layer): Promise<void> {
    let listing = listings.get(layer.digest);
    if (!listing) listings.set(layer.digest, (listing = listLayer(store, layer)));
    this.apply(await listing);
  }

  /** Applies one layer's entries on top, whiteouts included. */
  apply(entries: Iterable<[string, NodeInfo]>): void {
    const addedHere = new Set<string>();
    for (const [path, info] of entries) {
      const parent = parentOf(path);
      const name = path.slice(path.lastIndexOf('/') + 1);
      const whiteout = whiteoutOf(name, path);
      if (whiteout?.kind === 'aufs-metadata') continue;
      if (whiteout?.kind === 'opaque') {
        for (const existing of [...this.nodes.keys()]) {
          if ((parent === '' || existing.startsWith(`${parent}/`)) && existing !== parent && !addedHere.has(existing)) this.nodes.delete(existing);
        }
      } else if (whiteout?.kind === 'whiteout') {
        this.remove(parent ? `${parent}/${whiteout.hidden}` : whiteout.hidden);
      } else if (path !== '') {
        if (info.type !== 'directory') this.remove(path);
        this.nodes.set(path, info);
        addedHere.add(path);
      }
    }
  }

  private remove(path: string): void {
    const wasDirectory = this.nodes.get(path)?.type === 'directory';
    this.nodes.delete(path);
    if (!wasDirectory) return;
    for (const existing of [...this.nodes.keys()]) if (existing.startsWith(`${path}/`)) this.nodes.delete(existing);
  }

  /** Metadata of an absolute or relative path, not following symlinks. */
  get(path: string): NodeInfo | undefined {
    return this.nodes.get(path.split('/').filter(Boolean).join('/'));
  }

  /** Whether `path`, with symlinks followed, is a directory. */
  isDirectory(path: string): boolean {
    const rel = this.realPath(path).slice(1);
    return rel === '' || this.nodes.get(rel)?.type === 'directory';
  }

  /**
   * The absolute path with every symlink in it followed inside the image, as a process in the
   * container would see it (`/lib/x` is `/usr/lib/x` where /lib links to usr/lib). A trailing
   * slash is kept.
   */
  realPath(path: string): string {
    const resolved = followSymlinks(path, (rel) => {
      const node = this.nodes.get(rel);
      return node?.type === 'symlink' ? node.linkname : undefined;
    });
    return `/${resolved}${path.endsWith('/') && resolved !== '' ? '/' : ''}`;
  }
}
