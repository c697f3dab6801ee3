// Runs a Dockerfile's needed stages in dependency order, instruction by instruction, into an image
// in the store: the scheduling, the dispatch of each instruction, and the cache step. RUN is in
// run.ts, COPY and ADD in copy-step.ts, where images come from in images.ts.
import { join, posix } from 'node:path';
import pLimit, { type LimitFunction } from 'p-limit';
import {
  dependencyOrder, DockerfileError, goQuote, parseInstructions, planBuild, StageVariables, unusedBuildArgs,
  type BuildPlan, type Dockerfile, type Instruction, type Platform, type PlannedStage,
} from '../parser/index.ts';
import { writeImage, writeLayer, type Compression, type FileTree, type Image, type ImageConfig, type LayerEntry, type StepInputs, type Store } from '../layers/index.ts';
import type { ClientOptions } from '../registry/index.ts';
import { BuildCache, cacheKey, sha256 } from './cache.ts';
import { CopySteps } from './copy-step.ts';
import { imagePath, withParentsBelow } from './copy.ts';
import { abbreviate, BuildError, sourceExcerpt } from './errors.ts';
import { checkEmulation } from './emulation.ts';
import { detectHost, type Host } from './host.ts';
import { Images, type NamedContext, type UsedImage } from './images.ts';
import { DEFAULT_PATH, RunSteps, type StepDefaults } from './run.ts';
import type { SshSource } from './ssh.ts';
import { BuildSession } from './session.ts';
import { StageState, stageLabel, type CachedStep } from './stage.ts';
import { Timestamps } from './timestamps.ts';
import { resolveUser } from './users.ts';

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
  /** Stages built at the same time, shared by the builds of several platforms (default: no limit). */
  limit?: LimitFunction;
  /** Shown in every line of the build, before the stage's name: the platform, when a build makes several. */
  label?: string;
  /** Stops the build (its steps killed, stages not started never started): another platform's build failed. */
  signal?: AbortSignal;
  /** Pull base images even when the store has them (`--pull`). */
  pull?: boolean;
  /** How registries (and ADD's URLs) are reached: plain-HTTP hosts, extra CAs. */
  registry?: ClientOptions;
  /** The build cache (with any --cache-from sources); its `used` records are what --cache-to exports. */
  cache?: BuildCache;
  /** Use no cached step (`--no-cache`), or none in these stages (`--no-cache-filter`, names or indexes). */
  noCache?: boolean;
  noCacheStages?: string[];
  /** Secrets for RUN --mount=type=secret, by id (`--secret`): never in a layer, the history or a key. */
  secrets?: ReadonlyMap<string, Buffer>;
  /** Agents for RUN --mount=type=ssh, by id (`--ssh`). */
  ssh?: ReadonlyMap<string, SshSource>;
  /** `--build-context NAME=VALUE`: what FROM NAME and COPY --from=NAME mean instead of an image of that name. */
  buildContexts?: ReadonlyMap<string, NamedContext>;
  /** What this host allows (found once by the caller; detected here when not given). */
  host?: Host;
  /** How the layers this build makes are compressed (default gzip); reused layers keep theirs. */
  compression?: Compression;
  /** Paths the build reads or writes besides the store: with --isolation=container, kept out of the image's way. */
  keep?: string[];
  /** Told of each image used from outside the build (a base, COPY --from), as it is resolved. */
  used?: (image: UsedImage) => void;
  /** How every RUN is set up unless its own flags say otherwise (--network, --add-host, --shm-size, --ulimit). */
  runDefaults?: StepDefaults;
}

/** Builds the target stage and returns its image (written to the store, not tagged). */
export async function build(request: BuildRequest): Promise<Image> {
  const dockerfile = parseInstructions(request.dockerfile.text, request.dockerfile.name);
  const namedContexts = new Set([...(request.buildContexts?.keys() ?? [])].map((name) => name.toLowerCase()));
  const plan = planBuild(dockerfile, { buildArgs: request.buildArgs, target: request.target, platform: request.platform, namedContexts });
  checkEmulation(plan);
  const unused = unusedBuildArgs(plan);
  if (unused.length > 0) request.log(`warning: build-args not consumed by any ARG: ${unused.join(', ')}`);
  const host = request.host ?? await detectHost();
  const session = new BuildSession({
    store: request.store, host, times: new Timestamps(request.timestamp), log: request.log,
    contextDir: request.contextDir, dockerfilePath: request.dockerfile.path,
  });
  const run = new BuildRun(request, session, dockerfile, plan);
  const stop = (): void => session.cancelled.abort();
  if (request.signal?.aborted) stop();
  request.signal?.addEventListener('abort', stop, { once: true });
  try {
    return await run.buildTarget();
  } catch (error) {
    session.cancelled.abort();
    throw error;
  } finally {
    request.signal?.removeEventListener('abort', stop);
    await run.settled();
    await session.close();
  }
}

class BuildRun {
  private readonly request: BuildRequest;
  private readonly session: BuildSession;
  private readonly dockerfile: Dockerfile;
  private readonly plan: BuildPlan;
  private readonly store: Store;
  private readonly cache: BuildCache;
  private readonly images: Images;
  private readonly copies: CopySteps;
  private readonly runs: RunSteps;
  /** Each needed stage's image, built once its dependencies are, at most `jobs` at a time. */
  private readonly results = new Map<number, Promise<Image>>();
  private readonly limit: LimitFunction;
  private step = 0;
  private readonly totalSteps: number;

  constructor(request: BuildRequest, session: BuildSession, dockerfile: Dockerfile, plan: BuildPlan) {
    this.request = request;
    this.session = session;
    this.dockerfile = dockerfile;
    this.plan = plan;
    this.store = request.store;
    this.cache = request.cache ?? new BuildCache(request.store);
    this.images = new Images(session, request, dockerfile, (index) => this.stageResult(index));
    this.copies = new CopySteps(session, this.images, this.cache, request.registry, request.secrets ?? new Map());
    this.runs = new RunSteps(session, this.images, this.cache, {
      secrets: request.secrets ?? new Map(), ssh: request.ssh ?? new Map(), keep: [request.contextDir, ...(request.keep ?? [])], output: request.output, label: request.label,
      defaults: request.runDefaults ?? {},
    });
    // As in BuildKit, every stage whose dependencies are built runs unless --jobs caps them: a RUN's
    // work is its own processes', which the kernel shares out (W5's three 3 s stages on 2 cores took
    // 9.6 s two at a time, 8.2 s all at once).
    this.limit = request.limit ?? pLimit(Infinity);
    this.totalSteps = plan.order.reduce((sum, index) => sum + 1 + plan.stages[index]!.stage.instructions.length, 0);
  }

  buildTarget(): Promise<Image> {
    // As BuildKit checks entitlements: a RUN that asks for more than the command line grants fails
    // the build before any step runs (an ONBUILD trigger's, when its base is known).
    for (const index of this.plan.order) {
      for (const instruction of this.plan.stages[index]!.stage.instructions) {
        if (instruction.kind !== 'RUN') continue;
        try {
          this.runs.checkPrivileges(instruction);
        } catch (error) {
          this.locate(instruction)(error);
        }
      }
    }
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

  /** Waits for every stage to end. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.results.values());
  }

  private stageLabel(planned: PlannedStage): string {
    return stageLabel(planned, this.request.label);
  }

  /** Rethrows an instruction's failure as a BuildError that names its line. */
  private locate(instruction: Instruction): (error: unknown) => never {
    return (error) => {
      const located = error instanceof DockerfileError || (error instanceof BuildError && error.location) || this.session.signal.aborted;
      if (located || !(error instanceof Error)) throw error;
      const { start, end } = instruction.range;
      throw new BuildError(error.message, { file: this.dockerfile.file, line: start.line, excerpt: sourceExcerpt(this.dockerfile.lines, start.line, end.line) });
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

  private async buildStage(planned: PlannedStage): Promise<Image> {
    this.session.signal.throwIfAborted();
    this.progress(planned, planned.stage.from);
    const base = await this.images.base(planned).catch(this.locate(planned.stage.from));
    const config: ImageConfig = structuredClone(base?.config) ?? {
      architecture: planned.platform.architecture, os: planned.platform.os,
      ...(planned.platform.variant ? { variant: planned.platform.variant } : {}),
      config: {}, rootfs: { type: 'layers', diff_ids: [] },
    };
    config.config.Env ??= [];
    if (!config.config.Env.some((entry) => entry.startsWith('PATH='))) config.config.Env.unshift(DEFAULT_PATH);
    const state = new StageState(config, [...(base?.layers ?? [])], [...(base?.config.history ?? [])], new StageVariables(this.plan, config.config.Env));
    const triggers = config.config.OnBuild ?? [];
    config.config.OnBuild = null;
    for (const [i, trigger] of triggers.entries()) {
      await this.runTrigger(planned, state, trigger, `onbuild-${i}`).catch(this.locate(planned.stage.from));
    }
    for (const [i, instruction] of planned.stage.instructions.entries()) {
      this.session.signal.throwIfAborted();
      const prefix = this.progress(planned, instruction);
      await this.dispatch(planned, state, instruction, String(i), prefix).catch(this.locate(instruction));
    }
    const { times } = this.session;
    times.fillCreated(state.history, state.historyStart);
    config.created = state.history.at(-1)?.created ?? times.now();
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
  private async runTrigger(planned: PlannedStage, state: StageState, trigger: string, stepId: string): Promise<void> {
    try {
      await this.dispatch(planned, state, triggerInstruction(trigger), stepId, `[${this.stageLabel(planned)} ONBUILD]`);
    } catch (error) {
      throw error instanceof DockerfileError ? new Error(`ONBUILD ${abbreviate(trigger)}: ${error.message}`) : error;
    }
  }

  /** The key of the file system a step starts from: its layers' content, and the platform. */
  private parentKey(state: StageState): string {
    const { os, architecture, variant } = state.config;
    return sha256([`${os}/${architecture}${variant ? `/${variant}` : ''}`, ...state.layers.map((layer) => layer.diffId)].join('\n'));
  }

  /** Takes a step's result from the cache, or runs it and caches what it made; says which, and why. */
  private async cachedStep(planned: PlannedStage, state: StageState, stepId: string, prefix: string, step: CachedStep): Promise<void> {
    const parent = this.parentKey(state);
    // The locator: the place in the Dockerfile, for explanations (the same file path on a CI runner each time).
    const dockerfile = this.request.dockerfile.path ?? join(this.request.contextDir, this.dockerfile.file);
    const locator = sha256(`${dockerfile}\0${planned.stage.name ?? planned.stage.index}\0${stepId}`);
    const final = planned.stage.index === this.plan.target;
    const useCache = this.cacheEnabled(planned);
    /** Takes the step's result from the cache when it has one for these inputs, or says why not. */
    const lookUp = async (inputs: StepInputs): Promise<{ inputs: StepInputs; key: string; hit: boolean }> => {
      const key = cacheKey(inputs);
      const hit = useCache ? await this.cache.lookup(key) : undefined;
      if (!hit) {
        this.request.log(`${prefix} ${step.label}: ${useCache ? await this.cache.explain(locator, inputs) : 'cache disabled'}`);
        return { inputs, key, hit: false };
      }
      this.request.log(`${prefix} CACHED`);
      if (hit.layer) state.addLayer(hit.layer);
      state.addHistory(step.createdBy, !hit.layer, hit.created);
      await this.cache.remember(locator, key, hit, final);
      return { inputs, key, hit: true };
    };
    let missed = typeof step.inputs === 'function' ? undefined : await lookUp({ parent, ...step.inputs });
    if (missed?.hit) return;
    const taken = missed && useCache ? this.cache.take(missed.key) : undefined;
    if (taken && 'busy' in taken) {
      // Another platform's build is making this very step: its record will do.
      await taken.busy;
      missed = await lookUp(missed!.inputs);
      if (missed.hit) return;
    }
    try {
      const started = performance.now();
      const { entries, dir } = await step.make();
      const created = this.session.times.now();
      // The content hashes of the files read, for a key that waits for them (COPY's); RUN's need none.
      const contentHashes = missed ? undefined : new Map<string, string>();
      const clamped = this.session.times.clamp(entries);
      const layerOptions = { ...(contentHashes ? { contentHashes } : {}), ...(this.request.compression ? { compression: this.request.compression } : {}) };
      const made = clamped.length > 0 ? await writeLayer(this.store, clamped, layerOptions) : undefined;
      if (!missed) {
        missed = await lookUp({ parent, ...(step.inputs as (hashes: ReadonlyMap<string, string>) => Omit<StepInputs, 'parent'>)(contentHashes!) });
        if (missed.hit) return;
      }
      if (made) {
        state.addLayer(made, clamped);
        this.runs.madeLayer(made, dir);
      }
      state.addHistory(step.createdBy, !made, created);
      const { inputs, key } = missed;
      const record = { layer: made ?? null, created, inputs };
      await this.cache.save(key, record);
      await this.cache.remember(locator, key, record, final);
      this.request.log(`${prefix} DONE ${((performance.now() - started) / 1000).toFixed(2)}s`);
    } finally {
      if (taken && 'release' in taken) taken.release();
    }
  }

  private async dispatch(planned: PlannedStage, state: StageState, raw: Instruction, stepId: string, prefix: string): Promise<void> {
    const instruction = state.variables.expand(raw);
    const container = state.config.config;
    const metadata = (createdBy: string): void => state.addHistory(createdBy, true);
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
        return this.cachedStep(planned, state, stepId, prefix, this.workdirStep(state, instruction.path));
      case 'COPY':
      case 'ADD':
        return this.cachedStep(planned, state, stepId, prefix, await this.copies.step(planned, state, instruction));
      case 'RUN':
        return this.cachedStep(planned, state, stepId, prefix, await this.runs.step(planned, state, instruction));
      case 'FROM':
        throw new Error('unreachable: FROM inside a stage');
    }
  }

  /** WORKDIR: the directory and its missing parents, made as the current USER, as BuildKit makes them. */
  private workdirStep(state: StageState, path: string): CachedStep {
    const container = state.config.config;
    const target = imagePath(posix.resolve(container.WorkingDir || '/', path));
    container.WorkingDir = target;
    const { times } = this.session;
    return {
      label: 'WORKDIR', createdBy: `WORKDIR ${target}`,
      inputs: { step: { command: `WORKDIR ${target}`, ...(container.User ? { user: container.User } : {}), ...times.cacheInputs() }, env: {}, args: {} },
      make: async () => {
        const tree = await state.tree(this.store);
        const owner = container.User ? await resolveUser(this.store, state.layers, container.User) : { uid: 0, gid: 0 };
        const made = missingDirectories(tree, tree.realPath(target), owner, times.createdDirMtime);
        return { entries: withParentsBelow(made, (dir) => tree.get(dir), times.createdDirMtime) };
      },
    };
  }
}

/** Directory entries for `target` and its missing parents, owned by `owner`. */
function missingDirectories(tree: FileTree, target: string, owner: { uid: number; gid: number }, mtime: number): LayerEntry[] {
  const parts = target.split('/').filter(Boolean);
  // The parents of a directory are directories: the deepest one there is, found looking back
  // from the target, ends the search (looking forward takes time in the square of the depth).
  let present = parts.length;
  while (present > 0 && tree.get(parts.slice(0, present).join('/'))?.type !== 'directory') present--;
  return parts.slice(present).map((_, i) => ({
    path: parts.slice(0, present + i + 1).join('/'), type: 'directory', mode: 0o755, uid: owner.uid, gid: owner.gid, mtime,
  }));
}

/** The instruction an ONBUILD trigger of an image holds: the image's config may say anything there. */
export function triggerInstruction(trigger: string): Instruction {
  const { stages } = parseInstructions(`FROM scratch\n${trigger}`);
  const [instruction, ...more] = stages.flatMap((stage) => [stage.from, ...stage.instructions]).slice(1);
  if (!instruction || more.length > 0 || instruction.kind === 'FROM') throw new Error(`ONBUILD ${abbreviate(trigger)}: a trigger must be one instruction, not FROM`);
  return instruction;
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
