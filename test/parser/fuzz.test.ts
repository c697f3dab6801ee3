// Fuzzing the front end: generated Dockerfiles, valid ones and mutated ones, go through everything
// `hoist build` does before it reads files, and a sample through the real command. Each must be
// accepted or refused with an error that names a line; never a crash (an internal error) or a hang.
// HOIST_FUZZ_SEED=N repeats a run; HOIST_FUZZ_COUNT=N runs more or fewer cases (default 20,000).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { expandPortRange, triggerInstruction } from '../../builder/build.ts';
import { BuildError } from '../../builder/errors.ts';
import { parseChmod } from '../../builder/chmod.ts';
import {
  DockerfileError, parseInstructions, planBuild, resolveStageRef, StageVariables, unusedBuildArgs,
  type BuildOptions, type BuildPlan, type Dockerfile, type Instruction,
} from '../../parser/index.ts';
import { MAX_EXPANSION_LENGTH, MAX_NESTING } from '../../parser/shell.ts';
import { MAX_LINE_BYTES } from '../../parser/syntax.ts';
import { removeTree } from '../support/hoist.ts';
import { threadCpuMs } from '../support/load.ts';
import { repoRoot } from '../support/paths.ts';

const COUNT = Number(process.env.HOIST_FUZZ_COUNT ?? 20_000);
const SEED = Number(process.env.HOIST_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CLI_SAMPLE = 40;
/**
 * A case that takes more CPU time than this is a hang (CPU time: a loaded machine does not stretch
 * it); and a `hoist build` of one that is still running after CLI_HANG_MS.
 */
const HANG_MS = 2000;
const CLI_HANG_MS = 60_000;
/** What only a bug in hoist says: JavaScript's own errors. */
const INTERNAL = /TypeError|RangeError|ReferenceError|SyntaxError|Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid string length|Invalid array length|\(reading '/;
/** The files of the build context the CLI sample copies from. */
const CONTEXT: Record<string, string> = { 'a.txt': 'a\n', 'b.md': 'b\n', 'dir/c.txt': 'c\n', 'dir/sub/d': 'd\n', '.dockerignore': '*.md\n' };

/** mulberry32: small, fast and good enough to pick from lists. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Case {
  text: string;
  options: BuildOptions;
}

/** Writes case `index` of the run seeded `seed`: each case from its own stream of numbers, so that any case can be made again alone. */
class Generator {
  private readonly random: () => number;
  private stages: string[] = [];

  constructor(seed: number, index: number) {
    this.random = prng(seed ^ Math.imul(index + 1, 0x9e3779b1));
  }

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  times(count: number, make: (i: number) => string, separator = ''): string {
    return Array.from({ length: count }, (_, i) => make(i)).join(separator);
  }

  variable(): string {
    return this.pick(['A', 'B', 'V', 'BASE', 'S', 'TARGETARCH', 'UNSET', 'a_1', 'é']);
  }

  expansion(): string {
    const name = this.variable();
    if (this.chance(0.05)) return this.pick(['${', '${}', '${:-x}', '${A:x}', '${A#\\q}', '${A/', `\${${name}:?oops}`]);
    return this.pick([
      `$${name}`, `\${${name}}`, `\${${name}:-${this.plain()}}`, `\${${name}-x}`, `\${${name}:+y}`, '$', `"$${name}"`, `'$${name}'`,
      `\${${name}#*.}`, `\${${name}##*a*b}`, `\${${name}%.*}`, `\${${name}%%x*}`, `\${${name}/a/b}`, `\${${name}//?/-}`,
      `\${${name}:-\${${this.variable()}:-deep}}`, `\${${name}:+"a b"}`,
    ]);
  }

  plain(): string {
    return this.pick(['x', 'a.txt', 'dir', 'dir/', '/dst/', 'v1.2', '"hello world"', "'single'", 'a\\ b', 'a*', '*.txt', '?', '-', '0', 'é']);
  }

  word(): string {
    return this.times(1 + this.int(2), () => (this.chance(0.3) ? this.expansion() : this.plain()));
  }

  stageRef(): string {
    if (this.stages.length > 0 && this.chance(0.6)) return this.pick(this.stages);
    return this.pick(['0', '1', '7', '$S', 'nope', 'Stage0', 'scratch', 'alpine:3', 'S0']);
  }

  flag(keyword: string): string {
    const known: Record<string, string[]> = {
      FROM: ['--platform=linux/amd64', '--platform=$BUILDPLATFORM', '--platform=$TARGETPLATFORM', this.pick(['--platform=nope/x/y/z', '--platform='])],
      COPY: [`--from=${this.stageRef()}`, '--chmod=755', `--chmod=${this.mode()}`, '--chown=0:0', '--link', '--parents', '--exclude=*.md', this.pick(['--chmod=99999', '--chown=nobody', '--link=maybe', '--from'])],
      ADD: ['--checksum=sha256:00', '--keep-git-dir', '--unpack=false', '--chmod=0644', '--link'],
      RUN: ['--mount=type=cache,target=/c', `--mount=from=${this.stageRef()},target=/m`, '--mount=type=bogus', '--network=none', '--network=x', '--security=insecure', '--mount="type=tmpfs,target=/t"'],
      HEALTHCHECK: ['--interval=5s', '--timeout=1ms', '--retries=3', '--retries=-1', '--start-period=x', '--interval=1ns'],
    };
    const common = ['--bogus', '--', '--=', `--${this.word()}`, '--constructor=x', '--__proto__=x'];
    return this.chance(0.95) && known[keyword] ? this.pick(known[keyword]) : this.pick(common);
  }

  /** A --chmod value: octal, symbolic, or characters of either. */
  mode(): string {
    if (this.chance(0.5)) return this.pick(['0644', '4755', 'u+x', 'go=rX', 'a-w,u+s', 'o=u', '+t', 'g+X']);
    return this.times(1 + this.int(8), () => this.pick([...'ugoa+-=rwxXst,0178']));
  }

  flags(keyword: string): string {
    return this.times(this.chance(0.75) ? 0 : this.chance(0.9) ? 1 : 2 + this.int(3), () => `${this.flag(keyword)} `);
  }

  heredoc(): { marker: string; body: string } {
    const name = this.pick(['EOF', 'END', '"EOF"', "'X'", '-EOF']);
    const bare = name.replace(/["'-]/g, '');
    const body = this.times(this.int(4), () => `${this.word()}\n`) + (this.chance(0.9) ? `${name.startsWith('-') ? '\t' : ''}${bare}\n` : '');
    return { marker: `<<${name}`, body };
  }

  jsonArray(): string {
    if (this.chance(0.15)) return this.pick(['[', '["a", 1]', '["a",]', '[]', '[["x"]]', '["unterminated', '{"a":1}']);
    return JSON.stringify(Array.from({ length: 1 + this.int(3) }, () => this.word()));
  }

  instruction(): string {
    const keyword = this.chance(0.02) ? this.pick(['RUNN', 'FRUM', 'constructor', '']) : this.pick([
      'ARG', 'ARG', 'ENV', 'LABEL', 'COPY', 'COPY', 'ADD', 'RUN', 'WORKDIR', 'USER', 'EXPOSE', 'VOLUME', 'CMD',
      'ENTRYPOINT', 'SHELL', 'HEALTHCHECK', 'STOPSIGNAL', 'MAINTAINER', 'ONBUILD', 'FROM', 'copy', 'Env',
    ]);
    const flags = this.flags(keyword.toUpperCase());
    switch (keyword.toUpperCase()) {
      case 'ARG':
        return `ARG ${this.times(1 + this.int(2), () => `${this.variable()}${this.chance(0.7) ? `=${this.word()}` : ''}`, ' ')}`;
      case 'ENV':
      case 'LABEL':
        return this.chance(0.2) ? `${keyword} ${this.variable()} ${this.word()}` : `${keyword} ${this.times(1 + this.int(3), () => `${this.variable()}=${this.word()}`, ' ')}`;
      case 'COPY':
      case 'ADD': {
        if (this.chance(0.2)) return `${keyword} ${flags}${this.jsonArray()}`;
        if (this.chance(0.2)) {
          const { marker, body } = this.heredoc();
          return `${keyword} ${flags}${marker} ${this.pick(['/dst', '/dst/', 'f'])}\n${body}`;
        }
        const sources = this.times(this.int(4), () => `${this.pick(['a.txt', 'dir', 'dir/', '*.txt', 'missing', 'b.md', '/', '../a.txt', this.word()])} `);
        return `${keyword} ${flags}${sources}${this.pick(['/dst/', '/dst', '.', this.word()])}`;
      }
      case 'RUN': {
        if (this.chance(0.3)) {
          const { marker, body } = this.heredoc();
          return `RUN ${flags}${marker}\n${body}`;
        }
        return `RUN ${flags}${this.chance(0.3) ? this.jsonArray() : `echo ${this.word()}`}`;
      }
      case 'CMD':
      case 'ENTRYPOINT':
      case 'SHELL':
        return `${keyword} ${this.chance(0.6) ? this.jsonArray() : this.word()}`;
      case 'EXPOSE':
        return `EXPOSE ${this.chance(0.8) ? this.pick(['80', '80/udp', '1-3', '65535/TCP', '$A']) : this.pick(['99999', '1-100000000', 'x', '8000-7000', '-1'])}`;
      case 'HEALTHCHECK':
        return `HEALTHCHECK ${flags}${this.pick(['NONE', 'CMD true', `CMD ${this.jsonArray()}`, 'CMD true', this.pick(['CMD', 'BOGUS x', ''])])}`;
      case 'ONBUILD':
        return `ONBUILD ${this.chance(0.1) ? 'ONBUILD RUN x' : this.instruction().split('\n')[0]}`;
      case 'FROM':
        return this.from();
      default:
        return `${keyword} ${flags}${this.word()}`;
    }
  }

  from(): string {
    const name = this.chance(0.7) ? `s${this.stages.length}` : undefined;
    const base = this.chance(0.05) ? this.pick(['0', '', 'a b', '${', '$BASE'])
      : this.chance(0.5) || this.stages.length === 0 ? this.pick(['scratch', 'scratch', '${BASE:-scratch}', 'alpine:3']) : this.pick(this.stages);
    const line = `FROM ${this.flags('FROM')}${base}${name ? ` ${this.pick(['AS', 'as', 'As'])} ${name}` : ''}`;
    if (name) this.stages.push(name);
    return line;
  }

  /** One of the inputs that broke hoist before: deep, long or many. */
  huge(): string {
    switch (this.int(12)) {
      case 0: { // nesting at and past the limit, over continuation lines
        const depth = MAX_NESTING - 2 + this.int(5) + (this.chance(0.3) ? 3000 : 0);
        return `FROM scratch\nENV a=${this.times(depth, (i) => `\${a:-${i % 100 === 99 ? '\\\n' : ''}`)}x${'}'.repeat(depth)}\n`;
      }
      case 1: { // variables doubling each other, to just past the expansion limit
        const doublings = Math.ceil(Math.log2(MAX_EXPANSION_LENGTH / 10)) + this.int(3) - 1;
        return `ARG a0=xxxxxxxxxx\n${this.times(doublings, (i) => `ARG a${i + 1}=$a${i}$a${i}\n`)}FROM scratch\nARG a${doublings}\nLABEL l=$a${doublings}\n`;
      }
      case 2: // a chain of stages
        return `FROM scratch AS s0\n${this.times(1000 + this.int(2500), (i) => `FROM s${i} AS s${i + 1}\n`)}`;
      case 3: // a line past BuildKit's limit, or just within it
        return `FROM scratch\nLABEL a=${'x'.repeat(MAX_LINE_BYTES - 10 + this.int(20))}\n`;
      case 4: // a long run of blanks inside a line, a continuation and a directive
        return `# syntax=${' '.repeat(30000)}x\nFROM scratch\nLABEL a="b${' '.repeat(30000)}c" \t\\\n d=e${' '.repeat(30000)}\n`;
      case 5: // many flags over many continuation lines
        return `FROM scratch\nCOPY ${this.times(20000, () => '--exclude=x \\\n')}a.txt /d/\n`;
      case 6: // a logical line of ONBUILDs
        return `FROM scratch\nONBUILD ${'ONBUILD \\\n'.repeat(20000)}RUN x\n`;
      case 7: // a pattern that backtracks exponentially in a RegExp
        return `FROM scratch\nARG V=${'a'.repeat(20000)}\nLABEL l=\${V##*a*a*a*a*b} m=\${V//*a*a*b/x}\n`;
      case 8: // many global ARGs, read by many stages
        return `${this.times(5000, (i) => `ARG g${i}=$g${Math.max(0, i - 1)}\n`)}${this.times(2000, (i) => `FROM \${g${i}:-scratch} AS s${i}\n`)}`;
      case 9: // many sources and many heredocs in one COPY
        return `FROM scratch\nCOPY ${this.times(30000, (i) => `f${i} \\\n`)}/d/\nCOPY ${this.times(2000, () => '<<E ')}/d/\n${'x\nE\n'.repeat(2000)}`;
      case 10: // long names in near-miss stage references
        return `FROM scratch AS ${'a'.repeat(30000)}\nFROM scratch\nCOPY --from=${'a'.repeat(29999)}b / /\n`;
      default: // a substitution that multiplies the value
        return `FROM scratch\nARG V=${'a'.repeat(5000)}\nLABEL l=\${V//?/${'b'.repeat(5000)}}\n`;
    }
  }

  /** Breaks the text: bytes in, spans out or repeated, lines swapped, continuations, directives. */
  mutate(text: string): string {
    const nasty = ['\0', '\r', '\t', '\v', '\f', '\u0085', '\u00a0', '\u2028', '\uFEFF', '\ud800', '😀', '\\', '`', '"', "'", '$', '{', '}', '[', ']', '<<', '--', '=', ',', '#', '\n', ' \\\n', 'ÿ', '\x1b[31m'];
    const at = this.int(text.length + 1);
    const span = this.int(20);
    switch (this.int(9)) {
      case 0:
      case 1:
        return text.slice(0, at) + this.times(1 + this.int(3), () => this.pick(nasty)) + text.slice(at);
      case 2:
        return text.slice(0, at) + text.slice(at + span);
      case 3:
        return text.slice(0, at) + text.slice(at, at + span).repeat(1 + this.int(50)) + text.slice(at);
      case 4: {
        const lines = text.split('\n');
        const [i, j] = [this.int(lines.length), this.int(lines.length)];
        [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        return lines.join('\n');
      }
      case 5:
        return text.replace(/\n/g, () => (this.chance(0.2) ? ' \\\n' : '\n'));
      case 6:
        return this.pick(['# escape=`\n', '# syntax=docker/dockerfile:1\n', '# check=skip=all\n', '\uFEFF', '# escape=`\n', '# escape=\\\n# escape=`\n', '#escape=x\n']) + text;
      case 7:
        return text.replace(/\n/g, '\r\n');
      default:
        return text.slice(0, at);
    }
  }

  /** Instruction words, blanks and odd characters in any order. */
  garbage(): string {
    const tokens = ['FROM', 'scratch', 'AS', 'COPY', 'RUN', 'ARG', 'ENV', 'ONBUILD', '--from=0', '<<EOF', 'EOF', '[', ']', '"', "'", '\\', '`', '${', '}', '$', ':-', '=', ' ', ' ', '\n', '\n', '\t', '\0', '\r', '#', '\uFEFF', '\ud800'];
    return this.times(this.int(200), () => this.pick(tokens));
  }

  dockerfile(): string {
    this.stages = [];
    if (this.chance(0.004)) return this.huge();
    if (this.chance(0.02)) return this.garbage();
    let text = this.times(this.int(3), () => `ARG ${this.variable()}=${this.word()}\n`);
    const stageCount = this.chance(0.02) ? 0 : 1 + this.int(3);
    for (let i = 0; i < stageCount; i++) {
      text += `${this.from()}\n`;
      text += this.times(this.int(6), () => `${this.instruction()}\n`);
    }
    if (this.chance(0.3)) for (let i = this.int(3); i >= 0; i--) text = this.mutate(text);
    return text;
  }

  options(): BuildOptions {
    const buildArgs = new Map<string, string>();
    for (let i = this.int(3); i > 0; i--) buildArgs.set(this.variable(), this.pick(['scratch', 's0', '1', '', 'a b', '${A}', 'x'.repeat(1000)]));
    const target = this.chance(0.8) || this.stages.length === 0 ? undefined : this.chance(0.9) ? this.pick(this.stages) : 'nope';
    const platform = this.chance(0.1) ? { os: 'linux', architecture: 'arm64', variant: 'v8' } : undefined;
    return { buildArgs, ...(target ? { target } : {}), ...(platform ? { platform } : {}) };
  }

  case(): Case {
    const text = this.dockerfile();
    return { text, options: this.options() };
  }
}

/**
 * What `hoist build` does with a Dockerfile before it reads any file (see build() and dispatch()
 * in builder/build.ts), for stages FROM scratch: parse, plan, expand each instruction of each
 * needed stage, resolve --from, read --chmod and EXPOSE, run the ONBUILD triggers of a stage base.
 * Clears `report.offline` when the CLI would pull an image, download or run a RUN step.
 */
function frontEnd({ text, options }: Case, report: { offline: boolean }): void {
  const dockerfile = parseInstructions(text);
  const plan = planBuild(dockerfile, options);
  unusedBuildArgs(plan);
  const triggers = new Map<number, string[]>();
  // The CLI builds stages side by side: every needed stage is looked at, and the first error thrown after.
  const errors: unknown[] = [];
  for (const index of plan.order) {
    try {
      stageFrontEnd(dockerfile, plan, index, triggers, report);
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length > 0) throw errors[0];
}

function stageFrontEnd(dockerfile: Dockerfile, plan: BuildPlan, index: number, triggers: Map<number, string[]>, report: { offline: boolean }): void {
  const planned = plan.stages[index]!;
  if (planned.base.kind === 'image') report.offline = false;
  const variables = new StageVariables(plan, []);
  for (const trigger of planned.base.kind === 'stage' ? (triggers.get(planned.base.index) ?? []) : []) {
    try {
      builderChecks(dockerfile, index, variables.expand(triggerInstruction(trigger)), triggers, report);
    } catch (error) {
      // As runTrigger() and locate() report them: at the FROM line.
      if (error instanceof DockerfileError || (error instanceof Error && error.constructor === Error)) {
        throw new BuildError(`ONBUILD ${trigger}: ${error.message}`, { file: 'Dockerfile', line: planned.stage.from.range.start.line });
      }
      throw error;
    }
  }
  for (const instruction of planned.stage.instructions) builderChecks(dockerfile, index, variables.expand(instruction), triggers, report);
}

/** dispatch()'s own reading of an expanded instruction; plain errors become BuildErrors at the line, as locate() makes them. */
function builderChecks(dockerfile: Dockerfile, index: number, instruction: Instruction, triggers: Map<number, string[]>, report: { offline: boolean }): void {
  const located = (read: () => unknown): void => {
    try {
      read();
    } catch (error) {
      const unlocated = error instanceof Error && (error.constructor === Error || (error instanceof BuildError && !error.location));
      if (unlocated) throw new BuildError(error.message, { file: 'Dockerfile', line: instruction.range.start.line });
      throw error;
    }
  };
  switch (instruction.kind) {
    case 'COPY':
    case 'ADD': {
      const from = instruction.kind === 'COPY' ? instruction.from : undefined;
      if (from !== undefined && resolveStageRef(dockerfile, from, index, instruction) === undefined) report.offline = false;
      if (instruction.sources.some((source) => /^[a-z]+:\/\/|^git@/.test(source))) report.offline = false;
      located(() => parseChmod(instruction.chmod));
      return;
    }
    case 'RUN':
      report.offline = false;
      for (const mount of instruction.mounts) if (mount.from !== undefined) resolveStageRef(dockerfile, mount.from, index, instruction);
      return;
    case 'EXPOSE':
      for (const port of instruction.ports) located(() => expandPortRange(port));
      return;
    case 'ONBUILD':
      triggers.set(index, [...(triggers.get(index) ?? []), instruction.expression]);
  }
}

type Outcome = 'accepted' | 'clean' | 'crash' | 'hang';

/** Whether an error is one the user should see: the project's, with a place in the file, and no JavaScript internals. */
function problemWith(error: unknown, text: string): string | undefined {
  if (!(error instanceof Error)) return `threw a non-Error: ${String(error)}`;
  if (INTERNAL.test(error.message)) return `internal error: ${error.stack}`;
  if (error instanceof DockerfileError) {
    if (!/^Dockerfile:\d+:\d+: /.test(error.summary) || error.summary.includes('\n')) return `not one located line: ${error.summary}`;
    if (error.position.line > Math.max(1, text.split('\n').length)) return `line ${error.position.line} is past the end: ${error.summary}`;
    if (error.message.length > 2000) return `a message of ${error.message.length} characters`;
    return undefined;
  }
  if (error instanceof BuildError && error.location) return undefined;
  // The one error about the options rather than the file.
  if (error.constructor === Error && error.message.startsWith('target stage ')) return undefined;
  return `${error.constructor.name}: ${error.stack}`;
}

const shown = (text: string): string => JSON.stringify(text.length > 2000 ? `${text.slice(0, 2000)}...(${text.length} characters)` : text);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-fuzz-'));
  for (const [path, content] of Object.entries(CONTEXT)) {
    mkdirSync(join(dir, 'context', path, '..'), { recursive: true });
    writeFileSync(join(dir, 'context', path), content);
  }
});
afterAll(() => removeTree(dir));

test(`${COUNT} generated Dockerfiles through the front end and a sample through hoist build (seed ${SEED})`, async () => {
  console.log(`fuzz seed ${SEED} (HOIST_FUZZ_SEED=${SEED} repeats this run), ${COUNT} cases`);
  const counts: Record<Outcome, number> = { accepted: 0, clean: 0, crash: 0, hang: 0 };
  const failures: string[] = [];
  // Cases the CLI can build without images, RUN or downloads: those the front end accepted, and those it refused.
  const offline: Record<'accepted' | 'clean', number[]> = { accepted: [], clean: [] };
  const started = performance.now();
  for (let i = 0; i < COUNT; i++) {
    const fuzzCase = new Generator(SEED, i).case();
    const begin = threadCpuMs();
    let outcome: Outcome = 'accepted';
    let problem: string | undefined;
    const report = { offline: true };
    try {
      frontEnd(fuzzCase, report);
    } catch (error) {
      problem = problemWith(error, fuzzCase.text);
      outcome = problem ? 'crash' : 'clean';
    }
    if (report.offline && (outcome === 'accepted' || outcome === 'clean')) offline[outcome].push(i);
    const took = threadCpuMs() - begin;
    if (took > HANG_MS) [outcome, problem] = ['hang', `took ${took.toFixed(0)} ms of CPU time`];
    counts[outcome]++;
    if (problem && failures.length < 5) failures.push(`case ${i} (HOIST_FUZZ_SEED=${SEED}): ${problem}\noptions: ${JSON.stringify({ ...fuzzCase.options, buildArgs: [...(fuzzCase.options.buildArgs ?? [])] })}\nDockerfile: ${shown(fuzzCase.text)}`);
  }
  const frontEndSeconds = ((performance.now() - started) / 1000).toFixed(1);

  // The sample: half of each, spread over the run.
  const spread = (cases: number[]): number[] => cases.filter((_, k) => k % Math.max(1, Math.floor((2 * cases.length) / CLI_SAMPLE)) === 0).slice(0, CLI_SAMPLE / 2);
  const sample = [...spread(offline.accepted), ...spread(offline.clean)];
  const { failures: cliFailures, built } = await runCli(sample);
  console.log(`fuzz: ${COUNT} cases in ${frontEndSeconds} s: ${counts.accepted} accepted, ${counts.clean} clean errors, ${counts.crash} crashes, ${counts.hang} hangs; `
    + `CLI: ${sample.length} run, ${built} built, ${cliFailures.length} failed (seed ${SEED})`);
  expect([...failures, ...cliFailures].join('\n\n')).toBe('');
}, 300_000);

/** Runs `hoist build` on each case, two at a time: exit 0, 1 or 2, no stack trace, errors at a line. */
async function runCli(cases: number[]): Promise<{ failures: string[]; built: number }> {
  const failures: string[] = [];
  let built = 0;
  const run = async (i: number): Promise<void> => {
    const { text, options } = new Generator(SEED, i).case();
    const file = join(dir, `case-${i}.Dockerfile`);
    writeFileSync(file, text);
    const args = ['build', '--root', join(dir, 'store'), '-f', file, '--progress', 'plain'];
    for (const [name, value] of options.buildArgs ?? []) args.push('--build-arg', `${name}=${value}`);
    if (options.target) args.push('--target', options.target);
    if (options.platform) args.push('--platform', 'linux/arm64/v8');
    const result = await hoistBuild([...args, join(dir, 'context')]);
    if (result.code === 0) built++;
    const located = new RegExp(`^(hoist: )?${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+(:\\d+)?: |^hoist: target stage `);
    const errorLine = result.stderr.split('\n').find((line) => located.test(line));
    const problem = result.code === null ? `killed after ${CLI_HANG_MS / 1000} s`
      : ![0, 1, 2].includes(result.code) ? `exit code ${result.code}`
      : /^\s+at .+[(:]\d+/m.test(result.stderr) ? 'a stack trace'
        : INTERNAL.test(result.stderr) ? 'an internal error'
          : result.code === 1 && !errorLine ? 'no error naming a line' : undefined;
    if (problem) failures.push(`CLI case ${i} (HOIST_FUZZ_SEED=${SEED}): ${problem}\nstderr: ${shown(result.stderr)}\nDockerfile: ${shown(text)}`);
  };
  const queue = [...cases];
  const worker = async (): Promise<void> => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) await run(i);
  };
  await Promise.all([worker(), worker()]);
  return { failures, built };
}

/** Runs bin/hoist as a user would, without HOIST_DEBUG's stack traces; killed (code null) when it hangs. */
function hoistBuild(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, HOIST_DEBUG: '', GITHUB_ACTIONS: '' };
    const child = spawn(join(repoRoot, 'bin', 'hoist'), args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: CLI_HANG_MS });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
