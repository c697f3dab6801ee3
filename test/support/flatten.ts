// An image's filesystem as a runtime would see it: every layer applied in order, in memory, with
// OCI whiteouts, read with the project's own tar reader (owners and set-id bits stay exact, which
// unpacking with GNU tar as an ordinary user would lose). Used to compare two builders' images.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../../layers/entry.ts';
import type { TarHeader } from '../../layers/tar.ts';
import { layerEntries } from './layers.ts';

/** One path of a filesystem; mtimes are left out on purpose. */
export interface Row {
  type: TarHeader['type'];
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname?: string;
  sha256?: string;
}

type LayerItem =
  | { kind: 'whiteout'; path: string }
  | { kind: 'opaque'; dir: string }
  | { kind: 'entry'; path: string; row: Row }
  | { kind: 'hardlink'; path: string; target: string };

/** `./a/b/`, `/a/b` and `a/b` are all `a/b`; the root is `.`. */
const clean = (path: string): string => posix.normalize(`/${path}`).replace(/^\/+|\/+$/g, '') || '.';

/** A layer blob (tar, gzip or zstd) as the changes it makes. */
export async function readLayer(file: string): Promise<LayerItem[]> {
  const items: LayerItem[] = [];
  for await (const { header, body } of layerEntries(file)) {
    const path = clean(header.path);
    const name = posix.basename(path);
    const dir = posix.dirname(path);
    if (name === OPAQUE_MARKER) items.push({ kind: 'opaque', dir });
    else if (name.startsWith(WHITEOUT_PREFIX)) items.push({ kind: 'whiteout', path: clean(`${dir}/${name.slice(WHITEOUT_PREFIX.length)}`) });
    else if (header.type === 'hardlink') items.push({ kind: 'hardlink', path, target: clean(header.linkname!) });
    else {
      const row: Row = { type: header.type, mode: header.mode, uid: header.uid, gid: header.gid, size: header.size };
      if (header.type === 'symlink') row.linkname = header.linkname;
      if (header.type === 'file') {
        const hash = createHash('sha256');
        for await (const chunk of body) hash.update(chunk);
        row.sha256 = hash.digest('hex');
      }
      items.push({ kind: 'entry', path, row });
    }
  }
  return items;
}

const isBelow = (path: string, dir: string): boolean => dir === '.' ? path !== '.' : path.startsWith(`${dir}/`);

function removeBelow(tree: Map<string, Row>, dir: string): void {
  for (const path of tree.keys()) if (isBelow(path, dir)) tree.delete(path);
}

/** Applies layers bottom to top. A hardlink becomes a copy of its target's row. */
export function flatten(layers: LayerItem[][]): Map<string, Row> {
  const tree = new Map<string, Row>();
  for (const layer of layers) {
    // Whiteouts and opaque markers hide what the layers below hold, never this layer's own entries.
    for (const item of layer) {
      if (item.kind === 'opaque') removeBelow(tree, item.dir);
      if (item.kind === 'whiteout') {
        tree.delete(item.path);
        removeBelow(tree, item.path);
      }
    }
    for (const item of layer) {
      if (item.kind !== 'entry' && item.kind !== 'hardlink') continue;
      let row: Row;
      if (item.kind === 'hardlink') {
        const target = tree.get(item.target);
        if (!target) throw new Error(`hardlink ${item.path} to ${item.target}, which is not there`);
        row = target;
      } else row = item.row;
      // Anything but a directory over a directory replaces the whole subtree.
      if (row.type !== 'directory') removeBelow(tree, item.path);
      tree.set(item.path, row);
    }
  }
  return tree;
}

/** `file 4755 0:0 size=123 sha256=abcd…` or `symlink 777 0:0 -> target`. */
export function describeRow(row: Row | undefined): string {
  if (!row) return 'absent';
  const owner = `${row.type} ${row.mode.toString(8).padStart(4, '0')} ${row.uid}:${row.gid}`;
  if (row.type === 'symlink') return `${owner} -> ${row.linkname}`;
  if (row.type === 'file') return `${owner} size=${row.size} sha256=${row.sha256!.slice(0, 12)}`;
  return owner;
}
