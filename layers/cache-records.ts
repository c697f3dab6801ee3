// The build cache's records in the store. A record says what one build step produced (a layer,
// or nothing) for a cache key, and what went into the key, so that a later miss can say what
// changed. Beside them: the key last built at each place in a Dockerfile (for miss explanations),
// RUN cache mounts, and content-hash hints of context files. Where each lies is the store's
// business (see store.ts).
import { mkdir, readFile } from 'node:fs/promises';
import type { Layer } from './layer.ts';
import { isCacheKey, markUsed, type Store } from './store.ts';

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

export class CacheStore {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const text = await readFile(this.store.recordPath(key), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as CacheRecord);
  }

  /** Marks a record used now, for least-recently-used pruning. */
  async touch(key: string): Promise<void> {
    await markUsed(this.store.recordPath(key));
  }

  async put(key: string, record: CacheRecord): Promise<void> {
    await this.store.putFile(this.store.recordPath(key), JSON.stringify(record));
  }

  async keys(): Promise<string[]> {
    return (await this.store.entries('records')).map((entry) => entry.name);
  }

  /** The key last built at `locator` (a place in a Dockerfile). */
  async lastKey(locator: string): Promise<string | undefined> {
    const text = await readFile(this.store.stepPath(locator), 'utf8').catch(() => undefined);
    return isCacheKey(text) ? text : undefined;
  }

  async setLastKey(locator: string, key: string): Promise<void> {
    await this.store.putFile(this.store.stepPath(locator), key);
  }

  /**
   * A RUN cache mount (by id), made on first use and marked used: where its contents go (`data`,
   * which the mount makes with the mode and owner it asks for) and its lock file.
   */
  async mount(id: string): Promise<{ data: string; lock: string }> {
    const { dir, data, lock } = this.store.cacheMountPaths(id);
    await mkdir(dir, { recursive: true });
    await markUsed(dir);
    return { data, lock };
  }

  /** The content-hash hints called `name` (see ContentHashes in builder/cache.ts). */
  async hints<T>(name: string): Promise<T | undefined> {
    const text = await readFile(this.store.hintsPath(name), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async saveHints(name: string, value: unknown): Promise<void> {
    await this.store.putFile(this.store.hintsPath(name), JSON.stringify(value));
  }
}
