// Inputs that once crashed or hung the front end: each is now accepted quickly or refused with a
// located one-line error, within a named limit where a limit is the honest answer.
import { describe, expect, test } from 'vitest';
import { expandPortRange, triggerInstruction } from '../../builder/build.ts';
import { DockerfileError, expandWord, parseInstructions, planBuild, StageVariables, type Instruction } from '../../parser/index.ts';
import { MAX_EXPANSION_LENGTH, MAX_NESTING } from '../../parser/shell.ts';
import { MAX_LINE_BYTES } from '../../parser/syntax.ts';
import { cpuTimed } from '../support/load.ts';

/** Parses, plans and expands every needed stage, as `hoist build` does before it reads files. */
function frontEnd(text: string): Instruction[] {
  const plan = planBuild(parseInstructions(text));
  return plan.order.flatMap((index) => {
    const variables = new StageVariables(plan, []);
    return plan.stages[index]!.stage.instructions.map((instruction) => variables.expand(instruction));
  });
}

function errorOf(text: string): DockerfileError {
  try {
    frontEnd(text);
  } catch (error) {
    if (error instanceof DockerfileError) return error;
    throw error;
  }
  throw new Error('expected a DockerfileError');
}

/**
 * Runs `run` and fails when it takes more than `ms` of CPU time (what was quadratic or worse took
 * minutes); CPU time, not the clock, so that a loaded machine does not fail it.
 */
function quick<T>(ms: number, run: () => T): T {
  const { result, cpuMs } = cpuTimed(run);
  expect(cpuMs).toBeLessThan(ms);
  return result;
}

const lines = (count: number, line: (i: number) => string): string => Array.from({ length: count }, (_, i) => line(i)).join('');

describe('refused with a located error', () => {
  test('a Dockerfile of global ARGs only has no stage to build', () => {
    expect(errorOf('ARG X=1\n').summary).toBe('Dockerfile:1:1: the Dockerfile has no stages to build: it needs a FROM');
  });

  test('${...} nested past MAX_NESTING, over continuation lines', () => {
    const word = (depth: number) => `${lines(depth, (i) => `\${a:-${i % 50 === 49 ? '\\\n' : ''}`)}x${'}'.repeat(depth)}`;
    expect(frontEnd(`FROM scratch\nENV a=${word(MAX_NESTING)}\n`)[0]).toMatchObject({ pairs: [{ key: 'a', value: 'x' }] });
    for (const depth of [MAX_NESTING + 1, 20_000]) {
      expect(errorOf(`FROM scratch\nENV a=${word(depth)}\n`).summary).toMatch(/^Dockerfile:2:1: failed to process "\$\{a:-.*\$\{\.\.\.\} nested more than 256 deep \(hoist's limit\)$/);
    }
  });

  test('variables that double each other, past MAX_EXPANSION_LENGTH', () => {
    const text = `ARG a=xxxxxxxxxx\n${lines(8, (i) => `ARG ${'bcdefghi'[i]}=${`$${'abcdefgh'[i]}`.repeat(10)}\n`)}FROM scratch\n`;
    const error = quick(2000, () => errorOf(text));
    expect(error.summary).toBe(`Dockerfile:8:1: failed to process "$g$g$g$g$g$g$g$g$g$g": expands to more than ${MAX_EXPANSION_LENGTH} characters (hoist's limit)`);
  });

  test('a substitution that multiplies its value past MAX_EXPANSION_LENGTH', () => {
    const text = `FROM scratch\nARG V=${'a'.repeat(5000)}\nLABEL l=\${V//?/${'b'.repeat(5000)}}\n`;
    expect(quick(2000, () => errorOf(text)).message).toMatch(/expands to more than 16777216 characters \(hoist's limit\)$/);
  });

  test('a line longer than BuildKit reads', () => {
    const label = (bytes: number) => `FROM scratch\nLABEL a=${'é'.repeat((bytes - 'LABEL a='.length) / 2)}\n`;
    expect(frontEnd(label(MAX_LINE_BYTES - 1))).toHaveLength(1);
    const error = errorOf(label(MAX_LINE_BYTES + 1));
    expect(error.summary).toBe('Dockerfile:2:1: the line is longer than 65535 bytes, the most BuildKit reads');
    // The line is shown cut to a window around the column.
    expect(error.format().split('\n').map((line) => line.length).every((length) => length < 200)).toBe(true);
  });

  test('a logical line of ONBUILDs is refused at the second one, without recursing', () => {
    expect(errorOf(`FROM scratch\nONBUILD ${'ONBUILD \\\n'.repeat(20_000)}RUN x\n`).summary).toBe(
      'Dockerfile:2:9: chaining ONBUILD via `ONBUILD ONBUILD` is not allowed',
    );
  });

  test('a circular dependency names its place', () => {
    expect(errorOf('FROM scratch AS one\nCOPY --from=two /x /x\nFROM scratch AS two\nCOPY --from=one /y /y\n').summary).toBe(
      'Dockerfile:3:1: circular dependency between stages: two -> one -> two',
    );
  });

  test('flags that are properties of every object are unknown flags', () => {
    expect(errorOf('FROM --constructor=x scratch\n').summary).toBe('Dockerfile:1:6: unknown flag: --constructor (FROM takes --platform)');
    expect(errorOf('FROM scratch\nCOPY --__proto__=x a /b\n').summary).toMatch(/^Dockerfile:2:6: unknown flag: --__proto__ /);
  });

  test('messages stay on one line and within bounds, whatever they quote', () => {
    const control = errorOf('FROM scratch\nCOPY <<EOF /x\n${\n}\nEOF\n');
    expect(control.summary).toBe('Dockerfile:2:1: failed to process "${\\n}\\n": unsupported modifier (\\n) in substitution');
    const long = errorOf(`FROM scratch\n${'X'.repeat(50_000)} y\n`);
    expect(long.summary).toMatch(/^Dockerfile:2:1: unknown instruction: X{400,}\.\.\.\(49\d\d\d characters\)\.\.\.X{400,}$/);
    expect(long.summary.length).toBeLessThan(1100);
  });
});

describe('accepted, in time that grows no faster than the input', () => {
  test('a chain of 3,000 stages', () => {
    const text = `FROM scratch AS s0\n${lines(3000, (i) => `FROM s${i} AS s${i + 1}\n`)}`;
    expect(quick(2000, () => planBuild(parseInstructions(text))).order).toHaveLength(3001);
  });

  test('patterns that backtrack exponentially as a RegExp', () => {
    const value = 'a'.repeat(20_000);
    const env = new Map([['V', value]]);
    expect(quick(1000, () => expandWord('${V##*a*a*a*a*b}', env))).toBe(value);
    expect(quick(1000, () => expandWord('${V%%a*a*a*a*}', env))).toBe('');
    expect(quick(1000, () => expandWord('${V//*a*a*b/x}', env))).toBe(value);
  });

  test('long runs of blanks, many flags, continuation lines, global ARGs and sources', () => {
    quick(2000, () => parseInstructions(`# syntax=${' '.repeat(60_000)}x\nFROM scratch\nLABEL a="b${' '.repeat(60_000)}c" \t\\\n d=e${' '.repeat(60_000)}\n`));
    const copy = quick(2000, () => frontEnd(`FROM scratch\nCOPY ${'--exclude=x \\\n'.repeat(50_000)}${lines(100_000, (i) => `f${i} \\\n`)}/d/\n`));
    expect(copy[0]).toMatchObject({ exclude: { length: 50_000 }, sources: { length: 100_000 } });
    const args = `${lines(10_000, (i) => `ARG g${i}=${i}\n`)}${lines(3000, (i) => `FROM \${g${i}:+scratch} AS s${i}\n`)}`;
    expect(quick(2000, () => planBuild(parseInstructions(args))).stages).toHaveLength(3000);
  });

  test('a near miss of a very long stage name', () => {
    const text = `FROM scratch AS ${'a'.repeat(30_000)}\nFROM scratch\nCOPY --from=${'a'.repeat(29_999)}b / /\n`;
    expect(quick(1000, () => planBuild(parseInstructions(text))).stages[1]!.dependencies).toEqual([]);
  });
});

describe('what the builder reads itself', () => {
  test('EXPOSE ports are 0 to 65535, as in BuildKit', () => {
    expect(expandPortRange('65534-65535/UDP')).toEqual(['65534/udp', '65535/udp']);
    for (const spec of ['1-100000000', '65536', '-1', '8000-7000', '1-2-3', 'x']) expect(() => expandPortRange(spec)).toThrow(`invalid port "${spec}" in EXPOSE`);
  });

  test('an ONBUILD trigger of an image must be one instruction other than FROM', () => {
    expect(triggerInstruction('COPY a /b')).toMatchObject({ kind: 'COPY', sources: ['a'] });
    for (const trigger of ['', '# nothing', 'FROM alpine', 'LABEL a=1\nLABEL b=2']) {
      expect(() => triggerInstruction(trigger)).toThrow(`ONBUILD ${trigger}: a trigger must be one instruction, not FROM`);
    }
    expect(() => triggerInstruction('RUNN x')).toThrow(DockerfileError);
  });
});
