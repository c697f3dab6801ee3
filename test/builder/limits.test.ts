// `hoist build` on inputs that once crashed it: a build, or one located error line and exit 1;
// never a stack trace or a JavaScript error.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { planCopy } from '../../builder/copy.ts';
import { hoist, removeTree, writeContext, type Run } from '../support/hoist.ts';
import { threadCpuMs } from '../support/load.ts';

let dir: string;
let context: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-limits-'));
  context = writeContext(dir, 'context', { 'a.txt': 'a\n' });
});
afterAll(() => removeTree(dir));

function build(name: string, dockerfile: string): Run & { file: string } {
  const file = join(dir, `${name}.Dockerfile`);
  writeFileSync(file, dockerfile);
  return { ...hoist(['build', '--root', join(dir, 'store'), '-f', file, context]), file };
}

/** The error line of a failed build, checked to be the only sign of the failure. */
function failure(run: Run): string {
  expect(run.code).toBe(1);
  expect(run.stderr).not.toMatch(/^\s+at |TypeError|RangeError|Cannot read properties|Maximum call stack/m);
  return run.stderr.trimEnd().split('\n').filter((line) => !line.startsWith('[') && !/^ *\d* \| /.test(line)).at(-1)!;
}

test('COPY plans a source of 80,000 path parts in time that grows with its length', async () => {
  // In CPU time, which a loaded machine does not stretch: a quadratic plan took minutes.
  const started = threadCpuMs();
  const source = `${'a/'.repeat(80_000)}x`;
  const options = { root: context, sources: [source], dest: '/d/', workdir: '/', parents: false, exclude: [], createdDirMtime: 0 };
  await expect(planCopy(options)).rejects.toThrow(/^file not found: stat a\/a\/a\//);
  expect(threadCpuMs() - started).toBeLessThan(2000);
});

test('a command named like a property of every object is an unknown command', () => {
  for (const name of ['constructor', '__proto__']) {
    expect(hoist([name])).toMatchObject({ code: 2, stderr: `hoist: unknown command "${name}" (see 'hoist --help')\n` });
  }
});

describe('hoist build', () => {
  test('builds a chain of 3,000 stages', () => {
    const run = build('chain', `FROM scratch AS s0\n${Array.from({ length: 3000 }, (_, i) => `FROM s${i} AS s${i + 1}\n`).join('')}`);
    expect(run.stderr).toContain('[s3000 3001/3001] FROM s2999 AS s3000');
    expect(run.code).toBe(0);
  });

  test('names the line of an error in the front end', () => {
    const noStage = build('no-stage', 'ARG X=1\n');
    expect(failure(noStage)).toBe(`${noStage.file}:1:1: the Dockerfile has no stages to build: it needs a FROM`);
    const nested = build('nested', `FROM scratch\nENV a=${'${a:-'.repeat(300)}x${'}'.repeat(300)}\n`);
    expect(failure(nested)).toMatch(new RegExp(`^${nested.file}:2:1: failed to process ".*nested more than 256 deep \\(hoist's limit\\)$`));
    const doubled = build('doubled', `ARG a=xxxxxxxxxx\n${[...'bcdefghi'].map((name, i) => `ARG ${name}=${`$${'abcdefgh'[i]}`.repeat(10)}\n`).join('')}FROM scratch\n`);
    expect(failure(doubled)).toMatch(new RegExp(`^${doubled.file}:8:1: failed to process ".*": expands to more than 16777216 characters \\(hoist's limit\\)$`));
  });

  test('names the line of an error while building', () => {
    const expose = build('expose', 'FROM scratch\nEXPOSE 1-100000000\n');
    expect(failure(expose)).toBe(`hoist: ${expose.file}:2: invalid port "1-100000000" in EXPOSE`);
    const deep = build('deep', `FROM scratch\nWORKDIR /${'a/'.repeat(20_000)}\n`);
    expect(failure(deep)).toMatch(new RegExp(`^hoist: ${deep.file}:2: /a/a/.*\\.\\.\\.: the path is longer than 4095 bytes \\(Linux's PATH_MAX\\)$`));
    // A trigger's error is reported at the FROM line that runs it.
    const trigger = build('trigger', 'FROM scratch AS base\nONBUILD COPY ${X:?unset} /x\nFROM base\n');
    expect(failure(trigger)).toBe(`hoist: ${trigger.file}:3: ONBUILD COPY \${X:?unset} /x: failed to process "\${X:?unset}": X: unset`);
  });
});
