// Stages and their variables, with BuildKit's rules: global ARGs are visible to FROM only, unless
// a stage redeclares them; --build-arg overrides a declared default; ENV is expanded when defined,
// wins over an ARG of the same name and is inherited through the image; ARG is not inherited.
import type { Dockerfile, Stage } from './dockerfile.ts';
import { sourceError } from './errors.ts';
import { expandInstruction } from './expand.ts';
import { closest, type ArgInstruction, type EnvInstruction, type Instruction } from './instructions.ts';
import { expandWord } from './shell.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_ARCH: Record<string, Platform> = {
  x64: { os: 'linux', architecture: 'amd64' },
  arm64: { os: 'linux', architecture: 'arm64' },
  arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
  ia32: { os: 'linux', architecture: '386' },
  ppc64: { os: 'linux', architecture: 'ppc64le' },
  s390x: { os: 'linux', architecture: 's390x' },
  riscv64: { os: 'linux', architecture: 'riscv64' },
};

export function hostPlatform(): Platform {
  return NODE_ARCH[process.arch] ?? { os: 'linux', architecture: process.arch };
}

/** `linux/arm64/v8`, `linux/amd64`, or `arm64` (OS linux). */
export function parsePlatform(text: string): Platform {
  const parts = text.toLowerCase().split('/');
  if (parts.length > 3 || parts.some((part) => !/^[a-z0-9_.-]+$/.test(part))) {
    throw new Error(`invalid platform "${text}" (expected os/arch[/variant], e.g. linux/amd64)`);
  }
  const [os, architecture, variant] = parts.length === 1 ? ['linux', parts[0]!] : parts;
  return variant ? { os: os!, architecture: architecture!, variant } : { os: os!, architecture: architecture! };
}

/** `--platform` values, each one platform or a comma-separated list of them; duplicates dropped, in order. */
export function parsePlatforms(values: string[]): Platform[] {
  const platforms = new Map<string, Platform>();
  for (const text of values.flatMap((value) => value.split(','))) {
    const platform = parsePlatform(text.trim());
    platforms.set(formatPlatform(platform), platform);
  }
  return [...platforms.values()];
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** Build args that need no ARG: passed to RUN when given, and never written into history. */
export const PROXY_ARGS = new Set(
  ['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'].flatMap((name) => [name, name.toLowerCase()]),
);

export interface BuildOptions {
  buildArgs?: ReadonlyMap<string, string>;
  target?: string;
  /** The platform built for (TARGETPLATFORM); the host's by default. */
  platform?: Platform;
  /** The platform building (BUILDPLATFORM); the host's by default. */
  buildPlatform?: Platform;
  /** Named contexts (--build-context), lower case: FROM and --from mean them, not a stage of that name. */
  namedContexts?: ReadonlySet<string>;
}

export type StageBase = { kind: 'scratch' } | { kind: 'image'; ref: string } | { kind: 'stage'; index: number };

export interface PlannedStage {
  stage: Stage;
  base: StageBase;
  platform: Platform;
  /** Stages this one needs: its base, COPY --from and RUN --mount from=. */
  dependencies: number[];
}

export interface BuildPlan {
  dockerfile: Dockerfile;
  stages: PlannedStage[];
  target: number;
  /** The stages the target needs, itself included, each after its dependencies. */
  order: number[];
  /** TARGET* and BUILD* args; a stage sees one only when it declares it. */
  predefinedArgs: Map<string, string>;
  /** The global ARGs' values, as FROM lines see them. */
  globalArgs: Map<string, string>;
  buildArgs: ReadonlyMap<string, string>;
}

function platformArgs(prefix: 'TARGET' | 'BUILD', platform: Platform): [string, string][] {
  return [
    [`${prefix}PLATFORM`, formatPlatform(platform)],
    [`${prefix}OS`, platform.os],
    [`${prefix}ARCH`, platform.architecture],
    [`${prefix}VARIANT`, platform.variant ?? ''],
  ];
}

export function planBuild(dockerfile: Dockerfile, options: BuildOptions = {}): BuildPlan {
  if (dockerfile.stages.length === 0) {
    sourceError(dockerfile, { line: Math.max(1, dockerfile.lines.length), column: 1 }, 'the Dockerfile has no stages to build: it needs a FROM');
  }
  const buildArgs = options.buildArgs ?? new Map<string, string>();
  const platform = options.platform ?? hostPlatform();
  const predefinedArgs = new Map([
    ...platformArgs('TARGET', platform),
    ...platformArgs('BUILD', options.buildPlatform ?? hostPlatform()),
  ]);

  const globalArgs = new Map<string, string>();
  // What FROM lines see: the global ARGs over the predefined args, kept up to date (not copied for each use).
  const globalEnv = new Map(predefinedArgs);
  for (const instruction of dockerfile.globalArgs) {
    for (const arg of expandInstruction(dockerfile, instruction, globalEnv).args) {
      const value = buildArgs.get(arg.name) ?? arg.value;
      if (value === undefined) globalArgs.delete(arg.name);
      else globalArgs.set(arg.name, value);
      const visible = value ?? predefinedArgs.get(arg.name);
      if (visible === undefined) globalEnv.delete(arg.name);
      else globalEnv.set(arg.name, visible);
    }
  }

  const fail = (instruction: Instruction, message: string): never => sourceError(dockerfile, instruction.range.start, message);
  const stages = dockerfile.stages.map((stage): PlannedStage => {
    const from = expandInstruction(dockerfile, stage.from, globalEnv);
    if (from.image === '') fail(stage.from, 'FROM names no image: its argument expanded to an empty string');
    const baseIndex = options.namedContexts?.has(from.image.toLowerCase()) ? undefined : dockerfile.stagesByName.get(from.image.toLowerCase())?.index;
    let base: StageBase;
    if (baseIndex !== undefined && baseIndex < stage.index) base = { kind: 'stage', index: baseIndex };
    else if (from.image.toLowerCase() === 'scratch') base = { kind: 'scratch' };
    else base = { kind: 'image', ref: from.image };
    let stagePlatform = platform;
    if (from.platform !== undefined) {
      try {
        stagePlatform = parsePlatform(from.platform);
      } catch (error) {
        fail(stage.from, (error as Error).message);
      }
    }
    const dependencies = new Set<number>(base.kind === 'stage' ? [base.index] : []);
    const stageRef = (instruction: Instruction, ref: string | undefined): void => {
      if (ref === undefined) return;
      const index = resolveStageRef(dockerfile, expandWord(ref, globalEnv, { escape: dockerfile.directives.escape }), stage.index, instruction, options.namedContexts);
      if (index !== undefined) dependencies.add(index);
    };
    for (const instruction of stage.instructions) {
      if (instruction.kind === 'COPY') stageRef(instruction, instruction.from);
      if (instruction.kind === 'RUN') for (const mount of instruction.mounts) stageRef(instruction, mount.from);
    }
    return { stage, base, platform: stagePlatform, dependencies: [...dependencies] };
  });

  const target = options.target === undefined ? stages.length - 1 : dockerfile.stagesByName.get(options.target.toLowerCase())?.index;
  if (target === undefined) {
    const names = [...dockerfile.stagesByName.keys()];
    const listed = names.length > 10 ? `${names.slice(0, 10).join(', ')}, and ${names.length - 10} more` : names.join(', ');
    throw new Error(`target stage "${options.target}" could not be found${names.length ? ` (stages: ${listed})` : ' (no stage has a name)'}`);
  }
  return { dockerfile, stages, target, order: dependencyOrder(dockerfile, stages, target), predefinedArgs, globalArgs, buildArgs };
}

/**
 * `--from` values are stage names, stage indexes, or image references and named contexts
 * (undefined is returned): a named context takes the place of a stage of its name.
 */
export function resolveStageRef(dockerfile: Dockerfile, ref: string, current: number, instruction: Instruction, namedContexts?: ReadonlySet<string>): number | undefined {
  const fail = (message: string): never => sourceError(dockerfile, instruction.range.start, message);
  if (namedContexts?.has(ref.toLowerCase())) return undefined;
  if (/^\d+$/.test(ref)) {
    const index = Number(ref);
    if (index >= current) fail(`--from=${ref}: there is no stage ${index} before this one (stages are numbered from 0)`);
    return index;
  }
  const stage = dockerfile.stagesByName.get(ref.toLowerCase());
  if (stage === undefined) {
    // Any other name is an image, as in Docker; but a near miss of a stage name is a typo.
    const typo = /^[a-z0-9_.-]+$/i.test(ref) ? closest(ref, [...dockerfile.stagesByName.keys()]) : undefined;
    if (typo) fail(`undefined stage "${ref}" in --from (did you mean ${typo}?); to copy from an image of that name, add its tag: ${ref}:latest`);
    return undefined;
  }
  if (stage.index === current) fail(`--from=${ref} refers to the stage it is in`);
  return stage.index;
}

/**
 * The stages that stage `index` needs, itself last, each after its dependencies: a depth-first
 * walk kept on a stack of its own, as chains of thousands of stages would overflow the call stack.
 */
export function dependencyOrder(dockerfile: Dockerfile, stages: PlannedStage[], index: number): number[] {
  const order: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>([[index, 'visiting']]);
  const path = [{ index, next: 0 }];
  while (path.length > 0) {
    const top = path.at(-1)!;
    const dependency = stages[top.index]!.dependencies[top.next++];
    if (dependency === undefined) {
      path.pop();
      state.set(top.index, 'done');
      order.push(top.index);
    } else if (state.get(dependency) === 'visiting') {
      const cycle = path.slice(path.findIndex((entry) => entry.index === dependency)).map((entry) => entry.index);
      const names = [...cycle, dependency].map((i) => stages[i]!.stage.name ?? String(i));
      sourceError(dockerfile, stages[dependency]!.stage.from.range.start, `circular dependency between stages: ${names.join(' -> ')}`);
    } else if (state.get(dependency) === undefined) {
      state.set(dependency, 'visiting');
      path.push({ index: dependency, next: 0 });
    }
  }
  return order;
}

/** The variables of one stage as its instructions run. */
export class StageVariables {
  private readonly plan: BuildPlan;
  private readonly args = new Map<string, string>();
  private readonly env: Map<string, string>;
  /** ARG values with ENV over them, kept up to date so that expansion never copies. */
  private readonly visible: Map<string, string>;

  /** `imageEnv` is the base image's config Env (`KEY=value` entries). */
  constructor(plan: BuildPlan, imageEnv: readonly string[]) {
    this.plan = plan;
    this.env = new Map(imageEnv.map((entry) => {
      const equals = entry.indexOf('=');
      return equals < 0 ? [entry, ''] : [entry.slice(0, equals), entry.slice(equals + 1)];
    }));
    this.visible = new Map(this.env);
  }

  /** What `$NAME` means in this stage's next instruction: ARG values, with ENV winning. */
  expansionEnv(): ReadonlyMap<string, string> {
    return this.visible;
  }

  /** Expands an instruction, applying it when it is an ARG or an ENV. */
  expand<T extends Instruction>(instruction: T): T {
    const expanded = expandInstruction(this.plan.dockerfile, instruction, this.visible);
    if (expanded.kind === 'ARG') this.declareArgs(expanded as ArgInstruction);
    if (expanded.kind === 'ENV') {
      for (const { key, value } of (expanded as EnvInstruction).pairs) {
        this.env.set(key, value);
        this.visible.set(key, value);
      }
    }
    return expanded;
  }

  private declareArgs(instruction: ArgInstruction): void {
    for (const { name, value } of instruction.args) {
      const resolved = this.plan.buildArgs.get(name) ?? value ?? this.plan.globalArgs.get(name) ?? this.plan.predefinedArgs.get(name);
      if (resolved === undefined) this.args.delete(name);
      else this.args.set(name, resolved);
      if (this.env.has(name)) continue;
      if (resolved === undefined) this.visible.delete(name);
      else this.visible.set(name, resolved);
    }
  }

  /** The image config's Env: ENV only. */
  imageEnv(): string[] {
    return [...this.env].map(([key, value]) => `${key}=${value}`);
  }

  /** The environment of a RUN: declared ARGs and proxy build args, then ENV over them. */
  runEnv(): string[] {
    const proxies = [...this.plan.buildArgs].filter(([name]) => PROXY_ARGS.has(name));
    return [...new Map([...proxies, ...this.args, ...this.env])].map(([key, value]) => `${key}=${value}`);
  }

  /** Declared ARGs with values, for RUN history (`|N K=V ...`) and cache keys; proxy args excluded. */
  declaredArgs(): Map<string, string> {
    return new Map(this.args);
  }
}

/** Build args that no ARG in the Dockerfile declares and that are not proxy args, to warn about. */
export function unusedBuildArgs(plan: BuildPlan): string[] {
  const declared = new Set<string>();
  const instructions = [...plan.dockerfile.globalArgs, ...plan.dockerfile.stages.flatMap((stage) => stage.instructions)];
  for (const instruction of instructions) if (instruction.kind === 'ARG') for (const arg of instruction.args) declared.add(arg.name);
  return [...plan.buildArgs.keys()].filter((name) => !declared.has(name) && !PROXY_ARGS.has(name));
}
