// Runs a Dockerfile's needed stages, instruction by instruction, into an image in the store.
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import pLimit, { type LimitFunction } from 'p-limit';
import {
  dependencyOrder, DockerfileError, goQuote, parseInstructions, planBuild, StageVariables, resolveStageRef, unusedBuildArgs,
  type BuildPlan, type Dockerfile, type Instruction, type Platform, type PlannedStage, type RunInstruction,
} from '../parser/index.ts';
import {
  applyLayers, CacheStore, chainKey, changedEntries, importOciLayout, normalizeReference, parseReference, readImage, readImageFile, snapshot, upperDirEntries, writeImage, writeLayer,
  type HistoryEntry, type Snapshot, type Image, type ImageConfig, type Layer, type LayerEntry, type StepInputs, type Store,
} from '../layers/index.ts';
import { pull, RegistryClient, type ClientOptions } from '../registry/index.ts';
import { helper, readXattrs, runStep, writeXattrs, type SandboxMount } from '../userns-native/index.ts';
import { BuildCache, cacheKey, ContentHashes, hashedValues, sha256 } from './cache.ts';
import { loadContext, type BuildContext } from './context.ts';
import { absoluteDestination, PATH_MAX, planCopy, withParentsBelow } from './copy.ts';
import { diskFullMessage, spaceAt } from './disk.ts';
import { mountInputs, prepareMounts, type MountContext, type PreparedMounts } from './mounts.ts';
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
  /** The build cache (with any --cache-from sources); its `used` records are what --cache-to exports. */
  cache?: BuildCache;
  /** Use no cached step (`--no-cache`), or none in these stages (`--no-cache-filter`, names or indexes). */
  noCache?: boolean;
  noCacheStages?: string[];
  /** Secrets for RUN --mount=type=secret, by id (`--secret`): never in a layer, the history or a key. */
  secrets?: ReadonlyMap<string, Buffer>;
  /** `--build-context NAME=VALUE`: what FROM NAME and COPY --from=NAME mean instead of an image of that name. */
  buildContexts?: ReadonlyMap<string, NamedContext>;
}

/**
 * A named build context: an image in an OCI layout (directory or tarball; `select` is a tag or a
 * digest), another image reference, or a local directory.
 */
export type NamedContext =
  | { kind: 'layout'; path: string; select?: string }
  | { kind: 'image'; ref: string }
  | { kind: 'dir'; path: string };

/** `oci-layout://PATH[:TAG|@DIGEST]`, `docker-image://REF`, or a directory path, as buildx takes them. */
export function parseNamedContext(value: string, cwd: string): NamedContext {
  const layout = /^oci-layout:\/\/(.+?)(?:@(sha256:[a-f0-9]{64})|:([\w][\w.-]{0,127}))?$/.exec(value);
  if (layout) return { kind: 'layout', path: resolve(cwd, layout[1]!), ...(layout[2] ?? layout[3] ? { select: layout[2] ?? layout[3] } : {}) };
  if (value.startsWith('docker-image://')) return { kind: 'image', ref: value.slice('docker-image://'.length) };
  if (/^[a-z][\w+.-]*:\/\//.test(value)) throw new BuildError(`build context ${value}: only oci-layout://, docker-image:// and directories are supported`);
  return { kind: 'dir', path: resolve(cwd, value) };
}

const HOSTNAME = 'hoist';

/** A failed build, at an instruction when `location` is given (the message then starts `Dockerfile:12: `). */
export class BuildError extends Error {
  readonly location?: { file: string; line: number };

  constructor(message: string, location?: { file: string; line: number }) {
    super(location ? `${location.file}:${location.line}: ${message}` : message);
    this.location = location;
  }
}

interface StageState {
  config: ImageConfig;
  layers: Layer[];
  history: HistoryEntry[];
  /** Where this stage's own history entries start (the base image's come first). */
  historyStart: number;
  variables: StageVariables;
  /** The file tree of the first `treeLayers` layers: brought up to date when a step needs it. */
  tree: FileTree;
  treeLayers: number;
  cmdSet: boolean;
}

/** A step whose result can come from the cache: its inputs, and how to make its layer entries. */
interface CachedStep {
  /** The instruction, as miss explanations start (`COPY app/`). */
  label: string;
  /**
   * The inputs; or, when they need the content hashes of files the layer reads anyway, a function
   * called once the layer is written (the step is then run first, and a hit found after replaces it).
   */
  inputs: Omit<StepInputs, 'parent'> | ((contentHashes: ReadonlyMap<string, string>) => Omit<StepInputs, 'parent'>);
  createdBy: string;
  /** Runs the step: the entries of its layer (none: no layer), and a directory already holding them. */
  execute: () => Promise<{ entries: LayerEntry[]; dir?: string }>;
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
  private readonly cache: BuildCache;
  private context?: Promise<BuildContext>;
  private readonly contentHashes = new Map<string, Promise<ContentHashes>>();
  private readonly layoutImages = new Map<string, Promise<Image>>();
  private tempDirs: string[] = [];
  /** Layers written by this build: each is an overlay lower dir of its own (see lowerDirs). */
  private readonly madeHere = new Set<string>();
  /** RUN upper dirs by diffId, and other layers made here applied on their own, by chain. */
  private readonly upperDirs = new Map<string, string>();
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
    this.cache = request.cache ?? new BuildCache(request.store);
    this.limit = pLimit(request.jobs ?? availableParallelism());
    this.totalSteps = plan.order.reduce((sum, index) => sum + 1 + plan.stages[index]!.stage.instructions.length, 0);
  }

  async buildTarget(): Promise<Image> {
    return this.stageResult(this.plan.target);
  }

  /** A stage's image; it and the stages it needs are scheduled in dependency order, without recursion. */
  private stageResult(index: number): Promise<Image> {
    const result = this.results.get(index);
    if (result) return result;
    for (const needed of dependencyOrder(this.dockerfile, this.plan.stages, index)) {
      if (this.results.has(needed)) continue;
      const planned = this.plan.stages[needed]!;
      this.results.set(needed, Promise.all(planned.dependencies.map((dependency) => this.results.get(dependency)))
        .then(() => this.limit(() => this.buildStage(planned))));
    }
    return this.results.get(index)!;
  }

  /** After a failure: stages not started never start, and running steps are killed. */
  cancel(): void {
    this.cancelled.abort();
  }

  /** Waits for every stage to end, then removes the build's temp dirs. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.results.values());
    // Hints only: failing to keep them (a full disk) must neither hide the build's own error nor keep its temp dirs.
    for (const hashes of this.contentHashes.values()) await (await hashes).save().catch(() => undefined);
    await Promise.all(this.tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  }

  private stageLabel(planned: PlannedStage): string {
    return planned.stage.name ?? `stage-${planned.stage.index}`;
  }

  /** Rethrows an instruction's failure as a BuildError that names its line. */
  private locate(instruction: Instruction): (error: unknown) => never {
    return (error) => {
      const located = error instanceof DockerfileError || (error instanceof BuildError && error.location) || this.cancelled.signal.aborted;
      if (located || !(error instanceof Error)) throw error;
      throw new BuildError(error.message, { file: this.dockerfile.file, line: instruction.range.start.line });
    };
  }

  /** Logs the instruction about to run; returns the prefix for the lines about its result. */
  private progress(planned: PlannedStage, instruction: Instruction): string {
    this.step++;
    const prefix = `[${this.stageLabel(planned)} ${this.step}/${this.totalSteps}]`;
    this.request.log(`${prefix} ${abbreviate(instruction.original.replace(/\s+/g, ' ').trim())}`);
    return prefix;
  }

  private cacheEnabled(planned: PlannedStage): boolean {
    const filter = this.request.noCacheStages ?? [];
    const name = planned.stage.name?.toLowerCase();
    const index = planned.stage.index;
    return !this.request.noCache && !filter.some((stage) => [name, String(index), `stage-${index}`].includes(stage.toLowerCase()));
  }

  /** Seconds since the epoch for times a build writes: SOURCE_DATE_EPOCH when set, else now. */
  private now(): string {
    return new Date(this.request.timestamp !== undefined ? this.request.timestamp * 1000 : Date.now()).toISOString();
  }

  private async buildStage(planned: PlannedStage): Promise<Image> {
    this.cancelled.signal.throwIfAborted();
    this.progress(planned, planned.stage.from);
    const base = await this.baseImage(planned).catch(this.locate(planned.stage.from));
    const config: ImageConfig = structuredClone(base?.config) ?? {
      architecture: planned.platform.architecture, os: planned.platform.os,
      ...(planned.platform.variant ? { variant: planned.platform.variant } : {}),
      config: {}, rootfs: { type: 'layers', diff_ids: [] },
    };
    config.config.Env ??= [];
    if (!config.config.Env.some((entry) => entry.startsWith('PATH='))) config.config.Env.unshift(DEFAULT_PATH);
    const history = [...(base?.config.history ?? [])];
    const state: StageState = {
      config, layers: [...(base?.layers ?? [])], history, historyStart: history.length,
      variables: new StageVariables(this.plan, config.config.Env), tree: new FileTree(), treeLayers: 0, cmdSet: false,
    };
    const triggers = config.config.OnBuild ?? [];
    config.config.OnBuild = null;
    for (const [i, trigger] of triggers.entries()) {
      await this.runTrigger(planned, state, trigger, `onbuild-${i}`).catch(this.locate(planned.stage.from));
    }
    for (const [i, instruction] of planned.stage.instructions.entries()) {
      this.cancelled.signal.throwIfAborted();
      const prefix = this.progress(planned, instruction);
      await this.dispatch(planned, state, instruction, String(i), prefix).catch(this.locate(instruction));
    }
    this.fillCreated(state);
    config.created = state.history.at(-1)?.created ?? this.now();
    config.history = state.history;
    if (this.request.labels && planned.stage.index === this.plan.target) {
      config.config.Labels = { ...config.config.Labels, ...this.request.labels };
    }
    return writeImage(this.store, config, state.layers);
  }

  /**
   * Runs an ONBUILD trigger of the base image. It is no line of this Dockerfile: its mistakes are
   * reported at the FROM line, quoting it.
   */
  private async runTrigger(planned: PlannedStage, state: StageState, trigger: string, locator: string): Promise<void> {
    try {
      await this.dispatch(planned, state, triggerInstruction(trigger), locator, `[${this.stageLabel(planned)} ONBUILD]`);
    } catch (error) {
      throw error instanceof DockerfileError ? new Error(`ONBUILD ${abbreviate(trigger)}: ${error.message}`) : error;
    }
  }

  private async baseImage(planned: PlannedStage): Promise<Image | undefined> {
    if (planned.base.kind === 'scratch') return undefined;
    if (planned.base.kind === 'stage') return this.stageResult(planned.base.index);
    return this.localImage(planned.base.ref, planned.platform);
  }

  /** An image from the store, pulled first when it is not there (or always, with --pull). */
  private async localImage(ref: string, platform: Platform): Promise<Image> {
    const named = this.request.buildContexts?.get(ref) ?? (ref.startsWith('oci-layout://') ? parseNamedContext(ref, process.cwd()) : undefined);
    if (named?.kind === 'dir') throw new BuildError(`${ref} is a directory build context: only COPY --from can read it`);
    if (named?.kind === 'layout') return this.layoutImage(named.path, named.select, platform);
    const name = normalizeReference(named?.kind === 'image' ? named.ref : ref);
    const descriptor = this.request.pull ? undefined : await this.store.resolve(name);
    if (descriptor) return readImage(this.store, descriptor, platform);
    this.request.log(`pulling ${name}`);
    const parsed = parseReference(name);
    const image = await pull(this.store, parsed, platform, new RegistryClient(parsed.domain, this.request.registry));
    if (!parsed.digest) await this.store.tag(name, image.descriptor);
    return image;
  }

  /** A history entry; `created` is left for fillCreated when the step made no layer of its own. */
  private historyEntry(state: StageState, createdBy: string, emptyLayer: boolean, created?: string): void {
    state.history.push({ ...(created ? { created } : {}), created_by: createdBy, ...(emptyLayer ? { empty_layer: true } : { comment: 'buildkit.dockerfile.v0' }) });
  }

  /**
   * Times for the stage's history entries that have none, as BuildKit gives them: the time of the
   * step before that made a layer, else of the first one after, else the base image's last. A
   * rebuild from the cache therefore gives the same config, and the same image digest.
   */
  private fillCreated(state: StageState): void {
    const own = state.history.slice(state.historyStart);
    const firstTimed = own.find((entry) => entry.created)?.created;
    let previous = state.history[state.historyStart - 1]?.created;
    let seenTimed = false;
    for (const entry of own) {
      if (this.request.timestamp !== undefined) entry.created = this.now();
      else if (entry.created) [previous, seenTimed] = [entry.created, true];
      else entry.created = (seenTimed ? previous : firstTimed ?? previous) ?? this.now();
    }
  }

  /** The key of the file system a step starts from: its layers' content, and the platform. */
  private parentKey(state: StageState): string {
    const { os, architecture, variant } = state.config;
    return sha256([`${os}/${architecture}${variant ? `/${variant}` : ''}`, ...state.layers.map((layer) => layer.diffId)].join('\n'));
  }

  /** Takes a step's result from the cache, or runs it and caches what it made; says which, and why. */
  private async cachedStep(planned: PlannedStage, state: StageState, locator: string, prefix: string, step: CachedStep): Promise<void> {
    const parent = this.parentKey(state);
    // The place in the Dockerfile, for explanations: the same file path on a CI runner each time.
    const dockerfile = this.request.dockerfile.path ?? join(this.request.contextDir, this.dockerfile.file);
    const place = sha256(`${dockerfile}\0${planned.stage.name ?? planned.stage.index}\0${locator}`);
    const final = planned.stage.index === this.plan.target;
    const useCache = this.cacheEnabled(planned);
    /** Takes the step's result from the cache when it has one for these inputs, or says why not. */
    const lookUp = async (inputs: StepInputs): Promise<{ inputs: StepInputs; key: string; hit: boolean }> => {
      const key = cacheKey(inputs);
      const hit = useCache ? await this.cache.lookup(key) : undefined;
      if (!hit) {
        this.request.log(`${prefix} ${step.label}: ${useCache ? await this.cache.explain(place, inputs) : 'cache disabled'}`);
        return { inputs, key, hit: false };
      }
      this.request.log(`${prefix} CACHED`);
      if (hit.layer) state.layers.push(hit.layer);
      this.historyEntry(state, step.createdBy, !hit.layer, hit.created);
      await this.cache.remember(place, key, hit, final);
      return { inputs, key, hit: true };
    };
    let missed = typeof step.inputs === 'function' ? undefined : await lookUp({ parent, ...step.inputs });
    if (missed?.hit) return;
    const started = performance.now();
    const { entries, dir } = await step.execute();
    const created = this.now();
    const contentHashes = new Map<string, string>();
    const made = entries.length > 0 ? await this.writeLayer(entries, contentHashes) : undefined;
    if (!missed) {
      missed = await lookUp({ parent, ...(step.inputs as (hashes: ReadonlyMap<string, string>) => Omit<StepInputs, 'parent'>)(contentHashes) });
      if (missed.hit) return;
    }
    if (made) {
      this.pushLayer(state, made.layer, made.entries);
      if (dir) this.upperDirs.set(made.layer.diffId, dir);
    }
    this.historyEntry(state, step.createdBy, !made, created);
    const { inputs, key } = missed;
    const record = { layer: made?.layer ?? null, created, inputs };
    await this.cache.save(key, record);
    await this.cache.remember(place, key, record, final);
    this.request.log(`${prefix} DONE ${((performance.now() - started) / 1000).toFixed(2)}s`);
  }

  /** The stage's file tree with every layer so far applied. */
  private async tree(state: StageState): Promise<FileTree> {
    for (; state.treeLayers < state.layers.length; state.treeLayers++) await state.tree.applyLayer(this.store, state.layers[state.treeLayers]!);
    return state.tree;
  }

  /** Settings a layer's content depends on besides the instruction. */
  private layerSettings(): Record<string, string> {
    return this.request.timestamp !== undefined ? { timestamp: String(this.request.timestamp) } : {};
  }

  private async dispatch(planned: PlannedStage, state: StageState, raw: Instruction, locator: string, prefix: string): Promise<void> {
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
        return this.workdir(planned, state, instruction.path, locator, prefix);
      case 'COPY':
      case 'ADD':
        return this.copy(planned, state, instruction, locator, prefix);
      case 'RUN':
        return this.run(planned, state, instruction, locator, prefix);
      case 'FROM':
        throw new Error('unreachable: FROM inside a stage');
    }
  }

  private async workdir(planned: PlannedStage, state: StageState, path: string, locator: string, prefix: string): Promise<void> {
    const container = state.config.config;
    const target = imagePath(posix.resolve(container.WorkingDir || '/', path));
    container.WorkingDir = target;
    await this.cachedStep(planned, state, locator, prefix, {
      label: 'WORKDIR', createdBy: `WORKDIR ${target}`,
      inputs: { step: { command: `WORKDIR ${target}`, ...(container.User ? { user: container.User } : {}), ...this.layerSettings() }, env: {}, args: {} },
      execute: async () => {
        const tree = await this.tree(state);
        // As BuildKit: the directories are made as the current USER.
        const owner = container.User ? await this.resolveUser(state, container.User) : { uid: 0, gid: 0 };
        const made = this.missingDirectories(tree, tree.realPath(target), owner);
        return { entries: withParentsBelow(made, (path) => tree.get(path), this.createdDirMtime()) };
      },
    });
  }

  /** Directory entries for `target` and its missing parents, owned by `owner`, as BuildKit makes them. */
  private missingDirectories(tree: FileTree, target: string, owner: { uid: number; gid: number }): LayerEntry[] {
    const parts = target.split('/').filter(Boolean);
    // The parents of a directory are directories: the deepest one there is, found looking back
    // from the target, ends the search (looking forward takes time in the square of the depth).
    let present = parts.length;
    while (present > 0 && tree.get(parts.slice(0, present).join('/'))?.type !== 'directory') present--;
    return parts.slice(present).map((_, i) => ({
      path: parts.slice(0, present + i + 1).join('/'), type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime: this.createdDirMtime(),
    }));
  }

  /** Directories a build creates get the build's timestamp only when one is set: otherwise 0, for determinism. */
  private createdDirMtime(): number {
    return this.request.timestamp ?? 0;
  }

  /** Writes a layer of `entries`; with SOURCE_DATE_EPOCH, no mtime is later than it. */
  private async writeLayer(entries: LayerEntry[], contentHashes: Map<string, string>): Promise<{ layer: Layer; entries: LayerEntry[] }> {
    const epoch = this.request.timestamp;
    const clamped = epoch === undefined ? entries : entries.map((entry) => (entry.mtime > epoch ? { ...entry, mtime: epoch } : entry));
    return { layer: await writeLayer(this.store, clamped, { contentHashes }), entries: clamped };
  }

  /** Puts a layer this build made on top of the stage. */
  private pushLayer(state: StageState, layer: Layer, entries: LayerEntry[]): void {
    const treeUpToDate = state.treeLayers === state.layers.length;
    state.layers.push(layer);
    this.madeHere.add(layer.diffId);
    if (treeUpToDate) {
      state.tree.apply(entries.map((entry) => [entry.path, entry]));
      state.treeLayers++;
    }
  }

  private async run(planned: PlannedStage, state: StageState, instruction: RunInstruction, locator: string, prefix: string): Promise<void> {
    if (process.getuid?.() !== 0) {
      helper();
      throw new BuildError(`RUN needs hoist's user namespace: start hoist as bin/hoist, which enters one`);
    }
    const container = state.config.config;
    const { argv, script } = runCommand(instruction, container.Shell ?? ['/bin/sh', '-c']);
    const args = [...state.variables.declaredArgs()].map(([key, value]) => `${key}=${value}`);
    const mountContext = this.mountContext(planned, state, instruction);
    const mounts = instruction.mounts.length > 0 ? await mountInputs(instruction.mounts, mountContext) : undefined;
    const step = {
      command: JSON.stringify(argv), ...(script ? { script: script.content } : {}),
      user: container.User || '0', workdir: container.WorkingDir || '/', network: instruction.network ?? 'default',
      ...(instruction.security ? { security: instruction.security } : {}), ...(mounts ? { mounts: mounts.description } : {}), ...this.layerSettings(),
    };
    await this.cachedStep(planned, state, locator, prefix, {
      label: 'RUN',
      createdBy: `RUN ${args.length ? `|${args.length} ${args.join(' ')} ` : ''}${argv.join(' ')} # buildkit`,
      inputs: {
        step, env: hashedValues(state.variables.imageEnv().map(splitVariable)), args: hashedValues(state.variables.declaredArgs()),
        ...(mounts && Object.keys(mounts.files).length > 0 ? { files: mounts.files } : {}),
      },
      execute: async () => {
        const prepared = await prepareMounts(instruction.mounts, mountContext);
        try {
          return await this.execute(planned, state, instruction, argv, script, prepared);
        } finally {
          await prepared.release();
        }
      },
    });
  }

  private mountContext(planned: PlannedStage, state: StageState, instruction: Instruction): MountContext {
    return {
      cacheStore: new CacheStore(this.store), secrets: this.request.secrets ?? new Map(), workdir: state.config.config.WorkingDir || '/',
      tempDir: (prefix) => this.tempDir(prefix),
      contextRoot: async () => (await this.loadContext()).root,
      image: (from) => this.fromImage(planned, instruction, from),
      imageRoot: (image) => this.imageRoot(image),
      hashes: async () => this.hashes((await this.loadContext()).root),
      realPath: async (path) => (await this.tree(state)).realPath(path),
      useCacheMount: (name, dir, isNew) => this.cache.useMount(name, dir, isNew, (layer, into) => applyLayers(this.store, [layer], into, this.applyOptions())),
    };
  }

  /** Runs a RUN's command in its sandbox and returns the changes it made. */
  private async execute(
    planned: PlannedStage, state: StageState, instruction: RunInstruction, argv: string[],
    script: { path: string; content: string } | undefined, prepared: PreparedMounts,
  ): Promise<{ entries: LayerEntry[]; dir?: string }> {
    const container = state.config.config;
    const user = await this.resolveUser(state, container.User || '0');
    const sandbox = await this.sandboxDir();
    const step = await this.tempDir('run');
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
    const lines = new LinePrefixer(`[${this.stageLabel(planned)}] `, (chunk) => this.request.output?.(chunk));
    const common = {
      rootfs, hostname: HOSTNAME, cwd: container.WorkingDir || '/', ...user, mounts,
      env: withDefaultPath([...state.variables.runEnv(), ...prepared.env]), network: instruction.network === 'none' ? 'none' as const : 'host' as const, argv,
      signal: this.cancelled.signal,
      output: (chunk: Buffer) => {
        lines.write(chunk);
        tail = (tail + chunk.toString('utf8')).slice(-4000);
      },
    };
    const warn = (message: string): void => this.request.log(`warning: ${message}`);
    const lower = [...(await this.lowerDirs(state)), points];
    // A full disk often shows in the step's output only as a tool's "I/O error": say so, and where.
    const failure = (message: string): BuildError => {
      const full = this.diskFull(this.noOverlay ? rootfs : upper, tail);
      return new BuildError(full ? `${full}; ${message}` : message);
    };
    const sandboxFailed = (error: unknown): never => {
      throw this.cancelled.signal.aborted || !(error instanceof Error) ? error : failure(error.message);
    };
    let result = this.noOverlay ? undefined : await runStep({ ...common, root: { overlay: { lower, upper, work } } }).catch(sandboxFailed);
    if (result?.noOverlay) {
      warn('overlay mounts are not available here: each RUN works on a copy of the image, which is slower');
      this.noOverlay = true;
    }
    let before: Snapshot | undefined;
    if (this.noOverlay) {
      await applyLayers(this.store, state.layers, rootfs, this.applyOptions());
      makeMountPoints(rootfs);
      makePoints(rootfs, prepared.points);
      before = snapshot(rootfs);
      result = await runStep({ ...common, root: { copied: true } }).catch(sandboxFailed);
    }
    lines.end();
    if (result!.exitCode !== 0) {
      const how = result!.signal !== undefined ? `was killed by signal ${result!.signal}` : `exited with code ${result!.exitCode}`;
      const lastLines = tail.trimEnd().split('\n').slice(-10).map((text) => `  ${text}`).join('\n');
      const hint = process.env.HOIST_SINGLE_ID === '1'
        ? '\n(only your own user and group ids are mapped, so chown to any other id fails: give your user a range in /etc/subuid and /etc/subgid)'
        : '';
      throw failure(`RUN ${how}: ${argv.join(' ')}${lastLines ? `\nlast output:\n${lastLines}` : ''}${hint}`);
    }
    const diffOptions = { xattrs: await readXattrs(before ? rootfs : upper), warn };
    if (before) return { entries: changedEntries(rootfs, before, diffOptions) };
    return { entries: upperDirEntries(upper, diffOptions), dir: upper };
  }

  /**
   * When the file system holding `dir` (the store's, where a step's writes go) is full or nearly so,
   * a sentence that says so: where, and the free bytes from statfs. Nearly: under 1 MiB free, or
   * under 64 MiB when the step's output speaks of no space or of an I/O error.
   */
  private diskFull(dir: string, output: string): string | undefined {
    const { free } = spaceAt(dir);
    const said = /no space left|ENOSPC|disk (is )?full|I\/O error/i.test(output);
    return free < 1 << 20 || (said && free < 64 << 20) ? diskFullMessage(dir, `the store ${this.store.root}`) : undefined;
  }

  /** Overlay lower dirs, topmost first: this build's layers one by one, the image below merged. */
  private async lowerDirs(state: StageState): Promise<string[]> {
    let base = state.layers.length;
    while (base > 0 && this.madeHere.has(state.layers[base - 1]!.diffId)) base--;
    let dirs = base > 0 ? [await this.chainDir(state.layers.slice(0, base))] : [];
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
    const key = chainKey(layers.map((layer) => layer.diffId));
    let dir = this.layerDirs.get(key);
    if (!dir) {
      dir = this.tempDir('layer').then(async (path) => {
        await applyLayers(this.store, layers.slice(-1), path, { ...this.applyOptions(), below });
        return path;
      });
      this.layerDirs.set(key, dir);
    }
    return dir;
  }

  /** An image's layers applied into one directory, kept in the store for later builds. */
  private async chainDir(layers: Layer[]): Promise<string> {
    const dir = join(this.store.root, 'rootfs', chainKey(layers.map((layer) => layer.diffId)));
    if (existsSync(dir)) {
      // Its mtime is its last use, for hoist prune.
      await utimes(dir, new Date(), new Date());
      return dir;
    }
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

  private async copy(planned: PlannedStage, state: StageState, instruction: Extract<Instruction, { kind: 'COPY' | 'ADD' }>, locator: string, prefix: string): Promise<void> {
    const workdir = state.config.config.WorkingDir || '/';
    const from = instruction.kind === 'COPY' ? instruction.from : undefined;
    const source = from === undefined ? { dir: await this.loadContext() } : await this.copySource(planned, instruction, from);
    const fromImage = 'image' in source ? source.image : undefined;
    // The destination with symlinks in the image followed: COPY x /lib/ lands in /usr/lib/ where
    // /lib links to usr/lib, instead of replacing the link with a directory.
    const absoluteDest = imagePath(absoluteDestination(instruction.dest, workdir));
    const options = async (tree: FileTree) => ({
      dest: tree.realPath(absoluteDest), workdir, chmod: instruction.chmod, parents: instruction.parents, exclude: instruction.exclude,
      below: (path: string) => tree.get(path), createdDirMtime: this.createdDirMtime(), warn: (message: string) => this.request.log(`warning: ${message}`),
      command: instruction.kind, tmpDir: await this.tempDir('copy'),
      ...(instruction.kind === 'ADD' ? { unpack: instruction.unpack, checksum: instruction.checksum } : {}),
    });
    // Sources in a directory (the context) are listed before the key, which holds their content.
    // --chown is applied after: it gives every entry the same owner, and the key holds it as written.
    let contextEntries: LayerEntry[] = [];
    let files: Record<string, string> | undefined;
    const hashes = 'dir' in source ? await this.hashes(source.dir.root) : undefined;
    if (hashes && 'dir' in source && instruction.sources.length > 0) {
      const { root, isIgnored, mayUnignoreUnder } = source.dir;
      contextEntries = await planCopy({
        ...(await options(await this.tree(state))), root, sources: instruction.sources,
        isIgnored, mayUnignoreUnder, onFile: (path, stats) => hashes.noteStats(path, stats),
      });
      // Files whose stat data changed are hashed first only when a cache from elsewhere may hold
      // them; otherwise a miss is likely, and the layer write hashes them as it reads them.
      files = hashes.entryHashes(contextEntries, { readChanged: this.cache.hasSources });
    }
    const sources = [...instruction.sources, ...instruction.inlineSources.map((source) => `<<${source.name}`)];
    const { range: _range, original: _original, ...expanded } = instruction;
    const inputs = {
      step: { instruction: JSON.stringify(expanded), workdir, ...(fromImage ? { from: chainKey(fromImage.layers.map((layer) => layer.diffId)) } : {}), ...this.layerSettings() },
      env: {}, args: {},
    };
    await this.cachedStep(planned, state, locator, prefix, {
      label: abbreviate(`${instruction.kind} ${sources.join(' ')}`),
      createdBy: `${instruction.kind}${from ? ` --from=${from}` : ''} ${sources.join(' ')} ${instruction.dest} # buildkit`,
      inputs: files === undefined && contextEntries.length > 0
        ? (contentHashes) => ({ ...inputs, files: hashes!.learn(contentHashes, contextEntries) })
        : { ...inputs, ...(files ? { files } : {}) },
      execute: async () => {
        const common = await options(await this.tree(state));
        const chown = instruction.chown === undefined ? undefined : await this.resolveOwner(state, instruction.chown);
        const entries = chown ? contextEntries.map((entry) => ({ ...entry, ...chown })) : [...contextEntries];
        if (fromImage && instruction.sources.length > 0) {
          // A stage's owners are kept, as BuildKit does; extracted without root they are not known yet.
          const root = await this.imageRoot(fromImage);
          for (const entry of await planCopy({ ...common, chown, root, sources: instruction.sources, keepOwners: process.getuid?.() === 0 })) entries.push(entry);
        }
        for (const inline of instruction.inlineSources) {
          const dir = await this.tempDir('heredoc');
          // The name is the Dockerfile's: resolved as a path under the temp dir, `..` cannot leave it.
          const file = join(dir, posix.resolve('/', inline.name));
          await mkdir(dirname(file), { recursive: true });
          await writeFile(file, inline.content, { mode: 0o644 });
          for (const entry of await planCopy({ ...common, chown, root: dir, sources: [inline.name] })) entries.push(entry);
        }
        return { entries: withParentsBelow(dedupe(entries), common.below, common.createdDirMtime) };
      },
    });
  }

  /** An image from an OCI layout, directory or tarball; its blobs are checked on the way into the store. */
  private layoutImage(path: string, select: string | undefined, platform: Platform): Promise<Image> {
    const id = `${path}\0${select ?? ''}`;
    let image = this.layoutImages.get(id);
    if (!image) {
      image = importOciLayout(this.store, path, select, platform).then((images) => {
        if (images.length > 1) throw new BuildError(`oci-layout://${path} holds ${images.length} images: name one with :TAG or @DIGEST`);
        return images[0]!.image;
      });
      this.layoutImages.set(id, image);
    }
    return image;
  }

  /** Content hashes of the files of a directory that COPY reads (the context, or a named one). */
  private hashes(root: string): Promise<ContentHashes> {
    let hashes = this.contentHashes.get(root);
    if (!hashes) {
      const made = new ContentHashes(this.store, root);
      hashes = made.load().then(() => made);
      this.contentHashes.set(root, hashes);
    }
    return hashes;
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

  /** What COPY --from names: a stage of this build, a directory build context, or an image. */
  private async copySource(planned: PlannedStage, instruction: Instruction, from: string): Promise<{ image: Image } | { dir: Pick<BuildContext, 'root'> & Partial<BuildContext> }> {
    const named = this.request.buildContexts?.get(from);
    if (named?.kind === 'dir' && resolveStageRef(this.dockerfile, from, planned.stage.index, instruction) === undefined) return { dir: { root: named.path } };
    return { image: await this.fromImage(planned, instruction, from) };
  }

  /** The image that `--from` names: a stage of this build, or an image in the store. */
  private async fromImage(planned: PlannedStage, instruction: Instruction, from: string): Promise<Image> {
    const index = resolveStageRef(this.dockerfile, from, planned.stage.index, instruction);
    return index !== undefined ? this.stageResult(index) : this.localImage(from, planned.platform);
  }

  /** An image's root filesystem, extracted once per build. */
  private imageRoot(image: Image): Promise<string> {
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
    /** The line of `name` in the image's passwd or group file: name, password, id, then (passwd) the primary group. */
    const lookup = async (file: string, name: string): Promise<string[]> => {
      const fields = (await this.idTable(state, file)).find((line) => line[0] === name);
      if (!fields || !/^\d+$/.test(fields[2] ?? '')) throw new BuildError(`--chown=${spec}: no ${file === '/etc/passwd' ? 'user' : 'group'} named "${name}" in the image's ${file}`);
      return fields;
    };
    const passwd = /^\d+$/.test(user) ? undefined : await lookup('/etc/passwd', user);
    const uid = Number(passwd ? passwd[2] : user);
    if (group !== undefined && group !== '') return { uid, gid: Number(/^\d+$/.test(group) ? group : (await lookup('/etc/group', group))[2]) };
    // As BuildKit: a user named without a group gets its primary group; a number alone, gid = uid.
    const primary = passwd?.[3];
    return { uid, gid: primary !== undefined && /^\d+$/.test(primary) ? Number(primary) : uid };
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

/** When two sources give the same path, the later one wins, as files copied in order would. */
function dedupe(entries: LayerEntry[]): LayerEntry[] {
  return [...new Map(entries.map((entry) => [entry.path, entry])).values()];
}

/** The instruction an ONBUILD trigger of an image holds: the image's config may say anything there. */
export function triggerInstruction(trigger: string): Instruction {
  const { stages } = parseInstructions(`FROM scratch\n${trigger}`);
  const [instruction, ...more] = stages.flatMap((stage) => [stage.from, ...stage.instructions]).slice(1);
  if (!instruction || more.length > 0 || instruction.kind === 'FROM') throw new Error(`ONBUILD ${abbreviate(trigger)}: a trigger must be one instruction, not FROM`);
  return instruction;
}

/**
 * A path in the image, refused when longer than Linux allows: nothing could open it, and following
 * its symlinks and making its directories takes time in the square of its depth.
 */
function imagePath(path: string): string {
  if (Buffer.byteLength(path) >= PATH_MAX) throw new BuildError(`${abbreviate(path)}: the path is longer than ${PATH_MAX - 1} bytes (Linux's PATH_MAX)`);
  return path;
}

/** Text as progress lines and messages quote it: at most 200 characters. */
function abbreviate(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** `8000-8002/udp` gives three ports; a port without a protocol is TCP. Ports are 0 to 65535, as in BuildKit. */
export function expandPortRange(spec: string): string[] {
  const [range = '', protocol = 'tcp'] = spec.split('/');
  const dash = range.indexOf('-');
  const port = (text: string): number => (/^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : NaN);
  const [start, end] = dash < 0 ? [port(range), port(range)] : [port(range.slice(0, dash)), port(range.slice(dash + 1))];
  if (!(start <= end)) throw new BuildError(`invalid port "${spec}" in EXPOSE`);
  const ports: string[] = [];
  for (let number = start; number <= end; number++) ports.push(`${number}/${protocol.toLowerCase()}`);
  return ports;
}
