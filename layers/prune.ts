// The build cache's garbage collector (`hoist prune`). It removes what no tagged image needs:
// blobs, cache records (STORE/cache, see cache-records.ts), extracted layer chains (STORE/rootfs) and RUN
// cache mounts. Records go before the blobs they name and directories are renamed into STORE/tmp
// before they are deleted, so an interrupted prune leaves a consistent store (a stale temp entry
// is removed when the store is next opened).
import { lstat, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheStore, type CacheRecord } from './cache-records.ts';
import type { ImageConfig, Manifest } from './image.ts';
import { chainKey, isAlive, lastUse, tempOwner, type Descriptor, type Entry, type Store } from './store.ts';
import { isDigest } from './untrusted.ts';

export interface Removed {
  count: number;
  bytes: number;
}

export interface PruneResult {
  blobs: Removed;
  records: Removed;
  rootfsDirs: Removed;
  cacheMounts: Removed;
}

export interface PruneOptions {
  /** Remove the whole build cache, leaving only what tagged images need. */
  all?: boolean;
  /** Then remove least recently used cache items until the cache takes at most this many bytes. */
  keepStorage?: number;
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40 };

/** A size as docker writes it: `10GB`, `512MB`, `1.5GiB`, `2g`, `4096` (kB, MB… are powers of 1000, KiB, MiB… of 1024). */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?$/i.exec(text.trim());
  if (!match) return undefined;
  return Math.floor(Number(match[1]) * UNITS[(match[2] ?? '').toLowerCase()]!);
}

interface RecordItem extends Entry {
  kind: 'record';
  /** The layer blob the record names; undefined for a step that changed nothing. */
  digest?: string;
  /** Unreadable, or its layer blob is gone. */
  broken: boolean;
}

interface DirItem extends Entry {
  kind: 'rootfs' | 'mount';
}

export async function prune(store: Store, options: PruneOptions = {}): Promise<PruneResult> {
  const marker = await store.tempDir('prune');
  try {
    return await new Pruner(store, await busySince(store)).run(options);
  } finally {
    await rm(marker, { recursive: true, force: true });
  }
}

/**
 * Builds may run while prune does. Every running hoist process keeps temp entries, named
 * kind-PID-random, in STORE/tmp while it works, and what it writes or uses (blobs, records,
 * rootfs dirs, which it marks used) is at least as new as its oldest such entry. So nothing whose
 * last use is at or after the oldest live entry's is removed. Prune's own marker bounds this
 * (made just before this runs) at its start, for processes that begin while it runs.
 */
async function busySince(store: Store): Promise<number> {
  let oldest = Infinity;
  for (const temp of await store.entries('tmp')) {
    const owner = tempOwner(temp.name);
    if (owner !== undefined && isAlive(owner)) oldest = Math.min(oldest, temp.lastUse);
  }
  return oldest;
}

class Pruner {
  private readonly result: PruneResult = {
    blobs: { count: 0, bytes: 0 }, records: { count: 0, bytes: 0 }, rootfsDirs: { count: 0, bytes: 0 }, cacheMounts: { count: 0, bytes: 0 },
  };
  private readonly store: Store;
  private readonly records: CacheStore;
  private readonly cutoff: number;

  constructor(store: Store, cutoff: number) {
    this.store = store;
    this.records = new CacheStore(store);
    this.cutoff = cutoff;
  }

  async run(options: PruneOptions): Promise<PruneResult> {
    const tagged = await taggedContent(this.store);
    const records: RecordItem[] = [];
    for (const record of await this.readRecords()) {
      if ((options.all || record.broken) && (await this.removeRecord(record))) continue;
      records.push(record);
    }
    const rootfsDirs: DirItem[] = [];
    for (const entry of await this.store.entries('rootfs')) {
      const dir: DirItem = { kind: 'rootfs', ...entry };
      if ((options.all || !tagged.chains.has(dir.name)) && (await this.removeDir(dir))) continue;
      rootfsDirs.push(dir);
    }
    let mounts = (await this.store.entries('mounts')).map((entry): DirItem => ({ kind: 'mount', ...entry }));
    if (options.all) {
      mounts = await this.removeDirs(mounts);
      for (const hint of await this.store.entries('hints')) await this.removeFile(hint.path);
    }

    const recordBlobs = new Map<string, number>();
    for (const { digest } of records) if (digest && !tagged.blobs.has(digest)) recordBlobs.set(digest, (recordBlobs.get(digest) ?? 0) + 1);
    for (const { name: digest } of await this.store.entries('blobs')) {
      if (!tagged.blobs.has(digest) && !recordBlobs.has(digest)) await this.removeBlob(digest);
    }

    if (options.keepStorage !== undefined) await this.keepStorage(options.keepStorage, records, rootfsDirs, mounts, recordBlobs);

    for (const step of await this.store.entries('steps')) {
      const key = await this.records.lastKey(step.name);
      const live = key !== undefined && (await lstat(this.store.recordPath(key)).catch(() => undefined));
      if (options.all || !live) await this.removeFile(step.path);
    }
    return this.result;
  }

  /** Removes the least recently used records (and blobs only they need), rootfs dirs and cache mounts until the cache fits in `limit` bytes. */
  private async keepStorage(limit: number, records: RecordItem[], rootfsDirs: DirItem[], mounts: DirItem[], recordBlobs: Map<string, number>): Promise<void> {
    const sizes = new Map<DirItem, number>();
    let storage = 0;
    for (const digest of recordBlobs.keys()) storage += (await lstat(this.store.blobPath(digest)).catch(() => undefined))?.size ?? 0;
    for (const dir of [...rootfsDirs, ...mounts]) {
      sizes.set(dir, await treeSize(dir.path));
      storage += sizes.get(dir)!;
    }
    const candidates = [...records, ...rootfsDirs, ...mounts].filter((item) => item.lastUse < this.cutoff).sort((a, b) => a.lastUse - b.lastUse);
    for (const item of candidates) {
      if (storage <= limit) break;
      if (item.kind === 'record') {
        if (!(await this.removeRecord(item)) || !item.digest || !recordBlobs.has(item.digest)) continue;
        const users = recordBlobs.get(item.digest)! - 1;
        recordBlobs.set(item.digest, users);
        if (users === 0) storage -= await this.removeBlob(item.digest);
      } else if (await this.removeDir(item)) {
        storage -= sizes.get(item)!;
      }
    }
  }

  private async readRecords(): Promise<RecordItem[]> {
    const records: RecordItem[] = [];
    for (const entry of await this.store.entries('records')) {
      const record: CacheRecord | undefined = await this.records.get(entry.name).catch(() => undefined);
      const digest = record?.layer?.digest;
      const broken = !record || (digest !== undefined && !(isDigest(digest) && (await this.store.hasBlob(digest))));
      records.push({ kind: 'record', ...entry, ...(digest ? { digest } : {}), broken });
    }
    return records;
  }

  /** Removes the dirs it may; returns those it kept. */
  private async removeDirs(dirs: DirItem[]): Promise<DirItem[]> {
    const kept: DirItem[] = [];
    for (const dir of dirs) if (!(await this.removeDir(dir))) kept.push(dir);
    return kept;
  }

  private async removeRecord(record: RecordItem): Promise<boolean> {
    const size = await this.removeFile(record.path);
    if (size === undefined) return false;
    this.count(this.result.records, size);
    return true;
  }

  /** Returns the bytes freed (0 when the blob was kept). */
  private async removeBlob(digest: string): Promise<number> {
    const size = await this.removeFile(this.store.blobPath(digest));
    if (size === undefined) return 0;
    await rm(this.store.sourcesPath(digest), { force: true });
    await rm(this.store.listingPath(digest), { force: true });
    this.count(this.result.blobs, size);
    return size;
  }

  /** Removes a file unless it is too new (see busySince); returns its size, or undefined when kept. */
  private async removeFile(path: string): Promise<number | undefined> {
    const info = await lstat(path).catch(() => undefined);
    if (!info || lastUse(info) >= this.cutoff) return undefined;
    try {
      await unlink(path);
      return info.size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Renames the dir into STORE/tmp, then deletes it, unless it is too new; true when removed. */
  private async removeDir(dir: DirItem): Promise<boolean> {
    const info = await lstat(dir.path).catch(() => undefined);
    if (!info || lastUse(info) >= this.cutoff) return false;
    const size = await treeSize(dir.path);
    const trash = this.store.tempPath('prune');
    try {
      await rename(dir.path, trash);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    await rm(trash, { recursive: true, force: true });
    this.count(dir.kind === 'rootfs' ? this.result.rootfsDirs : this.result.cacheMounts, size);
    return true;
  }

  private count(removed: Removed, bytes: number): void {
    removed.count++;
    removed.bytes += bytes;
  }
}

/** Every blob that a tagged image needs (through indexes, to manifests, configs and layers), and its layer chains' rootfs names. */
async function taggedContent(store: Store): Promise<{ blobs: Set<string>; chains: Set<string> }> {
  const blobs = new Set<string>();
  const chains = new Set<string>();
  const visit = async (descriptor: Descriptor): Promise<void> => {
    if (blobs.has(descriptor.digest) || !isDigest(descriptor.digest)) return;
    blobs.add(descriptor.digest);
    if (!(await store.hasBlob(descriptor.digest))) return;
    // An unreadable manifest throws: better to prune nothing than a tagged image's layers.
    const document = await store.readJson<Partial<Manifest> & { manifests?: Descriptor[] }>(descriptor.digest);
    for (const child of document.manifests ?? []) await visit(child);
    if (!document.config || !isDigest(document.config.digest)) return;
    blobs.add(document.config.digest);
    for (const layer of document.layers ?? []) blobs.add(layer.digest);
    if (!(await store.hasBlob(document.config.digest))) return;
    const diffIds = (await store.readJson<ImageConfig>(document.config.digest)).rootfs?.diff_ids ?? [];
    for (let i = 1; i <= diffIds.length; i++) chains.add(chainKey(diffIds.slice(0, i)));
  };
  for (const tag of await store.listTags()) await visit(tag);
  return { blobs, chains };
}

/** The sizes of the files under `dir`, at any depth (symlinks not followed). */
async function treeSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory()) total += (await lstat(join(entry.parentPath, entry.name)).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
