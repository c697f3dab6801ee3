// Runs a Dockerfile's needed stages, instruction by instruction, into an image in the store.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, posix } from 'node:path';
import pLimit, { type LimitFunction } from 'p-limit';
import { goQuote } from '../parser/dump.ts';
import {
  parseInstructions, planBuild, StageVariables, resolveStageRef, unusedBuildArgs,
  type BuildPlan, type Dockerfile, type Instruction, type Platform, type PlannedStage, type RunInstruction,
} from '../parser/index.ts';
import {
  applyLayers, changedEntries, normalizeReference, parseReference, readImage, readImageFile, snapshot, upperDirEntries, writeImage, writeLayer,
  type HistoryEntry, type Snapshot, type Image, type ImageConfig, type Layer, type LayerEntry, type Store,
} from '../layers/index.ts';
import { pull, RegistryClient, type ClientOptions } from '../registry/index.ts';
import { readXattrs, runStep, writeXattrs } from '../userns-native/index.ts';
import { loadContext, type BuildContext } from './context.ts';
import { planCopy } from './copy.ts';
import { FileTree } from './tree.ts';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface BuildRequest {
  store: Store;
  contextDir: string;
  /** The Dockerfile's text and the name to show in messages. */
  dockerfile: { text: string; name: string; path?: string };
  buildArgs?: ReadonlyMap<string, string>;
  target?: string;
  labels?: Record<string, string>;
  platform?: Platform;
  /** Seconds since the epoch for `created` and history times (SOURCE_DATE_EPOCH); now by default. */
  timestamp?: number;
  log: (line: string) => void;
  /** Where RUN output goes, whole and as it comes, each line after its stage's name. */
  output?: (chunk: Buffer) => void;
  /** Stages built at the same time (default: the number of cores). */
  jobs?: number;
  /** Pull base images even when the store has them (`--pull`). */
  pull?: boolean;
  /** How registries are reached (plain-HTTP hosts, extra CAs). */
  registry?: ClientOptions;
}

const HOSTNAME = 'hoist';

export class BuildError extends Error {}

interface StageState {
  config: ImageConfig;
  layers: Layer[];
  history: HistoryEntry[];
  variables: StageVariables;
  tree: FileTree;
  cmdSet: boolean;
}

/** Builds the target stage and returns its image (written to the store, not tagged). */
export async function build(request: BuildRequest): Promise<Image> {
  const dockerfile = parseInstructions(request.dockerfile.text, request.dockerfile.name);
  const plan = planBuild(dockerfile, { buildArgs: request.buildArgs, target: request.target, platform: request.platform });
  const unused = unusedBuildArgs(plan);
  if (unused.length > 0) request.log(`warning: build-args not consumed by any ARG: ${unused.join(', ')}`);
  const run = new BuildRun(request, dockerfile, plan);
  try {
    return await run.buildTarget();
  } catch (error) {
    run.cancel();
    throw error;
  } finally {
    await run.cleanup();
  }
}

class BuildRun {
  private readonly request: BuildRequest;
  private readonly dockerfile: Dockerfile;
  private readonly plan: BuildPlan;
  private readonly store: Store;
  /** Each needed stage's image, built once its dependencies are, at most `jobs` at a time. */
  private readonly results = new Map<number, Promise<Image>>();
  private readonly limit: LimitFunction;
  private readonly cancelled = new AbortController();
  private readonly rootfsDirs = new Map<string, Promise<string>>();
  private readonly created: string;
  private context?: Promise<BuildContext>;
  private tempDirs: string[] = [];
  /** Layers written by this build, and the directory of each, for overlay lower dirs. */
  private readonly madeHere = new Set<string>();
  private readonly layerDirs = new Map<string, Promise<string>>();
  private sandbox?: Promise<string>;
  /** Set where the kernel refuses overlay mounts (or by HOIST_NO_OVERLAY=1): RUN then copies. */
  private noOverlay = process.env.HOIST_NO_OVERLAY === '1';
  private step = 0;
  private readonly totalSteps: number;

  constructor(request: BuildRequest, dockerfile: Dockerfile, plan: BuildPlan) {
    this.request = request;
    this.dockerfile = dockerfile;
    this.plan = plan;
    this.store = request.store;
    this.created = new Date((request.timestamp ?? Date.now() / 1000) * 1000).toISOString();
    this.limit = pLimit(request.jobs ?? availableParallelism());
    this.totalSteps = plan.order.reduce((sum, index) => sum + 1 + plan.stages[index]!.stage.instructions.length, 0);
  }

  async buildTarget(): Promise<Image> {
    return this.stageResult(this.plan.target);
  }

  private stageResult(index: number): Promise<Image> {
    let result = this.results.get(index);
    if (!result) {
      const planned = this.plan.stages[index]!;
      result = Promise.all(planned.dependencies.map((dependency) => this.stageResult(dependency)))
        .then(() => this.limit(() => this.buildStage(planned)));
      this.results.set(index, result);
    }
    return result;
  }

  /** After a failure: stages not started never start, and running steps are killed. */
  cancel(): void {
    this.cancelled.abort();
  }

  /** Waits for every stage to end, then removes the build's temp dirs. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.results.values());
    await Promise.all(this.tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }

  private stageLabel(planned: PlannedStage): string {
    return planned.stage.name ?? `stage-${planned.stage.index}`;
  }

  private progress(planned: PlannedStage, instruction: Instruction): void {
    this.step++;
    const text = instruction.original.replace(/\s+/g, ' ').trim();
    this.request.log(`[${this.stageLabel(planned)} ${this.step}/${this.totalSteps}] ${text.length > 200 ? `${text.slice(0, 197)}...` : text}`);
  }

  private async buildStage(planned: PlannedStage): Promise<Image> {
    this.cancelled.signal.throwIfAborted();
    this.progress(planned, planned.stage.from);
    const base = await this.baseImage(planned);
    const config: ImageConfig = structuredClone(base?.config) ?? {
      architecture: planned.platform.architecture, os: planned.platform.os,
      ...(planned.platform.variant ? { variant: planned.platform.variant } : {}),
      config: {}, rootfs: { type: 'layers', diff_ids: [] },
    };
    config.config.Env ??= [];
    if (!config.config.Env.some((entry) => entry.startsWith('PATH='))) config.config.Env.unshift(DEFAULT_PATH);
    const layers = [...(base?.layers ?? [])];
    const state: StageState = {
      config, layers, history: [...(base?.config.history ?? [])],
      variables: new StageVariables(this.plan, config.config.Env), tree: await FileTree.fromLayers(this.store, layers), cmdSet: false,
    };
    const triggers = config.config.OnBuild ?? [];
    config.config.OnBuild = null;
    for (const trigger of triggers) {
      const instruction = parseInstructions(`FROM scratch\n${trigger}`, `ONBUILD trigger of ${planned.stage.from.image}`).stages[0]!.instructions[0]!;
      await this.dispatch(planned, state, instruction);
    }
    for (const instruction of planned.stage.instructions) {
      this.cancelled.signal.throwIfAborted();
      this.progress(planned, instruction);
      await this.dispatch(planned, state, instruction);
    }
    config.created = this.created;
    config.history = state.history;
    if (this.request.labels && planned.stage.index === this.plan.target) {
      config.config.Labels = { ...config.config.Labels, ...this.request.labels };
    }
    return writeImage(this.store, config, state.layers);
  }

  private async baseImage(planned: PlannedStage): Promise<Image | undefined> {
    if (planned.base.kind === 'scratch') return undefined;
    if (planned.base.kind === 'stage') return this.stageResult(planned.base.index);
    return this.localImage(planned.base.ref, planned.platform);
  }

  /** An image from the store, pulled first when it is not there (or always, with --pull). */
  private async localImage(ref: string, platform: Platform): Promise<Image> {
    const name = normalizeReference(ref);
    const descriptor = this.request.pull ? undefined : await this.store.resolve(name);
    if (descriptor) return readImage(this.store, descriptor, platform);
    this.request.log(`pulling ${name}`);
    const parsed = parseReference(name);
    const image = await pull(this.store, parsed, platform, new RegistryClient(parsed.domain, this.request.registry));
    if (!parsed.digest) await this.store.tag(name, image.descriptor);
    return image;
  }

  private historyEntry(state: StageState, createdBy: string, emptyLayer: boolean): void {
    state.history.push({ created: this.created, created_by: createdBy, ...(emptyLayer ? { empty_layer: true } : { comment: 'buildkit.dockerfile.v0' }) });
  }

  private async dispatch(planned: PlannedStage, state: StageState, raw: Instruction): Promise<void> {
    const instruction = state.variables.expand(raw);
    const container = state.config.config;
    const metadata = (createdBy: string): void => this.historyEntry(state, createdBy, true);
    const argv = (list: string[]): string => `[${list.map(goQuote).join(' ')}]`;
    const command = (value: Extract<Instruction, { kind: 'CMD' }>['command']): string[] =>
      value.form === 'exec' ? value.argv : [...(container.Shell ?? ['/bin/sh', '-c']), value.script];

    switch (instruction.kind) {
      case 'ARG':
        return;
      case 'ENV':
        container.Env = state.variables.imageEnv();
        return metadata(`ENV ${instruction.pairs.map(({ key, value }) => `${key}=${value}`).join(' ')}`);
      case 'LABEL':
        container.Labels = { ...container.Labels, ...Object.fromEntries(instruction.pairs.map(({ key, value }) => [key, value])) };
        return metadata(`LABEL ${instruction.pairs.map(({ key, value }) => `${key}=${value}`).join(' ')}`);
      case 'MAINTAINER':
        state.config.author = instruction.name;
        return metadata(`MAINTAINER ${instruction.name}`);
      case 'EXPOSE': {
        const ports = instruction.ports.flatMap((port) => expandPortRange(port));
        container.ExposedPorts = { ...container.ExposedPorts, ...Object.fromEntries(ports.map((port) => [port, {}])) };
        return metadata(`EXPOSE map[${ports.map((port) => `${port}:{}`).join(' ')}]`);
      }
      case 'VOLUME':
        container.Volumes = { ...container.Volumes, ...Object.fromEntries(instruction.paths.map((path) => [path, {}])) };
        return metadata(`VOLUME [${instruction.paths.join(' ')}]`);
      case 'USER':
        container.User = instruction.user;
        return metadata(`USER ${instruction.user}`);
      case 'STOPSIGNAL':
        container.StopSignal = instruction.signal;
        return metadata(`STOPSIGNAL ${instruction.signal}`);
      case 'SHELL':
        container.Shell = instruction.argv;
        return metadata(`SHELL ${argv(instruction.argv)}`);
      case 'CMD':
        container.Cmd = command(instruction.command);
        state.cmdSet = true;
        return metadata(`CMD ${argv(container.Cmd)}`);
      case 'ENTRYPOINT':
        container.Entrypoint = command(instruction.command);
        // An ENTRYPOINT resets a CMD inherited from the base image, as Docker does.
        if (!state.cmdSet) container.Cmd = null;
        return metadata(`ENTRYPOINT ${argv(container.Entrypoint)}`);
      case 'HEALTHCHECK': {
        const { test, interval, timeout, startPeriod, startInterval, retries } = instruction;
        container.Healthcheck = {
          Test: test,
          ...(interval !== undefined ? { Interval: interval } : {}), ...(timeout !== undefined ? { Timeout: timeout } : {}),
          ...(startPeriod !== undefined ? { StartPeriod: startPeriod } : {}),
          ...(startInterval !== undefined ? { StartInterval: startInterval } : {}), ...(retries !== undefined ? { Retries: retries } : {}),
        };
        return metadata(`HEALTHCHECK ${argv(test)}`);
      }
      case 'ONBUILD':
        container.OnBuild = [...(container.OnBuild ?? []), instruction.expression];
        return metadata(`ONBUILD ${instruction.expression}`);
      case 'WORKDIR':
        return this.workdir(state, instruction.path);
      case 'COPY':
      case 'ADD':
        return this.copy(planned, state, instruction);
      case 'RUN':
        return this.run(planned, state, instruction, raw.range.start.line);
      case 'FROM':
        throw new Error('unreachable: FROM inside a stage');
    }
  }

  private async workdir(state: StageState, path: string): Promise<void> {
    const container = state.config.config;
    const target = posix.resolve(container.WorkingDir || '/', path);
    container.WorkingDir = target;
    const entries = this.missingDirectories(state, state.tree.realPath(target));
    if (entries.length === 0) return this.historyEntry(state, `WORKDIR ${target}`, true);
    await this.addLayer(state, entries, `WORKDIR ${target}`);
  }

  /** Directory entries for `target` and its missing parents, owned by root, as BuildKit makes them. */
  private missingDirectories(state: StageState, target: string): LayerEntry[] {
    const entries: LayerEntry[] = [];
    const parts = target.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const path = parts.slice(0, i).join('/');
      const existing = state.tree.get(path);
      if (existing?.type === 'directory') continue;
      entries.push({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: this.createdDirMtime() });
    }
    return entries;
  }

  /** Directories a build creates get the build's timestamp only when one is set: otherwise 0, for determinism. */
  private createdDirMtime(): number {
    return this.request.timestamp ?? 0;
  }

  private async addLayer(state: StageState, entries: LayerEntry[], createdBy: string): Promise<Layer> {
    const layer = await writeLayer(this.store, entries);
    state.layers.push(layer);
    this.madeHere.add(layer.diffId);
    state.tree.apply(entries.map((entry) => [entry.path, entry]));
    this.historyEntry(state, createdBy, false);
    return layer;
  }

  private async run(planned: PlannedStage, state: StageState, instruction: RunInstruction, line: number): Promise<void> {
    const where = `${this.dockerfile.file}:${line}`;
    if (process.getuid?.() !== 0) throw new BuildError(`${where}: RUN needs hoist's user namespace: start hoist as bin/hoist, which enters one`);
    if (instruction.mounts.length > 0) throw new BuildError(`${where}: RUN --mount is not supported yet`);
    const container = state.config.config;
    const { argv, script } = runCommand(instruction, container.Shell ?? ['/bin/sh', '-c']);
    const user = await this.resolveUser(state, container.User || '0');
    const sandbox = await this.sandboxDir();
    const step = await this.tempDir('run');
    const [upper, work, rootfs] = ['upper', 'work', 'rootfs'].map((name) => join(step, name)) as [string, string, string];
    await Promise.all([upper, work, rootfs].map((dir) => mkdir(dir)));
    const binds = ['hosts', 'resolv.conf', 'hostname'].map((name) => ({ source: join(sandbox, name), target: `/etc/${name}` }));
    if (script) {
      await writeFile(join(step, 'script'), script.content, { mode: 0o755 });
      binds.push({ source: join(step, 'script'), target: script.path });
    }
    let tail = '';
    const lines = new LinePrefixer(`[${this.stageLabel(planned)}] `, (chunk) => this.request.output?.(chunk));
    const common = {
      rootfs, hostname: HOSTNAME, cwd: container.WorkingDir || '/', ...user, binds,
      env: withDefaultPath(state.variables.runEnv()), network: instruction.network === 'none' ? 'none' as const : 'host' as const, argv,
      signal: this.cancelled.signal,
      output: (chunk: Buffer) => {
        lines.write(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-4000);
      },
    };
    const warn = (message: string): void => this.request.log(`warning: ${message}`);
    let result = this.noOverlay ? undefined : await runStep({ ...common, root: { overlay: { lower: await this.lowerDirs(state), upper, work } } });
    if (result?.noOverlay) {
      warn('overlay mounts are not available here: each RUN works on a copy of the image, which is slower');
      this.noOverlay = true;
    }
    let before: Snapshot | undefined;
    if (this.noOverlay) {
      await applyLayers(this.store, state.layers, rootfs, this.applyOptions());
      makeMountPoints(rootfs);
      before = snapshot(rootfs);
      result = await runStep({ ...common, root: { copied: true } });
    }
    lines.end();
    if (result!.exitCode !== 0) {
      const how = result!.signal !== undefined ? `was killed by signal ${result!.signal}` : `exited with code ${result!.exitCode}`;
      const lastLines = tail.trimEnd().split('\n').slice(-10).map((text) => `  ${text}`).join('\n');
      const hint = process.env.HOIST_SINGLE_ID === '1'
        ? '\n(only your own user and group ids are mapped, so chown to any other id fails: give your user a range in /etc/subuid and /etc/subgid)'
        : '';
      throw new BuildError(`${where}: RUN ${how}: ${argv.join(' ')}${lastLines ? `\nlast output:\n${lastLines}` : ''}${hint}`);
    }
    const changed = before ? rootfs : upper;
    const diffOptions = { xattrs: await readXattrs(changed), warn };
    const entries = before ? changedEntries(rootfs, before, diffOptions) : upperDirEntries(upper, diffOptions);
    const args = [...state.variables.declaredArgs()].map(([key, value]) => `${key}=${value}`);
    const createdBy = `RUN ${args.length ? `|${args.length} ${args.join(' ')} ` : ''}${argv.join(' ')} # buildkit`;
    // A RUN that changes nothing adds history but no layer, as Docker does.
    if (entries.length === 0) return this.historyEntry(state, createdBy, true);
    const layer = await this.addLayer(state, entries, createdBy);
    if (!before) this.layerDirs.set(layer.diffId, Promise.resolve(upper));
  }

  /** Overlay lower dirs, topmost first: this build's layers one by one, the image below merged. */
  private async lowerDirs(state: StageState): Promise<string[]> {
    let base = state.layers.length;
    while (base > 0 && this.madeHere.has(state.layers[base - 1]!.diffId)) base--;
    const own = await Promise.all(state.layers.slice(base).reverse().map((layer) => this.layerDir(layer)));
    const below = base > 0 ? [await this.chainDir(state.layers.slice(0, base))] : [];
    return [...own, ...below, join(await this.sandboxDir(), 'mountpoints')];
  }

  /** A layer made by this build as a directory (COPY and WORKDIR layers hold no whiteouts). */
  private layerDir(layer: Layer): Promise<string> {
    let dir = this.layerDirs.get(layer.diffId);
    if (!dir) {
      dir = this.tempDir('layer').then(async (path) => {
        await applyLayers(this.store, [layer], path, this.applyOptions());
        return path;
      });
      this.layerDirs.set(layer.diffId, dir);
    }
    return dir;
  }

  /** An image's layers applied into one directory, kept in the store for later builds. */
  private async chainDir(layers: Layer[]): Promise<string> {
    const key = createHash('sha256').update(layers.map((layer) => layer.diffId).join('\n')).digest('hex');
    const dir = join(this.store.root, 'rootfs', key);
    if (existsSync(dir)) return dir;
    const temp = await this.tempDir('rootfs');
    await applyLayers(this.store, layers, join(temp, 'root'), this.applyOptions());
    await mkdir(join(this.store.root, 'rootfs'), { recursive: true });
    // Another build may have finished the same directory first: then keep theirs.
    await rename(join(temp, 'root'), dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    });
    return dir;
  }

  private applyOptions() {
    return { warn: (message: string) => this.request.log(`warning: ${message}`), setXattrs: writeXattrs };
  }

  /** Files every step binds in, and the bottom lower layer that gives them mount points. */
  private sandboxDir(): Promise<string> {
    this.sandbox ??= this.tempDir('sandbox').then(async (dir) => {
      const mountpoints = join(dir, 'mountpoints');
      for (const sub of ['etc', 'proc', 'dev', 'sys']) await mkdir(join(mountpoints, sub), { recursive: true, mode: 0o755 });
      for (const name of ['hosts', 'resolv.conf', 'hostname']) await writeFile(join(mountpoints, 'etc', name), '', { mode: 0o644 });
      await writeFile(join(dir, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${HOSTNAME}\n`, { mode: 0o644 });
      await writeFile(join(dir, 'resolv.conf'), existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf') : '', { mode: 0o644 });
      await writeFile(join(dir, 'hostname'), `${HOSTNAME}\n`, { mode: 0o644 });
      return dir;
    });
    return this.sandbox;
  }

  /** USER as Docker applies it: name or id, group by name or id, supplementary groups from /etc/group. */
  private async resolveUser(state: StageState, spec: string): Promise<{ uid: number; gid: number; groups: number[] }> {
    const [user = '', group] = spec.split(':');
    const table = (file: string): Promise<string[][]> => this.idTable(state, file);
    const passwd = await table('/etc/passwd');
    const entry = passwd.find((fields) => fields[0] === user || (/^\d+$/.test(user) && fields[2] === user));
    if (!entry && !/^\d+$/.test(user)) throw new BuildError(`unable to find user ${user}: no matching entries in passwd file`);
    const uid = entry ? Number(entry[2]) : Number(user);
    const groups = await table('/etc/group');
    let gid = entry ? Number(entry[3]) : 0;
    if (group !== undefined && group !== '') {
      const found = groups.find((fields) => fields[0] === group || (/^\d+$/.test(group) && fields[2] === group));
      if (!found && !/^\d+$/.test(group)) throw new BuildError(`unable to find group ${group}: no matching entries in group file`);
      gid = found ? Number(found[2]) : Number(group);
    }
    const supplementary = entry ? groups.filter((fields) => (fields[3] ?? '').split(',').includes(entry[0]!)).map((fields) => Number(fields[2])) : [];
    return { uid, gid, groups: [...new Set([gid, ...supplementary])] };
  }

  private async copy(planned: PlannedStage, state: StageState, instruction: Extract<Instruction, { kind: 'COPY' | 'ADD' }>): Promise<void> {
    const workdir = state.config.config.WorkingDir || '/';
    const from = instruction.kind === 'COPY' ? instruction.from : undefined;
    const sourceRoot = from === undefined ? undefined : await this.fromRoot(planned, instruction, from);
    const context = sourceRoot === undefined ? await this.loadContext() : undefined;
    // The destination with symlinks in the image followed: COPY x /lib/ lands in /usr/lib/ where
    // /lib links to usr/lib, instead of replacing the link with a directory.
    const absoluteDest = posix.resolve(workdir, instruction.dest) + (instruction.dest.endsWith('/') ? '/' : '');
    const common = {
      dest: state.tree.realPath(absoluteDest), workdir, chmod: instruction.chmod, parents: instruction.parents, exclude: instruction.exclude,
      chown: instruction.chown === undefined ? undefined : await this.resolveOwner(state, instruction.chown),
      destIsDirectory: (path: string) => state.tree.isDirectory(path), createdDirMtime: this.createdDirMtime(),
      command: instruction.kind, tmpDir: await this.tempDir('copy'),
      ...(instruction.kind === 'ADD' ? { unpack: instruction.unpack, checksum: instruction.checksum } : {}),
    };
    const entries: LayerEntry[] = [];
    if (instruction.sources.length > 0) {
      entries.push(...(await planCopy({
        ...common, root: sourceRoot ?? context!.root, sources: instruction.sources,
        ...(context ? { isIgnored: context.isIgnored, mayUnignoreUnder: context.mayUnignoreUnder } : {}),
        // A stage's owners are kept, as BuildKit does; extracted without root they are not known yet.
        keepOwners: sourceRoot !== undefined && process.getuid?.() === 0,
      })));
    }
    for (const inline of instruction.inlineSources) {
      const dir = await this.tempDir('heredoc');
      await writeFile(join(dir, inline.name), inline.content, { mode: 0o644 });
      entries.push(...(await planCopy({ ...common, root: dir, sources: [inline.name] })));
    }
    const sources = [...instruction.sources, ...instruction.inlineSources.map((source) => `<<${source.name}`)];
    await this.addLayer(state, dedupe(entries), `${instruction.kind}${from ? ` --from=${from}` : ''} ${sources.join(' ')} ${instruction.dest} # buildkit`);
  }

  private loadContext(): Promise<BuildContext> {
    const dockerfilePath = this.request.dockerfile.path ?? join(this.request.contextDir, 'Dockerfile');
    return (this.context ??= loadContext(this.request.contextDir, dockerfilePath));
  }

  private async tempDir(prefix: string): Promise<string> {
    const dir = await this.store.tempDir(prefix);
    this.tempDirs.push(dir);
    return dir;
  }

  /** The root filesystem that `--from` names: a stage of this build, or an image in the store. */
  private async fromRoot(planned: PlannedStage, instruction: Instruction, from: string): Promise<string> {
    const index = resolveStageRef(this.dockerfile, from, planned.stage.index, instruction);
    const image = index !== undefined ? await this.stageResult(index) : await this.localImage(from, planned.platform);
    let dir = this.rootfsDirs.get(image.descriptor.digest);
    if (!dir) {
      dir = this.tempDir('rootfs').then(async (path) => {
        await applyLayers(this.store, image.layers, path, this.applyOptions());
        return path;
      });
      this.rootfsDirs.set(image.descriptor.digest, dir);
    }
    return dir;
  }

  /** The rows of the image's /etc/passwd or /etc/group, split on ':' (none when the file is missing). */
  private async idTable(state: StageState, file: string): Promise<string[][]> {
    const content = await readImageFile(this.store, state.layers, file);
    return (content?.toString('utf8') ?? '').split('\n').filter(Boolean).map((entry) => entry.split(':'));
  }

  /** `--chown=user[:group]`, numeric or by name from the image's /etc/passwd and /etc/group. */
  private async resolveOwner(state: StageState, spec: string): Promise<{ uid: number; gid: number }> {
    const [user = '', group] = spec.split(':');
    const lookup = async (file: string, name: string): Promise<number> => {
      if (/^\d+$/.test(name)) return Number(name);
      const id = (await this.idTable(state, file)).find((fields) => fields[0] === name)?.[2];
      if (id === undefined || !/^\d+$/.test(id)) throw new BuildError(`--chown=${spec}: no ${file === '/etc/passwd' ? 'user' : 'group'} named "${name}" in the image's ${file}`);
      return Number(id);
    };
    const uid = await lookup('/etc/passwd', user);
    // Docker: a user without a group gets the same numeric id as its group.
    const gid = group === undefined || group === '' ? uid : await lookup('/etc/group', group);
    return { uid, gid };
  }
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

function withDefaultPath(env: string[]): string[] {
  return env.some((entry) => entry.startsWith('PATH=')) ? env : [DEFAULT_PATH, ...env];
}

/** When two sources give the same path, the later one wins, as files copied in order would. */
function dedupe(entries: LayerEntry[]): LayerEntry[] {
  return [...new Map(entries.map((entry) => [entry.path, entry])).values()];
}

/** `8000-8002/udp` gives three ports; a port without a protocol is TCP. */
function expandPortRange(spec: string): string[] {
  const [range = '', protocol = 'tcp'] = spec.split('/');
  const [start, end] = range.split('-').map(Number);
  if (!Number.isInteger(start) || (end !== undefined && !Number.isInteger(end))) throw new BuildError(`invalid port "${spec}" in EXPOSE`);
  const ports: string[] = [];
  for (let port = start!; port <= (end ?? start!); port++) ports.push(`${port}/${protocol.toLowerCase()}`);
  return ports;
}
