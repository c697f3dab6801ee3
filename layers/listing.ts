// What a layer holds, without its content: each entry's path and metadata in tar order, whiteouts
// as written. The store keeps a layer's listing beside its blob (made when the layer is written,
// or first read or applied), so that a later build need not read a whole blob again to know what is in it (a
// Debian base's 60 MB took 0.8 s).
import { readFile } from 'node:fs/promises';
import type { EntryType, LayerEntry } from './entry.ts';
import type { Layer } from './layer.ts';
import { layerTar } from './compression.ts';
import type { Store } from './store.ts';
import { readTar, type TarHeader } from './tar.ts';

export interface EntryInfo {
  type: EntryType | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** A symlink's target as written. */
  linkname?: string;
}

export type LayerListing = [path: string, info: EntryInfo][];

/** A path as listings hold it: without `./` or slashes at either end. */
export const listingPath = (path: string): string => path.split('/').filter((part) => part !== '' && part !== '.').join('/');

/** The listing row of a tar entry or a layer entry. */
export function listingRow({ path, type, mode, uid, gid, mtime, linkname }: TarHeader | LayerEntry): [string, EntryInfo] {
  const clean = listingPath(path);
  return [clean, type === 'symlink' ? { type, mode, uid, gid, mtime, linkname: linkname ?? '' } : { type, mode, uid, gid, mtime }];
}

/** Keeps a layer's listing in the store, for layerListing. */
export function keepListing(store: Store, digest: string, listing: LayerListing): Promise<void> {
  const rows = listing.map(([path, { type, mode, uid, gid, mtime, linkname }]) => [path, type, mode, uid, gid, mtime, ...(linkname === undefined ? [] : [linkname])]);
  return store.putFile(store.listingPath(digest), JSON.stringify(rows));
}

const memo = new Map<string, Promise<LayerListing>>();

/** A layer's listing: the one the store keeps, else read from the blob (and kept). Once per process. */
export function layerListing(store: Store, layer: Layer): Promise<LayerListing> {
  let listing = memo.get(layer.digest);
  if (!listing) memo.set(layer.digest, (listing = readListing(store, layer)));
  return listing;
}

async function readListing(store: Store, layer: Layer): Promise<LayerListing> {
  const kept = await readFile(store.listingPath(layer.digest), 'utf8').then(parseListing, () => undefined);
  if (kept) return kept;
  const listing: LayerListing = [];
  for await (const { header } of readTar(layerTar(store, layer))) listing.push(listingRow(header));
  await keepListing(store, layer.digest, listing);
  return listing;
}

const TYPES = new Set<unknown>(['file', 'directory', 'symlink', 'hardlink', 'char', 'block', 'fifo']);

/** A kept listing, or undefined when the file is not one (then the blob is read again). */
function parseListing(text: string): LayerListing | undefined {
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(rows)) return undefined;
  const listing: LayerListing = [];
  for (const row of rows) {
    if (!Array.isArray(row) || typeof row[0] !== 'string' || !TYPES.has(row[1]) || !row.slice(2, 6).every(Number.isInteger)) return undefined;
    const [path, type, mode, uid, gid, mtime, linkname] = row as [string, EntryInfo['type'], number, number, number, number, unknown];
    if (type === 'symlink' && typeof linkname !== 'string') return undefined;
    listing.push([path, type === 'symlink' ? { type, mode, uid, gid, mtime, linkname: linkname as string } : { type, mode, uid, gid, mtime }]);
  }
  return listing;
}

