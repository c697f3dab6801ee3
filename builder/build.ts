// Runs a Dockerfile's needed stages, instruction by instruction, into an image in the store.
import { rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { goQuote } from '../parser/dump.ts';
import {
  parseInstructions, planBuild, StageVariables, resolveStageRef, unusedBuildArgs,
  type BuildPlan, type Dockerfile, type Instruction, type Platform, type PlannedStage,
} from '../parser/index.ts';
import {
  applyLayers, normalizeReference, readImage, readImageFile, writeImage, writeLayer,
  type HistoryEntry, type Image, type ImageConfig, type Layer, type LayerEntry, type Store,
} from '../layers/index.ts';
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
}

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
  } finally {
    await run.cleanup();
  }
}

class BuildRun {
  private readonly request: BuildRequest;
  private readonly dockerfile: Dockerfile;
  private readonly plan: BuildPlan;
  private readonly store: Store;
  private readonly results = new Map<number, Image>();
  private readonly rootfsDirs = new Map<string, Promise<string>>();
  private readonly created: string;
  private context?: Promise<BuildContext>;
  private tempDirs: string[] = [];
  private step = 0;
  private readonly totalSteps: number;

  constructor(request: BuildRequest, dockerfile: Dockerfile, plan: BuildPlan) {
    this.request = request;
    this.dockerfile = dockerfile;
    this.plan = plan;
    this.store = request.store;
    this.created = new Date((request.timestamp ?? Date.now() / 1000) * 1000).toISOString();
    this.totalSteps = plan.order.reduce((sum, index) => sum + 1 + plan.stages[index]!.stage.instructions.length, 0);
  }

  async buildTarget(): Promise<Image> {
    for (const index of this.plan.order) this.results.set(index, await this.buildStage(this.plan.stages[index]!));
    return this.results.get(this.plan.target)!;
  }

  async cleanup(): Promise<void> {
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
    if (planned.base.kind === 'stage') return this.results.get(planned.base.index)!;
    return this.localImage(planned.base.ref, planned.platform);
  }

  private async localImage(ref: string, platform: Platform): Promise<Image> {
    const descriptor = await this.store.resolve(normalizeReference(ref));
    if (!descriptor) throw new BuildError(`image "${ref}" is not in the local store (${this.store.root}); pulling from a registry is not supported yet`);
    return readImage(this.store, descriptor, platform);
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
        throw new BuildError(`${this.dockerfile.file}:${raw.range.start.line}: RUN is not supported yet: hoist runs Dockerfiles without RUN for now`);
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

  private async addLayer(state: StageState, entries: LayerEntry[], createdBy: string): Promise<void> {
    const layer = await writeLayer(this.store, entries);
    state.layers.push(layer);
    state.tree.apply(entries.map((entry) => [entry.path, entry]));
    this.historyEntry(state, createdBy, false);
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
    const image = index !== undefined ? this.results.get(index) : await this.localImage(from, planned.platform);
    if (!image) throw new Error(`stage ${from} was not built before it was needed`);
    let dir = this.rootfsDirs.get(image.descriptor.digest);
    if (!dir) {
      dir = this.tempDir('rootfs').then(async (path) => {
        await applyLayers(this.store, image.layers, path, { warn: (message) => this.request.log(`warning: ${message}`) });
        return path;
      });
      this.rootfsDirs.set(image.descriptor.digest, dir);
    }
    return dir;
  }

  /** `--chown=user[:group]`, numeric or by name from the image's /etc/passwd and /etc/group. */
  private async resolveOwner(state: StageState, spec: string): Promise<{ uid: number; gid: number }> {
    const [user = '', group] = spec.split(':');
    const lookup = async (file: string, name: string): Promise<number> => {
      if (/^\d+$/.test(name)) return Number(name);
      const content = await readImageFile(this.store, state.layers, file);
      const line = content?.toString('utf8').split('\n').find((entry) => entry.split(':')[0] === name);
      const id = line?.split(':')[2];
      if (id === undefined || !/^\d+$/.test(id)) throw new BuildError(`--chown=${spec}: no ${file === '/etc/passwd' ? 'user' : 'group'} named "${name}" in the image's ${file}`);
      return Number(id);
    };
    const uid = await lookup('/etc/passwd', user);
    // Docker: a user without a group gets the same numeric id as its group.
    const gid = group === undefined || group === '' ? uid : await lookup('/etc/group', group);
    return { uid, gid };
  }
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
