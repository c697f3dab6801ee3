// The local store: an OCI image layout on disk (blobs by digest, tagged images in index.json).
// Every blob is written to a temp file and renamed into place, so a killed build never leaves a
// half blob under a real digest (its temp files are removed when the store is next opened); index.json changes are serialised by a lock file, so two builds
// can share a store.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseDigest, parseJson } from './untrusted.ts';

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
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

/** Bytes that hash to something other than the digest they were given as. */
export class DigestMismatchError extends Error {}

export function defaultStoreRoot(): string {
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'hoist');
}

/** A Transform that passes bytes through and computes their sha256 and count. */
class Hasher extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;

  override _transform(chunk: Buffer, _encoding: string, done: (error?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export class Store {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  static async open(root = defaultStoreRoot()): Promise<Store> {
    await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    const layout = join(root, 'oci-layout');
    if (!(await exists(layout))) await atomicWrite(join(root, 'tmp'), layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await removeStaleTemps(join(root, 'tmp'));
    return new Store(root);
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', parseDigest(digest, 'store blob').slice(7));
  }

  hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /** A new private directory on the store's file system (so renames into the store are atomic). */
  tempDir(prefix: string): Promise<string> {
    return mkdtemp(join(this.root, 'tmp', `${prefix}-${process.pid}-`));
  }

  /**
   * Streams `source` into a blob. With `expected`, bytes that do not match its digest are refused
   * and nothing is kept.
   */
  async writeBlob(source: Readable | AsyncIterable<Buffer>, options: { expected?: string } = {}): Promise<{ digest: string; size: number }> {
    const temp = join(this.root, 'tmp', `blob-${process.pid}-${randomBytes(8).toString('hex')}`);
    const hasher = new Hasher();
    const expected = options.expected;
    try {
      await pipeline(source, hasher, createWriteStream(temp));
      const digest = hasher.digest();
      if (expected !== undefined && digest !== expected) throw new DigestMismatchError(`content does not match its digest: expected ${expected}, got ${digest}`);
      await rename(temp, this.blobPath(digest));
      return { digest, size: hasher.size };
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Stores a JSON document exactly as serialised here, and returns its descriptor. */
  async writeJson(mediaType: string, value: unknown): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(value));
    const { digest, size } = await this.writeBlob(Readable.from([bytes]));
    return { mediaType, digest, size };
  }

  /** Reads a JSON blob, checking its bytes against the digest. */
  async readJson<T>(digest: string): Promise<T> {
    const bytes = await readFile(this.blobPath(digest));
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== digest) throw new Error(`store blob ${digest} is corrupt (its content hashes to ${actual})`);
    return parseJson(bytes, `store blob ${digest}`) as T;
  }

  readBlob(digest: string): Readable {
    return createReadStream(this.blobPath(digest));
  }

  async blobSize(digest: string): Promise<number> {
    return (await stat(this.blobPath(digest))).size;
  }

  /**
   * Records that a registry repository (`host/path`) holds a blob, so that a push to another
   * repository of that registry can mount it instead of uploading it.
   */
  async noteBlobSource(digest: string, repository: string): Promise<void> {
    const file = this.sourcesPath(digest);
    const known = await this.blobSources(digest);
    if (known.includes(repository)) return;
    await mkdir(join(this.root, 'sources'), { recursive: true });
    await atomicWrite(join(this.root, 'tmp'), file, [...known, repository].slice(-16).join('\n') + '\n');
  }

  async blobSources(digest: string): Promise<string[]> {
    const text = await readFile(this.sourcesPath(digest), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean);
  }

  /** The file that lists the repositories known to hold a blob (see noteBlobSource). */
  sourcesPath(digest: string): string {
    return join(this.root, 'sources', parseDigest(digest, 'store blob').slice(7));
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
      await atomicWrite(join(this.root, 'tmp'), join(this.root, 'index.json'), JSON.stringify(updated, null, 2) + '\n');
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

/** Temp files and dirs are named `kind-PID-random`: those of processes that died are removed. */
async function removeStaleTemps(tempDir: string): Promise<void> {
  for (const name of await readdir(tempDir)) {
    const pid = Number(name.split('-')[1]);
    if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) await rm(join(tempDir, name), { recursive: true, force: true });
  }
}

/** Writes `content` to `path` whole or not at all: a temp file in `tempDir` (on the same file system), then a rename. */
export async function atomicWrite(tempDir: string, path: string, content: string): Promise<void> {
  const temp = join(tempDir, `write-${process.pid}-${randomBytes(8).toString('hex')}`);
  try {
    await writeFile(temp, content);
    await rename(temp, path);
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
  const temp = `${lockPath}.${process.pid}-${randomBytes(8).toString('hex')}`;
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
    await removeDeadLockTemps(lockPath);
  }
}

/** Lock temp files (LOCK.PID-random) of processes that died between writing and removing them. */
async function removeDeadLockTemps(lockPath: string): Promise<void> {
  const prefix = `${basename(lockPath)}.`;
  for (const name of await readdir(dirname(lockPath)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) await unlink(join(dirname(lockPath), name)).catch(() => undefined);
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
