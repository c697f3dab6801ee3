// BuildKit's own test data, run as it is: the parser's testfiles (as BuildKit's
// parser/parser_test.go reads them) and the shell lexer's envVarTest and wordsTest (shell/lex_test.go).
// The data is BuildKit's, not ours, so it is not in this repository: buildkitTestData (support/paths.ts)
// finds a BuildKit checkout. Without one these tests are skipped, and one line on stderr says so.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dumpTree } from '../../parser/dump.ts';
import { DockerfileError } from '../../parser/errors.ts';
import { expandWord, expandWords, ShellExpansionError, type Env } from '../../parser/shell.ts';
import { parseDockerfile } from '../../parser/syntax.ts';
import { BUILDKIT_COMMIT, buildkitTestData as data } from '../support/paths.ts';

if (data === undefined) {
  // Straight to stderr, not console.warn: vitest's default reporter shows it as this one line.
  process.stderr.write(
    `BuildKit conformance tests skipped (no test data): to run them, check out https://github.com/moby/buildkit at commit ${BUILDKIT_COMMIT} ` +
      'and set HOIST_BUILDKIT_TESTDATA to the checkout\'s top directory (the one holding frontend/dockerfile/).\n',
  );
}

/** A data file, by its path under frontend/dockerfile/ in the BuildKit checkout; '' without the data. */
const read = (path: string): string => (data ? readFileSync(join(data, 'frontend/dockerfile', path), 'utf8') : '');
const list = (path: string): string[] => (data ? readdirSync(join(data, 'frontend/dockerfile', path)) : []);

const cases = list('parser/testfiles');
const negativeCases = list('parser/testfiles-negative');

describe.skipIf(!data)('BuildKit parser testfiles', () => {
  test('all 33 cases are present', () => expect(cases).toHaveLength(33));

  test.each(cases)('%s dumps exactly as BuildKit', (name) => {
    const expected = read(`parser/testfiles/${name}/result`);
    expect(dumpTree(parseDockerfile(read(`parser/testfiles/${name}/Dockerfile`)).nodes)).toBe(expected);
  });
});

describe.skipIf(!data)('BuildKit parser testfiles-negative', () => {
  test('all 4 cases are present', () => expect(negativeCases).toHaveLength(4));

  test.each(negativeCases)('%s is rejected', async (name) => {
    const dockerfile = read(`parser/testfiles-negative/${name}/Dockerfile`);
    const { parseInstructions } = await import('../../parser/index.ts');
    expect(() => parseInstructions(dockerfile)).toThrow(DockerfileError);
  });
});

test.skipIf(!data)('line numbers match BuildKit testfile-line', () => {
  const { nodes } = parseDockerfile(read('parser/testfile-line/Dockerfile'));
  expect(nodes.map((node) => [node.range.start.line, node.range.end.line])).toEqual([[5, 5], [11, 12], [17, 31]]);
});

function expectError(run: () => unknown): void {
  expect(run).toThrow(ShellExpansionError);
}

describe.skipIf(!data)('BuildKit envVarTest', () => {
  const env: Env = new Map([
    ['PWD', '/home'],
    ['SHELL', 'bash'],
    ['KOREAN', '한국어'],
    ['NULL', ''],
  ]);
  const rows: [number, string, string][] = [];
  let windowsOnly = 0;
  read('shell/envVarTest')
    .split('\n')
    .forEach((line, i) => {
      if (line.startsWith('#') || line.trim() === '') return;
      const fields = line.split('|').map((f) => f.trim());
      if (fields.length !== 3) throw new Error(`envVarTest line ${i + 1}: expected 3 fields: ${line}`);
      const [platform, input, expected] = fields;
      if (platform === 'W') windowsOnly++;
      else if (platform === 'A' || platform === 'U') rows.push([i + 1, input, expected]);
      else throw new Error(`envVarTest line ${i + 1}: bad platform ${platform}`);
    });

  test('has the expected number of Linux rows', () => {
    expect(rows).toHaveLength(228);
    expect(windowsOnly).toBe(2);
  });

  test.each(rows)('line %i: %s', (_line, input, expected) => {
    if (expected === 'error') expectError(() => expandWord(input, env));
    else expect(expandWord(input, env)).toBe(expected);
  });
});

describe.skipIf(!data)('BuildKit wordsTest', () => {
  const rows: [number, string, string[], Env][] = [];
  const env = new Map<string, string>();
  read('shell/wordsTest')
    .split('\n')
    .forEach((line, i) => {
      if (line.startsWith('#') || line === '') return;
      if (line.startsWith('ENV ')) {
        const assignment = line.slice(3).trimStart();
        const eq = assignment.indexOf('=');
        env.set(assignment.slice(0, eq), assignment.slice(eq + 1));
        return;
      }
      const fields = line.split('|');
      if (fields.length !== 2) throw new Error(`wordsTest line ${i + 1}: expected exactly one |: ${line}`);
      rows.push([i + 1, fields[0].trim(), fields[1].trimStart().split(','), new Map(env)]);
    });

  test('has the expected number of rows', () => {
    expect(rows).toHaveLength(24);
  });

  test.each(rows)('line %i: %s', (_line, input, expected, rowEnv) => {
    if (expected.length === 1 && expected[0] === 'error') expectError(() => expandWords(input, rowEnv));
    else expect(expandWords(input, rowEnv)).toEqual(expected);
  });
});
