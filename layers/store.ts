// The local store: an OCI image layout on disk (blobs by digest, tagged images in index.json), and
// beside it what builds keep for later builds. Its layout, under the root, is known only here:
//   oci-layout, index.json      tagged images; index.json.lock serialises changes, so builds can share a store
//   blobs/sha256/<hex>          content, by digest
//   sources/<hex>               registry repositories known to hold a blob (see noteBlobRepository)
//   rootfs/<chain key>/         layers applied together, for later builds (see rootfsChain)
//   cache/records/<key>.json    build cache records (see cache-records.ts)
//   cache/steps/<locator>       the cache key last built at a place in a Dockerfile
//   cache/mounts/<id>/          a RUN cache mount: its contents in data/, and its lock file
//   cache/files/<name>.json     content-hash hints of a build context's files
//   tmp/<kind>-<pid>-<random>   work in progress (see tempName): a dead process's is removed when the store is opened
// Files are written to a temp file and renamed into place (atomicWrite), so a killed build never
// leaves half a file under a real name. The mtime of a rootfs dir, cache record or cache mount is its
// last use (markUsed), by which prune removes the least recently used first.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, type Stats } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { checkedBytes, DigestMismatchError, type BlobSource, type ByteRange } from './source.ts';
import { parseDigest, parseJson } from './untrusted.ts';

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  inToto: 'application/vnd.in-toto+json',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export function defaultStoreRoot(): string {
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'hoist');
}

const HEX64 = /^[a-f0-9]{64}$/;

/** Whether a value has the form of a cache key (64 lowercase hex digits). */
export const isCacheKey = (value: unknown): value is string => typeof value === 'string' && HEX64.test(value);

/** The name of the rootfs directory of these layers applied in order; cache keys name an image's layers by it too. */
export function chainKey(diffIds: string[]): string {
  return createHash('sha256').update(diffIds.join('\n')).digest('hex');
}

interface AreaLayout {
  /** Its directory, under the store's root. */
  dir: string;
  /** Its entries are the files at any depth under it, by relative path, not the names right under it. */
  nested?: boolean;
  /** An entry's name from its file name; undefined for a file that is not an entry. */
  name?: (file: string) => string | undefined;
}

/** The areas of the store: where each lies, and how its entries are named. */
const AREAS = {
  blobs: { dir: 'blobs/sha256', name: (file) => (HEX64.test(file) ? `sha256:${file}` : undefined) },
  sources: { dir: 'sources' },
  listings: { dir: 'listings' },
  rootfs: { dir: 'rootfs' },
  records: { dir: 'cache/records', name: (file) => (file.endsWith('.json') && isCacheKey(file.slice(0, -5)) ? file.slice(0, -5) : undefined) },
  steps: { dir: 'cache/steps', nested: true },
  mounts: { dir: 'cache/mounts' },
  hints: { dir: 'cache/files', nested: true },
  tmp: { dir: 'tmp' },
} satisfies Record<string, AreaLayout>;

export type Area = keyof typeof AREAS;

/** An entry of an area: its name there (a blob's digest, a record's key, a step's locator...), its path and last use. */
export interface Entry {
  name: string;
  path: string;
  lastUse: number;
}

export class Store implements BlobSource {
  readonly name = 'store';
  readonly root: string;
  private readonly tmp: string;

  private constructor(root: string) {
    this.root = root;
    this.tmp = join(root, AREAS.tmp.dir);
  }

  static async open(root = defaultStoreRoot()): Promise<Store> {
    const store = new Store(root);
    await mkdir(join(root, AREAS.blobs.dir), { recursive: true });
    await mkdir(store.tmp, { recursive: true });
    const layout = join(root, 'oci-layout');
    if (!(await exists(layout))) await store.putFile(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await removeDeadTemps(store.tmp);
    return store;
  }

  /** The entries of an area (none when it does not exist yet), for prune. */
  async entries(area: Area): Promise<Entry[]> {
    const layout: AreaLayout = AREAS[area];
    const dir = join(this.root, layout.dir);
    const files = layout.nested
      ? (await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []))
        .filter((entry) => !entry.isDirectory()).map((entry) => relative(dir, join(entry.parentPath, entry.name)))
      : await readdir(dir).catch(() => [] as string[]);
    const entries: Entry[] = [];
    for (const file of files) {
      const name = layout.name ? layout.name(file) : file;
      const info = name === undefined ? undefined : await lstat(join(dir, file)).catch(() => undefined);
      if (name !== undefined && info) entries.push({ name, path: join(dir, file), lastUse: lastUse(info) });
    }
    return entries;
  }

  blobPath(digest: string): string {
    return join(this.root, AREAS.blobs.dir, parseDigest(digest, 'store blob').slice(7));
  }

  hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /**
   * A new private directory in STORE/tmp, named for this process (mkdtemp adds the random part), on
   * the store's file system so that renames into the store are atomic.
   */
  tempDir(kind: string): Promise<string> {
    return mkdtemp(join(this.tmp, tempName(kind, '')));
  }

  /** A path in STORE/tmp for a temp entry of this process. */
  tempPath(kind: string): string {
    return join(this.tmp, tempName(kind));
  }

  /** Writes a file of the store whole or not at all (its temp file in STORE/tmp), making its directory. */
  async putFile(path: string, content: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await atomicWrite(this.tmp, path, content);
  }

  /**
   * Streams `source` into a blob, each chunk written before the next is asked for (a layer's
   * compressor reuses its buffers then). With `expected`, bytes that do not match its digest are
   * refused and nothing is kept.
   */
  async writeBlob(source: AsyncIterable<Buffer>, options: { expected?: string } = {}): Promise<{ digest: string; size: number }> {
    const hash = createHash('sha256');
    let size = 0;
    let digest = '';
    await atomicWrite(this.tmp, () => this.blobPath(digest), async (temp) => {
      const file = await open(temp, 'w');
      try {
        for await (const chunk of source) {
          hash.update(chunk);
          size += chunk.length;
          for (let at = 0; at < chunk.length;) at += (await file.write(chunk, at)).bytesWritten;
        }
      } finally {
        await file.close();
      }
      digest = `sha256:${hash.digest('hex')}`;
      if (options.expected !== undefined && digest !== options.expected) {
        throw new DigestMismatchError(`content does not match its digest: expected ${options.expected}, got ${digest}`);
      }
    }, 'blob');
    return { digest, size };
  }

  /** Stores a JSON document exactly as serialised here, and returns its descriptor. */
  async writeJson(mediaType: string, value: unknown): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(value));
    const { digest, size } = await this.writeBlob(Readable.from([bytes]));
    return { mediaType, digest, size };
  }

  /** Reads a JSON blob, checking its bytes against the digest. */
  async readJson<T>(digest: string): Promise<T> {
    return parseJson(await this.read(digest), `store blob ${digest}`) as T;
  }

  /** A blob, or a range of it, as it is: blobs were checked on their way in. */
  stream(digest: string, range?: ByteRange): Readable {
    // In 1 MiB reads: a 1 GiB layer pushed in 64 KiB ones spent a tenth of its time per chunk.
    return createReadStream(this.blobPath(digest), { ...range, highWaterMark: 1 << 20 });
  }

  /** A whole blob (a manifest, an index, a config), checked against its digest. */
  async read(digest: string): Promise<Buffer> {
    return checkedBytes(await readFile(this.blobPath(digest)), digest, this.name);
  }

  async size(digest: string): Promise<number> {
    return (await stat(this.blobPath(digest))).size;
  }

  /**
   * Records that a registry repository (`host/path`) holds a blob, so that a push to another
   * repository of that registry can mount it instead of uploading it.
   */
  async noteBlobRepository(digest: string, repository: string): Promise<void> {
    const known = await this.blobRepositories(digest);
    if (known.includes(repository)) return;
    await this.putFile(this.sourcesPath(digest), [...known, repository].slice(-16).join('\n') + '\n');
  }

  async blobRepositories(digest: string): Promise<string[]> {
    const text = await readFile(this.sourcesPath(digest), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean);
  }

  /** The file that lists the repositories known to hold a blob (see noteBlobRepository). */
  sourcesPath(digest: string): string {
    return join(this.root, AREAS.sources.dir, parseDigest(digest, 'store blob').slice(7));
  }

  /**
   * The file that lists a layer blob's entries (their metadata, no content), kept beside the blob so
   * that a later build need not read the whole blob to know what the layer holds.
   */
  listingPath(digest: string): string {
    return join(this.root, AREAS.listings.dir, parseDigest(digest, 'store blob').slice(7));
  }

  /**
   * The directory of `diffIds`' layers applied together (STORE/rootfs/<chainKey>), kept for later builds:
   * made once by `fill` into a temp dir and renamed in (another process finishing first wins);
   * when it exists, its last use is marked.
   */
  async rootfsChain(diffIds: string[], fill: (dir: string) => Promise<void>): Promise<string> {
    const dir = join(this.root, AREAS.rootfs.dir, chainKey(diffIds));
    if (await markUsed(dir)) return dir;
    const temp = await this.tempDir('rootfs');
    try {
      await fill(join(temp, 'root'));
      await mkdir(dirname(dir), { recursive: true });
      // Another process may have finished the same directory first: then keep theirs.
      await rename(join(temp, 'root'), dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
    return dir;
  }

  /** The file of a build cache record (see cache-records.ts). */
  recordPath(key: string): string {
    if (!isCacheKey(key)) throw new Error(`not a cache key: ${key}`);
    return join(this.root, AREAS.records.dir, `${key}.json`);
  }

  /** The file holding the cache key last built at `locator` (a place in a Dockerfile). */
  stepPath(locator: string): string {
    return join(this.root, AREAS.steps.dir, locator);
  }

  /** The file of content-hash hints called `name` (one per build context). */
  hintsPath(name: string): string {
    return join(this.root, AREAS.hints.dir, `${name}.json`);
  }

  /**
   * A RUN cache mount's places (by mount id): its directory, whose last use is marked; `data`, the
   * contents' directory (the mount makes it, with the mode and owner it asks for); and its lock file.
   */
  cacheMountPaths(id: string): { dir: string; data: string; lock: string } {
    const dir = join(this.root, AREAS.mounts.dir, id);
    return { dir, data: join(dir, 'data'), lock: join(dir, 'lock') };
  }

  async listTags(): Promise<Descriptor[]> {
    return (await this.readIndex()).manifests.filter((descriptor) => descriptor.annotations?.[REF_NAME]);
  }

  async resolve(ref: string): Promise<Descriptor | undefined> {
    return (await this.listTags()).find((descriptor) => descriptor.annotations![REF_NAME] === ref);
  }

  /** Points `ref` at a manifest, replacing what it pointed at before. */
  async tag(ref: string, manifest: Descriptor): Promise<void> {
    await this.updateIndex((manifests) => [
      ...manifests.filter((descriptor) => descriptor.annotations?.[REF_NAME] !== ref),
      { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size, annotations: { [REF_NAME]: ref } },
    ]);
  }

  /** Removes a tag; true when it existed. */
  async untag(ref: string): Promise<boolean> {
    let found = false;
    await this.updateIndex((manifests) => manifests.filter((descriptor) => {
      const match = descriptor.annotations?.[REF_NAME] === ref;
      found ||= match;
      return !match;
    }));
    return found;
  }

  private async readIndex(): Promise<OciIndex> {
    try {
      return JSON.parse(await readFile(join(this.root, 'index.json'), 'utf8')) as OciIndex;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, manifests: [] };
      throw error;
    }
  }

  private async updateIndex(change: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
    await withLock(join(this.root, 'index.json.lock'), async () => {
      const index = await this.readIndex();
      const updated: OciIndex = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: change(index.manifests) };
      await this.putFile(join(this.root, 'index.json'), JSON.stringify(updated, null, 2) + '\n');
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Marks an entry used now: its mtime is its last use (see lastUse). False only when it is not there:
 * last use only orders prune's removals, so another failure to mark it (EACCES) still counts as there.
 */
export async function markUsed(path: string): Promise<boolean> {
  const now = new Date();
  return utimes(path, now, now).then(() => true, (error: NodeJS.ErrnoException) => error.code !== 'ENOENT');
}

/** When an entry was last used (see markUsed), from its lstat. */
export function lastUse(info: Stats): number {
  return info.mtimeMs;
}

/**
 * The name of a temp entry of this process: `kind-PID-random`, so that one left by a process that
 * died can be told (see tempOwner) and removed.
 */
export function tempName(kind: string, random = randomBytes(8).toString('hex')): string {
  return `${kind}-${process.pid}-${random}`;
}

/** The pid in a temp entry's name (see tempName), read from its end as kinds may hold dashes; undefined for another name. */
export function tempOwner(name: string): number | undefined {
  const pid = Number(/-(\d+)-[^-]+$/.exec(name)?.[1]);
  return pid > 0 ? pid : undefined;
}

/** Removes the temp entries in `dir` (those whose names start with `prefix`) of processes that died. */
async function removeDeadTemps(dir: string, prefix = ''): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const owner = tempOwner(name);
    if (name.startsWith(prefix) && owner !== undefined && !isAlive(owner)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Puts a file at `path` whole or not at all: `content` goes to a temp file of this process in
 * `tempDir` (which must be on the same file system as `path`), named for `kind`, which is then
 * renamed to `path`. `content` may be a function that fills the temp file itself, and `path` one
 * asked once it is written (a blob is named by its digest). The temp file never outlives a failure.
 */
export async function atomicWrite(
  tempDir: string, path: string | (() => string), content: string | Buffer | ((temp: string) => Promise<void>), kind = 'write',
): Promise<void> {
  const temp = join(tempDir, tempName(kind));
  try {
    if (typeof content === 'function') await content(temp);
    else await writeFile(temp, content);
    await rename(temp, typeof path === 'function' ? path() : path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** A lock whose content is not a pid is stale once this old: every lock is written whole before it appears. */
const UNREADABLE_LOCK_MS = 2_000;

/**
 * A process as a lock names it: its pid and its start time (field 22 of /proc/PID/stat), so that
 * a later process given the same pid (likely in a CI container) is not taken for the owner.
 */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * Takes a lock file (a lock left by a dead process is taken over) and returns its release. While
 * another process holds it, waits up to `waitMs`, then returns undefined (`waitMs` 0) or fails.
 * The lock appears with its owner's identity already in it (written to a temp file, then
 * hard-linked into place), so a full disk or a kill never leaves an empty lock behind.
 */
export async function acquireLock(lockPath: string, options: { waitMs: number; what: string }): Promise<(() => Promise<void>) | undefined> {
  const temp = join(dirname(lockPath), tempName(basename(lockPath)));
  try {
    await writeFile(temp, processIdentity(process.pid) ?? String(process.pid), { flag: 'wx' });
    for (let attempt = 0; ; attempt++) {
      try {
        await link(temp, lockPath);
        return () => unlink(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = await lockOwner(lockPath);
      if (owner === 'stale') await unlink(lockPath).catch(() => undefined);
      else if (options.waitMs === 0) return undefined;
      else if (attempt * 20 > options.waitMs) throw new Error(`${options.what} is locked by process ${owner} (${lockPath})`);
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await unlink(temp).catch(() => undefined);
    await removeDeadTemps(dirname(lockPath), `${basename(lockPath)}-`);
  }
}

/** The live process holding a lock file, 'stale' when it can be taken over, or 0 if it just went. */
async function lockOwner(lockPath: string): Promise<number | 'stale'> {
  const [text, info] = await Promise.all([readFile(lockPath, 'utf8').catch(() => undefined), stat(lockPath).catch(() => undefined)]);
  if (text === undefined || !info) return 0;
  const [, pid, started] = /^(\d+)(?: (\d+))?$/.exec(text) ?? [];
  const owner = Number(pid ?? 0);
  if (owner > 0 && started !== undefined) return processIdentity(owner) === text ? owner : 'stale';
  if (owner > 0) return isAlive(owner) ? owner : 'stale';
  // Left by an older hoist, whose locks held a bare pid or could be empty.
  return Date.now() - info.mtimeMs > UNREADABLE_LOCK_MS ? 'stale' : 0;
}

/** Runs `task` holding the store's lock file. */
async function withLock<T>(lockPath: string, task: () => Promise<T>): Promise<T> {
  const release = (await acquireLock(lockPath, { waitMs: 30_000, what: 'the store' }))!;
  try {
    return await task();
  } finally {
    await release();
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
