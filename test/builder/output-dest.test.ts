// Output destinations that are not regular files: a tarball is written into a device, a FIFO or
// through a symlink in place, never renamed over it; a directory output refuses a non-directory.
import { execFileSync, spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistAsync, hoistOk, writeContext } from '../support/hoist.ts';

let dir: string;
let context: string;
let root: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-outputs-'));
  context = writeContext(dir, 'context', { Dockerfile: 'FROM scratch\nCOPY hello.txt /\n', 'hello.txt': 'hello\n' });
  root = join(dir, 'store');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const build = (...args: string[]): string[] => ['build', '--root', root, ...args, context];
const skopeoDigest = (archive: string): string => JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${archive}`], { encoding: 'utf8' })).Digest;

describe('output destinations', () => {
  test('/dev/null stays a device for type=oci, type=docker, save, --iidfile and --metadata-file', () => {
    const before = statSync('/dev/null');
    hoistOk(build('-t', 'out:1', '-o', 'type=oci,dest=/dev/null', '-o', 'type=docker,dest=/dev/null', '-o', 'type=image', '--iidfile', '/dev/null', '--metadata-file', '/dev/null'));
    hoistOk(['save', '--root', root, '-o', '/dev/null', 'out:1']);
    const after = statSync('/dev/null');
    expect(after.isCharacterDevice()).toBe(true);
    expect(after.rdev).toBe(before.rdev);
  });

  test('a FIFO receives the tarball and stays a FIFO', async () => {
    const fifo = join(dir, 'out.fifo');
    const captured = join(dir, 'captured.tar');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('sh', ['-c', `cat "${fifo}" > "${captured}"`]);
    const read = new Promise((resolve) => reader.on('close', resolve));
    const run = await hoistAsync(build('-o', `type=oci,dest=${fifo}`));
    await read;
    expect(run.code, run.stderr).toBe(0);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(skopeoDigest(captured)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test('a symlink is written through, not replaced; a regular file is replaced whole', () => {
    const real = join(dir, 'real.tar');
    const link = join(dir, 'link.tar');
    hoistOk(build('-o', `type=oci,dest=${real}`));
    symlinkSync(real, link);
    hoistOk(build('-o', `type=oci,dest=${link}`));
    expect(readlinkSync(link)).toBe(real);
    expect(skopeoDigest(link)).toBe(skopeoDigest(real));
  });

  test('a directory output refuses a non-directory, a tarball refuses a directory, before building', () => {
    for (const [spec, message] of [
      ['type=local,dest=/dev/null', '/dev/null exists and is not a directory'],
      ['/dev/null', '/dev/null exists and is not a directory'],
      ['type=oci,tar=false,dest=/dev/null', '/dev/null exists and is not a directory'],
      [`type=oci,dest=${dir}`, `${dir} is a directory: a tarball needs a file`],
      [`type=docker,dest=${dir}`, `${dir} is a directory: a tarball needs a file`],
    ]) {
      const run = hoist(build('-o', spec!));
      expect(run.code, spec).toBe(2);
      expect(run.stderr).toContain(message);
      expect(run.stderr).not.toContain('COPY');
    }
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
  });
});
