// The build cache as a build sees it: keys from a step's inputs, lookups in the store (then in
// caches imported with --cache-from), and the reason a step missed.
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { relative, sep } from 'node:path';
import { CacheStore, type CacheRecord, type Layer, type LayerEntry, type StepInputs, type Store } from '../layers/index.ts';

export const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');
/** The first 128 bits of sha256 in hex: a string of its own (a slice of the full hex would keep all 64 characters alive). */
const shortSha256 = (text: string): string => createHash('sha256').update(text).digest().toString('hex', 0, 16);

/** A cache imported with --cache-from: its records, and a way to get a record's layer into the store. */
export interface CacheSource {
  records: ReadonlyMap<string, CacheRecord>;
  /** Where each Dockerfile place (locator) was built last, for explanations. */
  steps: ReadonlyMap<string, string>;
  /** Contents of cache mounts, by mount directory name. */
  mounts: ReadonlyMap<string, Layer>;
  /** Fetches a layer's blob, checked against its digest and its diffID. */
  fetchLayer(layer: Layer): Promise<void>;
}

/** The canonical form of inputs: keys sorted at every level, so that equal inputs hash equally. */
function canonical(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(canonical);
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical((value as Record<string, unknown>)[key])]));
}

export function cacheKey(inputs: StepInputs): string {
  return sha256(JSON.stringify(canonical(inputs)));
}

/** Each value replaced by its sha256, so that records name variables without keeping their values. */
export function hashedValues(values: Iterable<[string, string]>): Record<string, string> {
  return Object.fromEntries([...values].map(([key, value]) => [key, shortSha256(value)]));
}

export class BuildCache {
  private readonly records: CacheStore;
  private readonly store: Store;
  private readonly sources: CacheSource[];
  /** Every record this build used or made, by key, and whether its stage is the target, for --cache-to. */
  readonly used = new Map<string, { record: CacheRecord; final: boolean; locator: string }>();
  /** Cache mounts this build used: directory name → contents directory. */
  readonly usedMounts = new Map<string, string>();
  /** Steps being made now by the builds that share this cache (one per platform), by key. */
  private readonly making = new Map<string, Promise<void>>();

  constructor(store: Store, sources: CacheSource[] = []) {
    this.store = store;
    this.records = new CacheStore(store);
    this.sources = sources;
  }

  /** The record for `key` whose layer is (now) in the store, from the store or an imported cache. */
  async lookup(key: string): Promise<CacheRecord | undefined> {
    const local = await this.records.get(key);
    if (local && (!local.layer || (await this.store.hasBlob(local.layer.digest)))) {
      await this.records.touch(key);
      return local;
    }
    for (const source of this.sources) {
      const record = source.records.get(key);
      if (!record) continue;
      if (record.layer) await source.fetchLayer(record.layer);
      await this.records.put(key, record);
      return record;
    }
    return undefined;
  }

  /**
   * Takes the step `key` for the caller to make, or, when another build sharing this cache is
   * making it, gives the promise of that build's end: a stage that does not depend on the target
   * platform is then built once for every platform, the others taking its record.
   */
  take(key: string): { release: () => void } | { busy: Promise<void> } {
    const other = this.making.get(key);
    if (other) return { busy: other };
    const { promise, resolve } = Promise.withResolvers<void>();
    this.making.set(key, promise);
    return {
      release: () => {
        this.making.delete(key);
        resolve();
      },
    };
  }

  /** Whether caches from elsewhere (--cache-from) were imported. */
  get hasSources(): boolean {
    return this.sources.length > 0;
  }

  async save(key: string, record: CacheRecord): Promise<void> {
    await this.records.put(key, record);
  }

  /** Notes that `key` was built (or found) at `locator`, and keeps the record for --cache-to. */
  async remember(locator: string, key: string, record: CacheRecord, final: boolean): Promise<void> {
    await this.records.setLastKey(locator, key);
    this.used.set(key, { record, final, locator });
  }

  /**
   * Notes a cache mount's use; a new one is first filled from an imported cache that has its
   * contents, with `unpack`.
   */
  async useMount(name: string, dir: string, isNew: boolean, unpack: (layer: Layer, dir: string) => Promise<void>): Promise<void> {
    this.usedMounts.set(name, dir);
    const layer = isNew ? this.sources.map((source) => source.mounts.get(name)).find(Boolean) : undefined;
    if (!layer) return;
    await this.sources.find((source) => source.mounts.get(name) === layer)!.fetchLayer(layer);
    await unpack(layer, dir);
  }

  /** Why a step with these inputs missed, compared with what was built at the same place before. */
  async explain(locator: string, inputs: StepInputs): Promise<string> {
    const lastKey = (await this.records.lastKey(locator)) ?? this.sources.map((source) => source.steps.get(locator)).find(Boolean);
    const last = lastKey === undefined ? undefined : ((await this.records.get(lastKey)) ?? this.sources.map((source) => source.records.get(lastKey)).find(Boolean));
    if (!last) return 'not built before';
    if (lastKey === cacheKey(inputs)) return 'its cached layer is no longer in the store';
    const before = last.inputs;
    if (before.parent !== inputs.parent) return 'parent layer changed';
    const reasons: string[] = [];
    reasons.push(...changedNames(before.args, inputs.args).map((name) => `build arg ${name} changed`));
    reasons.push(...changedNames(before.env, inputs.env).map((name) => `ENV ${name} changed`));
    reasons.push(...changedNames(before.step, inputs.step).map((name) => `${name} changed`));
    const [was, is] = [before.files ?? {}, inputs.files ?? {}];
    const files = changedNames(was, is);
    for (const [how, names] of Object.entries(Object.groupBy(files, (name) => (!(name in was) ? 'added' : !(name in is) ? 'removed' : 'changed')))) {
      reasons.push(`${names!.slice(0, 3).join(', ')}${names!.length > 3 ? ` and ${names!.length - 3} more` : ''} ${how}`);
    }
    // The previous record was pruned or built with other settings the inputs do not show.
    return reasons.length > 0 ? reasons.join('; ') : 'no matching cache record';
  }
}

/** Names whose values differ, or that one side lacks. */
function changedNames(before: Record<string, string>, after: Record<string, string>): string[] {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((name) => before[name] !== after[name]).sort();
}

/** `racy`: the file was changed so shortly before it was hashed that a change within the same
 * timestamp tick would not show in its stat data; such a hint is checked by reading (as git does). */
type Hint = [size: number, mtimeMs: number, ctimeMs: number, ino: number, hash: string, racy: boolean];

/** What of a file's stat data a hint compares: 4 numbers, not a Stats object of 20 (30,000 files made 13 MB of them). */
type Stamp = [size: number, mtimeMs: number, ctimeMs: number, ino: number];
const stampOf = (stats: Stats): Stamp => [stats.size, stats.mtimeMs, stats.ctimeMs, stats.ino];

/**
 * Content hashes of a context's files, kept between builds by stat data: a file whose size,
 * mtime, ctime and inode are unchanged is not read again. The stat data is only a hint; the
 * content hash is what keys use.
 */
export class ContentHashes {
  private readonly records: CacheStore;
  /** The name its hints are kept under: one set per context directory. */
  private readonly name: string;
  private readonly root: string;
  private hints: Record<string, Hint> = {};
  private changed = false;
  /** Stat data seen by this build (COPY's walk), so that files are not stat'ed twice. */
  private readonly stamps = new Map<string, Stamp>();
  /** Hashes learnt by this build, by absolute path. */
  private readonly known = new Map<string, string>();
  private readonly startedMs = Date.now();

  constructor(store: Store, root: string) {
    this.records = new CacheStore(store);
    this.root = root;
    this.name = sha256(root);
  }

  async load(): Promise<void> {
    this.hints = (await this.records.hints<Record<string, Hint>>(this.name)) ?? {};
  }

  async save(): Promise<void> {
    if (this.changed) await this.records.saveHints(this.name, this.hints);
  }

  noteStats(path: string, stats: Stats): void {
    this.stamps.set(path, stampOf(stats));
  }

  /**
   * sha256 of a file's content: known from this build, or from the hints when a context file's
   * stat data is unchanged, or read (undefined instead when `read` is false).
   */
  fileHash(path: string, read = true): string | undefined {
    const known = this.known.get(path);
    if (known !== undefined) return known;
    const rel = relative(this.root, path);
    const hint = path.startsWith(this.root + sep) ? this.hints[rel] : undefined;
    const same = hint !== undefined && sameFile(hint, this.stampOf(path));
    if (same && !hint[5]) return hint[4];
    // A racy hint's file is read even when `read` is false: it most likely did not change.
    return read || same ? this.learnOne(path, hashFile(path)) : undefined;
  }

  /** Takes hashes computed elsewhere (as a layer was written); returns the entries' hashes. */
  learn(hashes: ReadonlyMap<string, string>, entries: LayerEntry[]): Record<string, string> {
    for (const [path, hash] of hashes) {
      this.learnOne(path, hash);
      this.stamps.delete(path); // now in the hints
    }
    return this.entryHashes(entries, { readChanged: true })!;
  }

  private learnOne(path: string, hash: string): string {
    this.known.set(path, hash);
    if (!path.startsWith(this.root + sep)) return hash;
    const [size, mtimeMs, ctimeMs, ino] = this.stampOf(path);
    // Linux file times advance with the kernel's tick (1 to 10 ms); 100 ms leaves a wide margin.
    const racy = Math.max(mtimeMs, ctimeMs) >= this.startedMs - 100;
    this.hints[relative(this.root, path)] = [size, mtimeMs, ctimeMs, ino, hash, racy];
    this.changed = true;
    return hash;
  }

  private stampOf(path: string): Stamp {
    return this.stamps.get(path) ?? stampOf(lstatSync(path));
  }

  /**
   * What a COPY's entries contribute to its key: metadata and content, but not mtimes. Undefined
   * when a file's content is not known yet and `readChanged` is false.
   */
  entryHashes(entries: LayerEntry[], options: { readChanged: boolean }): Record<string, string> | undefined {
    const result: Record<string, string> = {};
    for (const entry of entries) {
      const content = entry.type === 'file' && typeof entry.source === 'string' ? this.fileHash(entry.source, options.readChanged) : '';
      if (content === undefined) return undefined;
      const xattrs = Object.entries(entry.xattrs ?? {}).map(([name, value]) => `${name}=${value.toString('hex')}`).join(',');
      const label = typeof entry.source === 'string' && entry.source.startsWith(this.root + sep) ? relative(this.root, entry.source) : `/${entry.path}`;
      result[label in result ? `${label} -> /${entry.path}` : label] = shortSha256(`${entry.path}\0${entry.type}\0${entry.mode}\0${entry.uid}\0${entry.gid}\0${entry.linkname ?? ''}\0${entry.size ?? 0}\0${xattrs}\0${content}`);
    }
    return result;
  }
}

const chunk = Buffer.allocUnsafe(1 << 20);

/** sha256 of a file, read a megabyte at a time: a large file is never held in memory. */
export function hashFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let read; (read = readSync(fd, chunk, 0, chunk.length, null)) > 0;) hash.update(chunk.subarray(0, read));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function sameFile(hint: Hint, stamp: Stamp): boolean {
  return hint[0] === stamp[0] && hint[1] === stamp[1] && hint[2] === stamp[2] && hint[3] === stamp[3];
}
