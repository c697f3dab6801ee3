// RUN: a command in the user-namespace sandbox, on an overlay of the stage's layers (or a copy of
// them where overlay mounts are refused); what it changed becomes the layer.
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PlannedStage, RunInstruction } from '../parser/index.ts';
import { applyLayers, CacheStore, changedEntries, chainKey, snapshot, upperDirEntries, type Layer, type LayerEntry, type Snapshot } from '../layers/index.ts';
import { credentialFiles } from '../registry/index.ts';
import { helper, readXattrs, runStep, type SandboxMount, type StepResult } from '../userns-native/index.ts';
import { hashedValues, type BuildCache } from './cache.ts';
import { ContainerRoot } from './container-root.ts';
import { diskFullMessage, spaceAt } from './disk.ts';
import { BuildError } from './errors.ts';
import type { Images } from './images.ts';
import { mountInputs, prepareMounts, type MountContext, type PreparedMounts } from './mounts.ts';
import { CONTAINER_MARKERS, INSTALL_ROOT } from './isolation.ts';
import { once, type BuildSession } from './session.ts';
import { stageLabel, type CachedStep, type StageState } from './stage.ts';
import type { SshSource } from './ssh.ts';
import { resolveUser } from './users.ts';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const HOSTNAME = 'hoist';

/** How every RUN is set up unless its own flags say otherwise: buildx's --network, --add-host, --shm-size, --ulimit and --allow. */
export interface StepDefaults {
  network?: 'default' | 'host' | 'none';
  /**
   * The network.host entitlement (--allow network.host, or --network=host): a Dockerfile's
   * `RUN --network=host` needs it, as BuildKit's does.
   */
  hostNetworkAllowed?: boolean;
  /** Names and addresses added to the step's /etc/hosts, which no layer holds. */
  addHosts?: [name: string, address: string][];
  shmSize?: number;
  /** `NAME=SOFT:HARD`, as the helper's --rlimit takes them. */
  ulimits?: string[];
}

export interface RunOptions {
  defaults: StepDefaults;
  /** Secrets for RUN --mount=type=secret, by id: never in a layer, the history or a key. */
  secrets: ReadonlyMap<string, Buffer>;
  /** The agents for RUN --mount=type=ssh, by id (--ssh). */
  ssh: ReadonlyMap<string, SshSource>;
  /** With --isolation=container: files and directories the build reads or writes besides the store, kept out of the image's way. */
  keep: string[];
  /** Where the steps' output goes, each line after its stage's name. */
  output?: (chunk: Buffer) => void;
  /** Before the stage's name in each line: the platform, when a build makes several. */
  label?: string;
}

export class RunSteps {
  private readonly session: BuildSession;
  private readonly images: Images;
  private readonly cache: BuildCache;
  private readonly options: RunOptions;
  /** False where the kernel refused an overlay mount (or HOIST_NO_OVERLAY=1): RUN then copies. */
  private overlay: boolean;
  /** Layers written by this build: each is an overlay lower dir of its own (see lowerDirs). */
  private readonly madeHere = new Set<string>();
  /** RUN upper dirs by diffId, and other layers made here applied on their own, by chain. */
  private readonly upperDirs = new Map<string, string>();
  private readonly layerDirs = new Map<string, Promise<string>>();
  private sandbox?: Promise<string>;
  /** With --isolation=container: the container's root, where steps run. */
  private readonly containerRoot?: ContainerRoot;

  constructor(session: BuildSession, images: Images, cache: BuildCache, options: RunOptions) {
    this.session = session;
    this.images = images;
    this.cache = cache;
    this.options = options;
    this.overlay = session.host.overlay;
    if (session.host.isolation.mode === 'container') {
      const kept = [session.store.root, INSTALL_ROOT, ...CONTAINER_MARKERS, ...credentialFiles(), ...options.keep];
      for (const name of ['SSL_CERT_FILE', 'NODE_COMPILE_CACHE']) if (process.env[name]) kept.push(process.env[name]);
      this.containerRoot = new ContainerRoot(session.store, () => session.applyOptions(), kept);
    }
  }

  /**
   * Notes a layer this build wrote, and the directory that already holds it (a RUN's upper dir; in
   * the container's root, where the step's files were copied).
   */
  madeLayer(layer: Layer, dir?: string): void {
    this.madeHere.add(layer.diffId);
    if (dir && this.containerRoot) this.containerRoot.made(dir, layer.diffId);
    else if (dir) this.upperDirs.set(layer.diffId, dir);
  }

  /**
   * Refuses a RUN that asks for more than a step gets by default, unless the command line grants
   * it: privileges come from whoever runs the build, never from the Dockerfile (BuildKit's
   * entitlements, which it checks before any step runs).
   */
  checkPrivileges(instruction: RunInstruction): void {
    if (instruction.network === 'host' && !this.options.defaults.hostNetworkAllowed) {
      throw new BuildError('RUN --network=host needs the network.host entitlement: add --allow network.host to the command line (as buildx asks), or leave the flag out');
    }
    // Steps already have every privilege of their user namespace, and the host's are not hoist's to give.
    if (instruction.security === 'insecure') {
      throw new BuildError('RUN --security=insecure is not supported: hoist cannot give a step the host\'s privileges (its steps run in a user namespace), so --allow security.insecure cannot either');
    }
  }

  /** A RUN as a step of the stage: its cache inputs, and how to run it. */
  async step(planned: PlannedStage, state: StageState, instruction: RunInstruction): Promise<CachedStep> {
    helper();
    this.checkPrivileges(instruction);
    const { isolation } = this.session.host;
    if (isolation.mode === 'none') throw new BuildError(isolation.refusal!);
    const container = state.config.config;
    const { argv, script } = runCommand(instruction, container.Shell ?? ['/bin/sh', '-c']);
    const args = [...state.variables.declaredArgs()].map(([key, value]) => `${key}=${value}`);
    const mountContext = this.mountContext(planned, state, instruction);
    const mounts = instruction.mounts.length > 0 ? await mountInputs(instruction.mounts, mountContext) : undefined;
    const { addHosts = [], shmSize, ulimits = [] } = this.options.defaults;
    const step = {
      command: JSON.stringify(argv), ...(script ? { script: script.content } : {}),
      user: container.User || '0', workdir: container.WorkingDir || '/', network: this.network(instruction),
      ...(addHosts.length > 0 ? { addHosts: JSON.stringify(addHosts) } : {}), ...(shmSize ? { shmSize: String(shmSize) } : {}), ...(ulimits.length > 0 ? { ulimits: JSON.stringify(ulimits) } : {}),
      ...(instruction.security ? { security: instruction.security } : {}), ...(mounts ? { mounts: mounts.description } : {}), ...this.session.times.cacheInputs(),
    };
    return {
      label: 'RUN',
      createdBy: `RUN ${args.length ? `|${args.length} ${args.join(' ')} ` : ''}${argv.join(' ')} # buildkit`,
      inputs: {
        step, env: hashedValues(state.variables.imageEnv().map(splitVariable)), args: hashedValues(state.variables.declaredArgs()),
        ...(mounts && Object.keys(mounts.files).length > 0 ? { files: mounts.files } : {}),
      },
      make: async () => {
        if (this.containerRoot) return this.runInContainerRoot(this.containerRoot, planned, state, instruction, argv, script);
        const prepared = await prepareMounts(instruction.mounts, mountContext);
        try {
          return await this.runInSandbox(planned, state, instruction, argv, script, prepared);
        } finally {
          await prepared.release();
        }
      },
    };
  }

  /** The step's network: its own --network, else the build's. */
  private network(instruction: RunInstruction): 'default' | 'host' | 'none' {
    return (instruction.network as 'default' | 'host' | 'none' | undefined) ?? this.options.defaults.network ?? 'default';
  }

  /** What RUN --mount reads and makes: the context, images, the cache mounts and the secrets. */
  private mountContext(planned: PlannedStage, state: StageState, instruction: RunInstruction): MountContext {
    const { session } = this;
    return {
      cacheStore: new CacheStore(session.store), secrets: this.options.secrets, ssh: this.options.ssh, warn: (message) => session.warn(message),
      workdir: state.config.config.WorkingDir || '/',
      tempDir: (prefix) => session.tempDir(prefix),
      contextRoot: async () => (await session.context()).root,
      image: (from) => this.images.from(planned, instruction, from),
      imageRoot: (image) => this.images.root(image),
      hashes: async () => session.hashes((await session.context()).root),
      realPath: async (path) => (await state.tree(session.store)).realPath(path),
      useCacheMount: (name, dir, isNew) => this.cache.useMount(name, dir, isNew, (layer, into) => applyLayers(session.store, [layer], into, session.applyOptions())),
    };
  }

  /** Runs a RUN's command in its sandbox and returns the changes it made. */
  private async runInSandbox(
    planned: PlannedStage, state: StageState, instruction: RunInstruction, argv: string[],
    script: { path: string; content: string } | undefined, prepared: PreparedMounts,
  ): Promise<{ entries: LayerEntry[]; dir?: string }> {
    const { session } = this;
    const container = state.config.config;
    const user = await resolveUser(session.store, state.layers, container.User || '0');
    const sandbox = await this.sandboxDir();
    const step = await session.tempDir('run');
    const [upper, work, rootfs] = ['upper', 'work', 'rootfs'].map((name) => join(step, name)) as [string, string, string];
    await Promise.all([upper, work, rootfs].map((dir) => mkdir(dir)));
    const mounts: SandboxMount[] = ['hosts', 'resolv.conf', 'hostname'].map((name) => ({ type: 'bind', source: join(sandbox, name), target: `/etc/${name}` }));
    if (script) {
      await writeFile(join(step, 'script'), script.content, { mode: 0o755 });
      mounts.push({ type: 'bind', source: join(step, 'script'), target: script.path });
    }
    mounts.push(...prepared.mounts);
    // The --mount targets' mount points: a lower layer of their own, so they stay out of the layer.
    const points = join(step, 'points');
    makePoints(points, prepared.points);
    let tail = '';
    const lines = new LinePrefixer(`[${stageLabel(planned, this.options.label)}] `, (chunk) => this.options.output?.(chunk));
    const common = {
      rootfs, hostname: HOSTNAME, cwd: container.WorkingDir || '/', ...user, mounts,
      env: withDefaultPath([...state.variables.runEnv(), ...prepared.env]), network: this.network(instruction) === 'none' ? 'none' as const : 'host' as const, argv,
      shmSize: this.options.defaults.shmSize, ulimits: this.options.defaults.ulimits,
      signal: session.signal,
      output: (chunk: Buffer) => {
        lines.write(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-4000);
      },
    };
    const lower = [...(await this.lowerDirs(state)), points];
    // A full disk often shows in the step's output only as a tool's "I/O error": say so, and where.
    const failure = (message: string): BuildError => {
      const full = this.diskFull(this.overlay ? upper : rootfs, tail);
      return new BuildError(full ? `${full}; ${message}` : message);
    };
    const sandboxFailed = (error: unknown): never => {
      throw session.signal.aborted || !(error instanceof Error) ? error : failure(error.message);
    };
    let result = this.overlay ? await runStep({ ...common, root: { overlay: { lower, upper, work } } }).catch(sandboxFailed) : undefined;
    if (result?.noOverlay) {
      session.warn('overlay mounts are not available here: each RUN works on a copy of the image, which is slower');
      this.overlay = false;
    }
    let before: Snapshot | undefined;
    if (!this.overlay) {
      await applyLayers(session.store, state.layers, rootfs, session.applyOptions());
      makeMountPoints(rootfs);
      makePoints(rootfs, prepared.points);
      before = snapshot(rootfs);
      result = await runStep({ ...common, root: { copied: true } }).catch(sandboxFailed);
    }
    lines.end();
    if (result!.exitCode !== 0) {
      const hint = session.host.ids === 'single'
        ? '\n(only your own user and group ids are mapped, so chown to any other id fails: give your user a range in /etc/subuid and /etc/subgid)'
        : '';
      throw failure(`${stepFailure(result!, argv, tail)}${hint}`);
    }
    const diffOptions = { xattrs: await readXattrs(before ? rootfs : upper), warn: (message: string) => session.warn(message) };
    if (before) return { entries: changedEntries(rootfs, before, diffOptions) };
    // What the step only copied up is left out, as a snapshot leaves it out: the same rows in every mode.
    const tree = await state.tree(session.store);
    const below = {
      info: (path: string) => tree.get(path),
      file: (path: string) => lower.map((dir) => join(dir, path)).find((candidate) => lstatSync(candidate, { throwIfNoEntry: false })?.isFile()),
    };
    return { entries: upperDirEntries(upper, { ...diffOptions, below }), dir: upper };
  }

  /**
   * Runs a RUN's command in the container's own root (--isolation=container): `/` made to hold the
   * stage's layers, a snapshot, the command, and what changed since, its files copied aside so that
   * the layer is written from them while another step may use `/`. No mounts and no network of its
   * own can be made here: RUN --mount and --network=none are refused, by name.
   */
  private async runInContainerRoot(
    root: ContainerRoot, planned: PlannedStage, state: StageState, instruction: RunInstruction, argv: string[],
    script: { path: string; content: string } | undefined,
  ): Promise<{ entries: LayerEntry[]; dir: string }> {
    const { session } = this;
    const cannot = (what: string): BuildError => new BuildError(`${what} needs a mount, which --isolation=container cannot make (no CAP_SYS_ADMIN in this container): RUN steps with it build with --isolation=userns, where user namespaces are allowed`);
    if (instruction.mounts.length > 0) throw cannot(`RUN --mount=type=${instruction.mounts[0]!.type}`);
    if (this.network(instruction) === 'none') throw new BuildError('RUN --network=none needs a network namespace, which --isolation=container cannot make (no CAP_SYS_ADMIN in this container)');
    if (this.options.defaults.addHosts?.length) throw new BuildError('--add-host needs a file bound over /etc/hosts, which --isolation=container cannot make (no CAP_SYS_ADMIN in this container)');
    if (this.options.defaults.shmSize) throw new BuildError('--shm-size needs a /dev/shm of the step\'s own, which --isolation=container cannot mount (no CAP_SYS_ADMIN in this container)');
    const container = state.config.config;
    const user = await resolveUser(session.store, state.layers, container.User || '0');
    const step = await session.tempDir('run');
    if (script) {
      // A heredoc script runs from a file of its own: here from the store, not at /dev/pipes.
      await writeFile(join(step, 'script'), script.content, { mode: 0o755 });
      argv = [join(step, 'script'), ...argv.slice(1)];
    }
    let tail = '';
    const lines = new LinePrefixer(`[${stageLabel(planned, this.options.label)}] `, (chunk) => this.options.output?.(chunk));
    return root.use(state.layers, async () => {
      const before = snapshot('/', root.keep);
      const result = await runStep({
        root: { inPlace: true }, rootfs: '/', hostname: HOSTNAME, cwd: container.WorkingDir || '/', ...user, mounts: [],
        env: withDefaultPath(state.variables.runEnv()), network: 'host', ulimits: this.options.defaults.ulimits, argv, signal: session.signal,
        output: (chunk: Buffer) => {
          lines.write(chunk);
          tail = (tail + chunk.toString('utf8')).slice(-4000);
        },
      });
      lines.end();
      if (result.exitCode !== 0) throw new BuildError(stepFailure(result, argv, tail));
      const entries = changedEntries('/', before, { xattrs: new Map(), warn: (message) => session.warn(message), keep: root.keep });
      // Extended attributes of what changed only: a walk of `/` would read the store's too.
      const paths = entries.map((entry) => `/${entry.path}`).filter((path) => lstatSync(path, { throwIfNoEntry: false }));
      const xattrs = await readXattrs(paths);
      for (const entry of entries) if (xattrs.has(`/${entry.path}`)) entry.xattrs = xattrs.get(`/${entry.path}`);
      const copies = join(step, 'files');
      await mkdir(copies);
      entries.forEach((entry, index) => {
        if (entry.type !== 'file' || typeof entry.source !== 'string') return;
        const copy = join(copies, String(index));
        copyFileSync(entry.source, copy);
        entry.source = copy;
      });
      root.stepped(state.layers, entries.length > 0 ? copies : undefined);
      return { entries, dir: copies };
    });
  }

  /**
   * When the file system holding `dir` (the store's, where a step's writes go) is full or nearly so,
   * a sentence that says so: where, and the free bytes from statfs. Nearly: under 1 MiB free, or
   * under 64 MiB when the step's output speaks of no space or of an I/O error.
   */
  private diskFull(dir: string, output: string): string | undefined {
    const { free } = spaceAt(dir);
    const said = /no space left|ENOSPC|disk (is )?full|I\/O error/i.test(output);
    return free < 1 << 20 || (said && free < 64 << 20) ? diskFullMessage(dir, `the store ${this.session.store.root}`) : undefined;
  }

  /** Overlay lower dirs, topmost first: this build's layers one by one, the image below merged. */
  private async lowerDirs(state: StageState): Promise<string[]> {
    let base = state.layers.length;
    while (base > 0 && this.madeHere.has(state.layers[base - 1]!.diffId)) base--;
    const { store } = this.session;
    const image = state.layers.slice(0, base);
    let dirs = base > 0 ? [await store.rootfsChain(image.map((layer) => layer.diffId), (dir) => applyLayers(store, image, dir, this.session.applyOptions()))] : [];
    for (let top = base + 1; top <= state.layers.length; top++) dirs = [await this.layerDir(state.layers.slice(0, top), dirs), ...dirs];
    return [...dirs, join(await this.sandboxDir(), 'mountpoints')];
  }

  /**
   * The top one of `layers`, made by this build, as a directory: a RUN's upper dir as it is, or the
   * layer applied on its own (COPY and WORKDIR layers hold no whiteouts), the parents it implies
   * shown as the directories `below` have them.
   */
  private layerDir(layers: Layer[], below: string[]): Promise<string> {
    const upper = this.upperDirs.get(layers.at(-1)!.diffId);
    if (upper) return Promise.resolve(upper);
    return once(this.layerDirs, chainKey(layers.map((layer) => layer.diffId)), async () => {
      const path = await this.session.tempDir('layer');
      await applyLayers(this.session.store, layers.slice(-1), path, { ...this.session.applyOptions(), below });
      return path;
    });
  }

  /** Files every step binds in, and the bottom lower layer that gives them mount points. */
  private sandboxDir(): Promise<string> {
    this.sandbox ??= this.session.tempDir('sandbox').then(async (dir) => {
      const mountpoints = join(dir, 'mountpoints');
      for (const sub of ['etc', 'proc', 'dev', 'sys']) await mkdir(join(mountpoints, sub), { recursive: true, mode: 0o755 });
      for (const name of ['hosts', 'resolv.conf', 'hostname']) await writeFile(join(mountpoints, 'etc', name), '', { mode: 0o644 });
      const added = (this.options.defaults.addHosts ?? []).map(([name, address]) => `${address}\t${name}\n`).join('');
      await writeFile(join(dir, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${HOSTNAME}\n${added}`, { mode: 0o644 });
      await writeFile(join(dir, 'resolv.conf'), existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf') : '', { mode: 0o644 });
      await writeFile(join(dir, 'hostname'), `${HOSTNAME}\n`, { mode: 0o644 });
      return dir;
    });
    return this.sandbox;
  }
}

/** How a step's command ended, and its last lines of output. */
function stepFailure(result: StepResult, argv: string[], tail: string): string {
  const how = result.signal !== undefined ? `was killed by signal ${result.signal}` : `exited with code ${result.exitCode}`;
  const lastLines = tail.trimEnd().split('\n').slice(-10).map((text) => `  ${text}`).join('\n');
  return `RUN ${how}: ${argv.join(' ')}${lastLines ? `\nlast output:\n${lastLines}` : ''}`;
}

/** Writes output with a prefix at the start of every line, so that stages running together stay apart. */
class LinePrefixer {
  private readonly prefix: Buffer;
  private readonly sink: (chunk: Buffer) => void;
  private atLineStart = true;

  constructor(prefix: string, write: (chunk: Buffer) => void) {
    this.prefix = Buffer.from(prefix);
    this.sink = write;
  }

  write(chunk: Buffer): void {
    const parts: Buffer[] = [];
    let start = 0;
    while (start < chunk.length) {
      if (this.atLineStart) parts.push(this.prefix);
      const newline = chunk.indexOf(10, start);
      const end = newline < 0 ? chunk.length : newline + 1;
      parts.push(chunk.subarray(start, end));
      this.atLineStart = newline >= 0;
      start = end;
    }
    this.sink(Buffer.concat(parts));
  }

  /** Ends a last line that had no newline. */
  end(): void {
    if (!this.atLineStart) this.sink(Buffer.from('\n'));
    this.atLineStart = true;
  }
}

/**
 * The command line of a RUN: exec form as written; shell form, heredocs included, through the
 * shell. `RUN <<EOF` alone runs the body as the script, or as a file of its own when it starts
 * with `#!`, as BuildKit does (at /dev/pipes/NAME).
 */
function runCommand(run: RunInstruction, shell: string[]): { argv: string[]; script?: { path: string; content: string } } {
  if (run.command.form === 'exec') return { argv: run.command.argv };
  const line = run.command.script;
  if (run.heredocs.length === 0) return { argv: [...shell, line] };
  const [first] = run.heredocs;
  if (run.heredocs.length === 1 && /^\d*<<-?\S+$/.test(line.trim())) {
    if (!first!.content.startsWith('#!')) return { argv: [...shell, first!.content] };
    const path = `/dev/pipes/${first!.name.replace(/[^\w.-]/g, '_')}`;
    return { argv: [path], script: { path, content: first!.content } };
  }
  return { argv: [...shell, run.heredocs.reduce((full, heredoc) => `${full}\n${heredoc.content}${heredoc.name}`, line)] };
}

/**
 * The mount points a step needs, made in a copied root before its snapshot, so they never count
 * as changes. Nothing is made through a symlink: the step then fails to find its mount point.
 */
function makeMountPoints(rootfs: string): void {
  const realDirectory = (path: string): boolean => lstatSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
  for (const dir of ['proc', 'dev', 'sys', 'etc']) if (!lstatSync(join(rootfs, dir), { throwIfNoEntry: false })) mkdirSync(join(rootfs, dir), 0o755);
  if (!realDirectory(join(rootfs, 'etc'))) return;
  for (const name of ['hosts', 'resolv.conf', 'hostname']) {
    if (!lstatSync(join(rootfs, 'etc', name), { throwIfNoEntry: false })) writeFileSync(join(rootfs, 'etc', name), '', { mode: 0o644 });
  }
}

function splitVariable(entry: string): [string, string] {
  const equals = entry.indexOf('=');
  return equals < 0 ? [entry, ''] : [entry.slice(0, equals), entry.slice(equals + 1)];
}

/**
 * Makes mount points (directories, or empty files) under `root` where they are missing, with their
 * parent directories. Nothing is made through a symlink.
 */
function makePoints(root: string, points: { path: string; directory: boolean }[]): void {
  mkdirSync(root, { recursive: true });
  for (const point of points) {
    const parts = point.path.split('/').filter(Boolean);
    let at = root;
    for (const [i, part] of parts.entries()) {
      at = join(at, part);
      const existing = lstatSync(at, { throwIfNoEntry: false });
      if (existing) {
        if (!existing.isDirectory()) break;
        continue;
      }
      if (i < parts.length - 1 || point.directory) mkdirSync(at, 0o755);
      else writeFileSync(at, '', { mode: 0o644 });
    }
  }
}

function withDefaultPath(env: string[]): string[] {
  return env.some((entry) => entry.startsWith('PATH=')) ? env : [DEFAULT_PATH, ...env];
}

