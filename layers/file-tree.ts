// The merged view of an image's file tree (metadata only), for questions asked without extracting
// anything: does /app exist, is the destination a directory, who owns /usr, which layer holds
// /var/lib/dpkg/status. Each directory knows its children, so a whiteout or a replaced directory
// removes only its own subtree: an image of many whiteouts costs no more than its entries.
import { followSymlinks, parentOf, whiteoutOf } from './entry.ts';
import type { Layer } from './layer.ts';
import { layerListing, type EntryInfo } from './listing.ts';
import type { Store } from './store.ts';

/** A relative path with no empty component: no leading, trailing or doubled slash. */
const CLEAN = /^[^/]+(\/[^/]+)*$/;

export interface TreeNode {
  info: EntryInfo;
  /** The position, bottom first, of the layer the path comes from. */
  layer: number;
}

export class FileTree {
  private readonly nodes = new Map<string, TreeNode>();
  private readonly children = new Map<string, Set<string>>();
  private layers = 0;

  /** Applies a stored layer on top, by its listing (layerListing). */
  async applyLayer(store: Store, layer: Layer): Promise<void> {
    this.apply(await layerListing(store, layer));
  }

  /** Applies one layer's entries on top, whiteouts included. */
  apply(entries: Iterable<[string, EntryInfo]>): void {
    const layer = this.layers++;
    for (const [path, info] of entries) {
      const parent = parentOf(path);
      const whiteout = whiteoutOf(path.slice(path.lastIndexOf('/') + 1), path);
      if (whiteout?.kind === 'aufs-metadata') continue;
      if (whiteout?.kind === 'opaque') this.removeBelow(parent, layer);
      else if (whiteout?.kind === 'whiteout') {
        this.remove(parent ? `${parent}/${whiteout.hidden}` : whiteout.hidden);
      } else if (path !== '') {
        if (info.type !== 'directory') this.remove(path);
        this.nodes.set(path, { info, layer });
        let siblings = this.children.get(parent);
        if (!siblings) this.children.set(parent, (siblings = new Set()));
        siblings.add(path);
      }
    }
  }

  /** Removes what the layers below `layer` have under `dir` (an opaque marker): this layer's own entries stay. */
  private removeBelow(dir: string, layer: number): void {
    const pending = [dir];
    while (pending.length > 0) {
      for (const child of [...this.children.get(pending.pop()!) ?? []]) {
        const node = this.nodes.get(child)!;
        if (node.layer !== layer) this.remove(child);
        else if (node.info.type === 'directory') pending.push(child);
      }
    }
  }

  /** Removes a path and, for a directory, everything under it. */
  private remove(path: string): void {
    this.children.get(parentOf(path))?.delete(path);
    const pending = [path];
    while (pending.length > 0) {
      const each = pending.pop()!;
      this.nodes.delete(each);
      const below = this.children.get(each);
      if (below) pending.push(...below);
      this.children.delete(each);
    }
  }

  /** Metadata of an absolute or relative path, not following symlinks. */
  get(path: string): EntryInfo | undefined {
    return this.node(path)?.info;
  }

  /** A path's metadata and the layer it comes from, not following symlinks. */
  node(path: string): TreeNode | undefined {
    // Most paths asked for are already clean (a COPY asks once per entry): no split and join then.
    return this.nodes.get(CLEAN.test(path) ? path : path.split('/').filter(Boolean).join('/'));
  }

  /** Every path (relative) with its metadata and layer. */
  entries(): IterableIterator<[string, TreeNode]> {
    return this.nodes.entries();
  }

  /** Whether `path`, with symlinks followed, is a directory. */
  isDirectory(path: string): boolean {
    const rel = this.realPath(path).slice(1);
    return rel === '' || this.nodes.get(rel)?.info.type === 'directory';
  }

  /**
   * The absolute path with every symlink in it followed inside the image, as a process in the
   * container would see it (`/lib/x` is `/usr/lib/x` where /lib links to usr/lib). A trailing
   * slash is kept. Throws on a symlink loop.
   */
  realPath(path: string): string {
    const resolved = followSymlinks(path, (rel) => {
      const node = this.nodes.get(rel);
      return node?.info.type === 'symlink' ? node.info.linkname : undefined;
    });
    return `/${resolved}${path.endsWith('/') && resolved !== '' ? '/' : ''}`;
  }
}
