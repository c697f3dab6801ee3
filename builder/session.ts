// What one build keeps while it runs: its temp dirs, its context and the files' content hashes.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeXattrs } from '../userns-native/index.ts';
import type { Store } from '../layers/index.ts';
import { ContentHashes } from './cache.ts';
import { loadContext, type BuildContext } from './context.ts';
import type { Host } from './host.ts';
import { Timestamps } from './timestamps.ts';

/** The value `map` holds for `key`, made by `make` the first time: what a build works out once and reuses. */
export function once<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  if (!map.has(key)) map.set(key, make());
  return map.get(key)!;
}

export class BuildSession {
  readonly store: Store;
  readonly host: Host;
  readonly times: Timestamps;
  readonly log: (line: string) => void;
  /** Aborted after a failure: stages not started never start, and running steps are killed. */
  readonly cancelled = new AbortController();
  private readonly contextDir: string;
  private readonly dockerfilePath: string;
  private loadedContext?: Promise<BuildContext>;
  private readonly contentHashes = new Map<string, Promise<ContentHashes>>();
  private readonly tempDirs: string[] = [];

  constructor(options: { store: Store; host: Host; times: Timestamps; log: (line: string) => void; contextDir: string; dockerfilePath?: string }) {
    this.store = options.store;
    this.host = options.host;
    this.times = options.times;
    this.log = options.log;
    this.contextDir = options.contextDir;
    this.dockerfilePath = options.dockerfilePath ?? join(options.contextDir, 'Dockerfile');
  }

  get signal(): AbortSignal {
    return this.cancelled.signal;
  }

  warn(message: string): void {
    this.log(`warning: ${message}`);
  }

  /** The build context with its ignore rules, read once. */
  context(): Promise<BuildContext> {
    return (this.loadedContext ??= loadContext(this.contextDir, this.dockerfilePath));
  }

  /** Content hashes of the files of a directory that COPY reads (the context, or a named one). */
  hashes(root: string): Promise<ContentHashes> {
    return once(this.contentHashes, root, async () => {
      const made = new ContentHashes(this.store, root);
      await made.load();
      return made;
    });
  }

  /** A temp dir in the store, removed when the build ends. */
  async tempDir(prefix: string): Promise<string> {
    const dir = await this.store.tempDir(prefix);
    this.tempDirs.push(dir);
    return dir;
  }

  /** How layers are applied to a directory here. */
  applyOptions() {
    return { warn: (message: string) => this.warn(message), setXattrs: writeXattrs, asRoot: this.host.root };
  }

  /** Keeps the content hashes learnt, then removes the temp dirs. */
  async close(): Promise<void> {
    // Hints only: failing to keep them (a full disk) must neither hide the build's own error nor keep its temp dirs.
    for (const hashes of this.contentHashes.values()) await (await hashes).save().catch(() => undefined);
    await Promise.all(this.tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }
}
