// RUN --mount: what each mount adds to the step's cache key, and the directories and files the
// sandbox mounts for it. Nothing mounted ends up in the layer: mount points come from a lower
// layer of their own, and the mounted contents are never under the step's upper directory.
import { chown, chmod, cp, lstat, mkdir, mkdtemp, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { acquireLock, chainKey, type CacheStore, type Image } from '../layers/index.ts';
import type { Mount } from '../parser/index.ts';
import type { SandboxMount } from '../userns-native/index.ts';
import { sha256, type ContentHashes } from './cache.ts';
import { openAgentSocket, type SshSource } from './ssh.ts';

export class MountError extends Error {}

/** What mounts need from the build. */
export interface MountContext {
  cacheStore: CacheStore;
  secrets: ReadonlyMap<string, Buffer>;
  /** The agents --ssh gives, by id. */
  ssh: ReadonlyMap<string, SshSource>;
  warn(message: string): void;
  workdir: string;
  tempDir(prefix: string): Promise<string>;
  contextRoot(): Promise<string>;
  /** The image `from=` names: a stage of this build or an image. */
  image(from: string): Promise<Image>;
  imageRoot(image: Image): Promise<string>;
  hashes(): Promise<ContentHashes>;
  /** An absolute path in the image with its symlinks followed. */
  realPath(path: string): Promise<string>;
  /** Notes a cache mount's use (for --cache-to ...,mounts=true); a new one may be filled from --cache-from. */
  useCacheMount(name: string, dir: string, isNew: boolean): Promise<void>;
}

export interface PreparedMounts {
  mounts: SandboxMount[];
  /** Mount points to provide, by real path in the image. */
  points: { path: string; directory: boolean }[];
  /** Secrets given as environment variables. */
  env: string[];
  /** Releases cache-mount locks. */
  release(): Promise<void>;
}

/** Where a mount goes; an ssh mount without a target is the `sshIndex`th agent socket, as in BuildKit. */
function target(mount: Mount, workdir: string, sshIndex: number): string {
  if (mount.type === 'secret' && mount.target === undefined) return `/run/secrets/${mount.id}`;
  if (mount.type === 'ssh' && mount.target === undefined) return `/run/buildkit/ssh_agent.${sshIndex}`;
  return posix.resolve(workdir, mount.target!);
}

/** How many ssh mounts come before the `index`th. */
const sshBefore = (mounts: Mount[], index: number): number => mounts.slice(0, index).filter((mount) => mount.type === 'ssh').length;

function octal(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^[0-7]{1,4}$/.test(text)) throw new MountError(`--mount mode=${text}: expected an octal mode such as 0755`);
  return parseInt(text, 8);
}

function id(text: string | undefined, what: string): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text)) throw new MountError(`--mount ${what}=${text}: expected a number`);
  return Number(text);
}

/** `64m`, `1g`, `65536`: bytes, as BuildKit's tmpfs size reads them. */
function bytes(text: string): number {
  const match = /^(\d+)([kmg]?)i?b?$/i.exec(text.trim());
  if (!match) throw new MountError(`--mount size=${text}: expected a size such as 64m`);
  return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase());
}

/** A bind mount's source inside its root: `..` and symlinks cannot lead out of it. */
async function bindSource(root: string, source: string | undefined): Promise<string> {
  const path = await realpath(join(root, posix.normalize(`/${source ?? '.'}`))).catch(() => undefined);
  const realRoot = await realpath(root);
  if (path === undefined) throw new MountError(`--mount source ${source}: not found`);
  if (path !== realRoot && !path.startsWith(`${realRoot}/`)) throw new MountError(`--mount source ${source}: leads out of its root`);
  return path;
}

/** Content hashes of the files under a context directory, for the key of a bind mount of it. */
async function treeHashes(dir: string, label: string, hashes: ContentHashes, out: Record<string, string>): Promise<void> {
  const info = await lstat(dir);
  if (!info.isDirectory()) {
    out[label] = info.isFile() ? hashes.fileHash(dir)! : `${info.mode}`;
    return;
  }
  out[label] = `dir ${info.mode}`;
  for (const name of (await readdir(dir)).sort()) await treeHashes(join(dir, name), `${label}/${name}`, hashes, out);
}

/** The options each mount type honours besides type= and target=: any other given is refused by name. */
const MOUNT_OPTIONS: Record<Mount['type'], readonly (keyof Mount)[]> = {
  bind: ['source', 'from', 'readonly'],
  cache: ['id', 'sharing', 'readonly', 'mode', 'uid', 'gid', 'from', 'source'],
  tmpfs: ['size'],
  secret: ['id', 'required', 'mode', 'uid', 'gid', 'env'],
  ssh: ['id', 'required', 'mode', 'uid', 'gid'],
};

/** What a tmpfs (writable) and a secret (read-only) mount always are: readonly= saying so is accepted. */
const FIXED_READONLY: Partial<Record<Mount['type'], boolean>> = { tmpfs: false, secret: true };

/**
 * Refuses an option a mount of its type would not honour, naming it: an option is never ignored
 * (buildah's CVE-2024-9407 passed one it did not check on to mount). BuildKit refuses most of these
 * too; hoist mounts a cache whole, so its source= only picks the directory of from= it starts as.
 */
function checkOptions(mount: Mount): void {
  const honoured = MOUNT_OPTIONS[mount.type];
  for (const key of Object.keys(mount) as (keyof Mount)[]) {
    if (key === 'type' || key === 'target' || mount[key] === undefined || honoured.includes(key)) continue;
    if (key === 'readonly' && mount.readonly === FIXED_READONLY[mount.type]) continue;
    throw new MountError(`--mount=type=${mount.type}: hoist does not support ${key}= on a ${mount.type} mount (it takes ${honoured.map((name) => `${name}=`).join(', ')})`);
  }
  if (mount.type === 'cache' && mount.source !== undefined && mount.from === undefined) {
    throw new MountError('--mount=type=cache: source= names the directory of from= that a new cache starts as, and this mount has no from= (hoist mounts a cache mount whole)');
  }
}

/**
 * What the mounts add to a RUN's key: each mount as written (a secret's id, never its value), the
 * content of what a bind mount shows, and nothing of a cache mount's contents.
 */
export async function mountInputs(mounts: Mount[], context: MountContext): Promise<{ description: string; files: Record<string, string> }> {
  const files: Record<string, string> = {};
  const described = [];
  for (const [i, mount] of mounts.entries()) {
    checkOptions(mount);
    const { type, id, sharing, readonly, mode, uid, gid, required, size, env, source } = mount;
    const at = target(mount, context.workdir, sshBefore(mounts, i));
    if (type === 'bind') {
      const from = mount.from === undefined ? 'context' : chainKey((await context.image(mount.from)).layers.map((layer) => layer.diffId));
      if (mount.from === undefined) {
        await treeHashes(await bindSource(await context.contextRoot(), source), `mount ${at}`, await context.hashes(), files);
      }
      described.push({ type, target: at, source, from, readonly });
    } else if (type === 'cache' && mount.from !== undefined) {
      // What a new cache mount starts with: a directory of an image or stage.
      const from = chainKey((await context.image(mount.from)).layers.map((layer) => layer.diffId));
      described.push({ type, target: at, id, sharing, readonly, mode, uid, gid, from, source });
    } else described.push({ type, target: at, id, sharing, readonly, mode, uid, gid, required, size, env });
  }
  return { description: JSON.stringify(described), files };
}

/** Makes each mount's source ready (cache dirs, secret files, bind sources) and lists the sandbox mounts. */
export async function prepareMounts(mounts: Mount[], context: MountContext): Promise<PreparedMounts> {
  const prepared: PreparedMounts = { mounts: [], points: [], env: [], release: async () => undefined };
  const releases: (() => Promise<void>)[] = [];
  prepared.release = async () => {
    for (const release of releases) await release();
  };
  try {
    for (const [i, mount] of mounts.entries()) {
      const at = await context.realPath(target(mount, context.workdir, sshBefore(mounts, i)));
      switch (mount.type) {
        case 'cache': {
          const { dir, release } = await cacheDir(mount, at, context);
          if (release) releases.push(release);
          prepared.mounts.push({ type: 'bind', source: dir, target: at, readonly: mount.readonly === true });
          prepared.points.push({ path: at, directory: true });
          break;
        }
        case 'secret': {
          const value = context.secrets.get(mount.id ?? '');
          if (value === undefined) {
            if (mount.required) throw new MountError(`secret ${mount.id} is required: pass it with --secret id=${mount.id},src=FILE (or env=VAR)`);
            break;
          }
          if (mount.env !== undefined) prepared.env.push(`${mount.env}=${value.toString('utf8')}`);
          if (mount.env !== undefined && mount.target === undefined) break;
          const file = join(await context.tempDir('secret'), 'secret');
          await writeFile(file, value, { mode: octal(mount.mode, 0o400) });
          await chown(file, id(mount.uid, 'uid'), id(mount.gid, 'gid'));
          prepared.mounts.push({ type: 'bind', source: file, target: at, readonly: true });
          prepared.points.push({ path: at, directory: false });
          break;
        }
        case 'bind': {
          const root = mount.from === undefined ? await context.contextRoot() : await context.imageRoot(await context.image(mount.from));
          let source = await bindSource(root, mount.source);
          const writable = mount.readonly === false;
          // A writable bind mount's writes are thrown away, as BuildKit's are: it gets a copy.
          if (writable) {
            const copy = join(await context.tempDir('bind'), 'source');
            await cp(source, copy, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
            source = copy;
          }
          prepared.mounts.push({ type: 'bind', source, target: at, readonly: !writable });
          prepared.points.push({ path: at, directory: (await stat(source)).isDirectory() });
          break;
        }
        case 'tmpfs':
          prepared.mounts.push({ type: 'tmpfs', target: at, ...(mount.size ? { sizeBytes: bytes(mount.size) } : {}) });
          prepared.points.push({ path: at, directory: true });
          break;
        case 'ssh': {
          const sshId = mount.id ?? 'default';
          const source = context.ssh.get(sshId);
          if (!source) {
            if (mount.required) throw new MountError(`ssh ${sshId} is required: pass it with --ssh ${sshId} (the agent of SSH_AUTH_SOCK) or --ssh ${sshId}=KEYFILE`);
            context.warn(`RUN --mount=type=ssh,id=${sshId}: no --ssh ${sshId} given, so the step has no agent`);
            break;
          }
          // A short path of its own: a socket's path may be at most 107 bytes.
          const dir = await mkdtemp(join(tmpdir(), 'hoist-ssh-'));
          releases.push(() => rm(dir, { recursive: true, force: true }));
          releases.unshift(await openAgentSocket(source, join(dir, 'agent'), { uid: id(mount.uid, 'uid'), gid: id(mount.gid, 'gid'), mode: octal(mount.mode, 0o600) }));
          prepared.mounts.push({ type: 'bind', source: join(dir, 'agent'), target: at });
          prepared.points.push({ path: at, directory: false });
          if (!prepared.env.some((entry) => entry.startsWith('SSH_AUTH_SOCK='))) prepared.env.push(`SSH_AUTH_SOCK=${at}`);
          break;
        }
      }
    }
  } catch (error) {
    await prepared.release();
    throw error;
  }
  return prepared;
}

/**
 * A cache mount's persistent directory (by id, default the target). sharing=shared lets steps use
 * it together; locked makes them take turns; private gives a step that finds it in use a fresh
 * empty directory of its own.
 */
async function cacheDir(mount: Mount, at: string, context: MountContext): Promise<{ dir: string; release?: () => Promise<void> }> {
  const name = sha256(mount.id ?? target(mount, context.workdir, 0));
  const { data, lock } = await context.cacheStore.mount(name);
  // Two steps may find it missing at once (parallel stages): the one whose mkdir succeeds sets it up.
  const isNew = await mkdir(data, { mode: octal(mount.mode, 0o755) }).then(() => true, (error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') return false;
    throw error;
  });
  if (isNew) {
    // from= and source=: a new cache starts as a copy of that directory, as BuildKit's does.
    if (mount.from !== undefined) await cp(await bindSource(await context.imageRoot(await context.image(mount.from)), mount.source), data, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    await chmod(data, octal(mount.mode, 0o755));
    await chown(data, id(mount.uid, 'uid'), id(mount.gid, 'gid'));
  }
  await context.useCacheMount(name, data, isNew);
  const sharing = mount.sharing ?? 'shared';
  if (sharing === 'shared') return { dir: data };
  const release = await acquireLock(lock, { waitMs: sharing === 'locked' ? Infinity : 0, what: `cache mount ${at}` });
  if (release) return { dir: data, release };
  return { dir: await context.tempDir('cache-private') };
}
