// BuildKit's own parser test data, run as it is (see ../shared/conformance/buildkit/FORMAT.md).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dumpTree } from '../../parser/dump.ts';
import { parseDockerfile } from '../../parser/syntax.ts';
import { DockerfileError } from '../../parser/errors.ts';
import { conformanceDir } from '../support/paths.ts';

const parserData = join(conformanceDir, 'frontend/dockerfile/parser');
const cases = readdirSync(join(parserData, 'testfiles'));
const negativeCases = readdirSync(join(parserData, 'testfiles-negative'));

describe('BuildKit parser testfiles', () => {
  test('all 33 cases are present', () => expect(cases).toHaveLength(33));

  test.each(cases)('%s dumps exactly as BuildKit', (name) => {
    const dockerfile = readFileSync(join(parserData, 'testfiles', name, 'Dockerfile'), 'utf8');
    const expected = readFileSync(join(parserData, 'testfiles', name, 'result'), 'utf8');
    expect(dumpTree(parseDockerfile(dockerfile).nodes)).toBe(expected);
  });
});

describe('BuildKit parser testfiles-negative', () => {
  test('all 4 cases are present', () => expect(negativeCases).toHaveLength(4));

  test.each(negativeCases)('%s is rejected', async (name) => {
    const dockerfile = readFileSync(join(parserData, 'testfiles-negative', name, 'Dockerfile'), 'utf8');
    const { parseInstructions } = await import('../../parser/index.ts');
    expect(() => parseInstructions(dockerfile)).toThrow(DockerfileError);
  });
});

test('line numbers match BuildKit testfile-line', () => {
  const dockerfile = readFileSync(join(parserData, 'testfile-line/Dockerfile'), 'utf8');
  const { nodes } = parseDockerfile(dockerfile);
  expect(nodes.map((node) => [node.range.start.line, node.range.end.line])).toEqual([[5, 5], [11, 12], [17, 31]]);
});
