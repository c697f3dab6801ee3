// Names a Dockerfile chooses never become host paths outside hoist's own directories.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { hoistOk, writeContext } from '../support/hoist.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-dockerfile-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('a heredoc named with ../ is written inside the build, and copied as BuildKit does', () => {
  const escape = join(dir, 'escaped');
  const name = `${'../'.repeat(12)}${escape.slice(1)}`;
  const context = writeContext(dir, 'context', { Dockerfile: `FROM scratch\nCOPY <<"${name}" /x\nhello\n${name}\n` });
  const out = join(dir, 'out');
  hoistOk(['build', '--root', join(dir, 'store'), '-o', `type=local,dest=${out}`, context]);
  expect(existsSync(escape)).toBe(false);
  expect(readFileSync(join(out, 'x'), 'utf8')).toBe('hello\n');
});
