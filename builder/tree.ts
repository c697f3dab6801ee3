// The merged view of an image's file tree (metadata only), for questions a build asks without
// extracting anything: does /app exist, is the destination a directory, who owns /usr.
import { followSymlinks, layerListing, parentOf, whiteoutOf, type EntryInfo, type Layer, type Store } from '../layers/index.ts';

/** A relative path with no empty component: no leading, trailing or doubled slash. */
const CLEAN = /^[^/]+(\/[^/]+)*$/;

export class FileTree {
  private readonly nodes = new Map<string, EntryInfo>();

  /** Applies a stored layer on top, by its listing (layerListing). */
  async applyLayer(store: Store, layer: Layer): Promise<void> {
    this.apply(await layerListing(store, layer));
  }

  /** Applies one layer's entries on top, whiteouts included. */
  apply(entries: Iterable<[string, EntryInfo]>): void {
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
  get(path: string): EntryInfo | undefined {
    // Most paths asked for are already clean (a COPY asks once per entry): no split and join then.
    const clean = CLEAN.test(path) ? path : path.split('/').filter(Boolean).join('/');
    return this.nodes.get(clean);
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
