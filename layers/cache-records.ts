// The build cache's records in the store. A record says what one build step produced (a layer,
// or nothing) for a cache key, and what went into the key, so that a later miss can say what
// changed. Layout, under STORE/cache/:
//   records/<key>.json   one record; its mtime is when it was last used (for prune's LRU order)
//   steps/<locator>      the key last built at a place in a Dockerfile (for miss explanations)
//   mounts/<id>/         RUN --mount=type=cache directories
//   files/<context>.json content hashes of context files, by stat data (hints, not truth)
import { mkdir, readdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Layer } from './layer.ts';
import { atomicWrite, type Store } from './store.ts';

/** What went into a step's cache key, kept readable enough to explain a miss. */
export interface StepInputs {
  /** The key of the state the step starts from. */
  parent: string;
  /** The instruction, expanded, and what else it depends on but env, args and files, by name. */
  step: Record<string, string>;
  /** sha256 of each variable's value: values are not kept, names are. */
  env: Record<string, string>;
  args: Record<string, string>;
  /** Path → sha256 of each copied or bound file's content and metadata (COPY, ADD, bind mounts). */
  files?: Record<string, string>;
}

export interface CacheRecord {
  /** The layer the step made; null when it changed nothing. */
  layer: Layer | null;
  /** When the step first ran: history and the config's `created` take it, so a rebuild is identical. */
  created: string;
  inputs: StepInputs;
}

/** Whether a value has the form of a cache key (64 lowercase hex digits). */
export const isCacheKey = (value: unknown): value is string => typeof value === 'string' && /^[a-f0-9]{64}$/.test(value);

export class CacheStore {
  readonly dir: string;
  private readonly tempDir: string;

  constructor(store: Store) {
    this.dir = join(store.root, 'cache');
    this.tempDir = join(store.root, 'tmp');
  }

  recordPath(key: string): string {
    if (!isCacheKey(key)) throw new Error(`not a cache key: ${key}`);
    return join(this.dir, 'records', `${key}.json`);
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const text = await readFile(this.recordPath(key), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as CacheRecord);
  }

  /** Marks a record used now, for least-recently-used pruning. */
  async touch(key: string): Promise<void> {
    const now = new Date();
    await utimes(this.recordPath(key), now, now).catch(() => undefined);
  }

  async put(key: string, record: CacheRecord): Promise<void> {
    await this.atomicWrite(this.recordPath(key), JSON.stringify(record));
  }

  async keys(): Promise<string[]> {
    const names = await readdir(join(this.dir, 'records')).catch(() => [] as string[]);
    return names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -5)).filter(isCacheKey);
  }

  /** The key last built at `locator` (a place in a Dockerfile). */
  async lastKey(locator: string): Promise<string | undefined> {
    const text = await readFile(join(this.dir, 'steps', locator), 'utf8').catch(() => undefined);
    return isCacheKey(text) ? text : undefined;
  }

  async setLastKey(locator: string, key: string): Promise<void> {
    await this.atomicWrite(join(this.dir, 'steps', locator), key);
  }

  /** A cache mount's directory, made on first use. */
  async mountDir(id: string): Promise<string> {
    const dir = join(this.dir, 'mounts', id);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async readJson<T>(name: string): Promise<T | undefined> {
    const text = await readFile(join(this.dir, name), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await this.atomicWrite(join(this.dir, name), JSON.stringify(value));
  }

  private async atomicWrite(path: string, content: string): Promise<void> {
    await mkdir(join(path, '..'), { recursive: true });
    await atomicWrite(this.tempDir, path, content);
  }
}
