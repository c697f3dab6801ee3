// Output destinations that are not regular files: a tarball is written into a device, a FIFO or
// through a symlink in place, never renamed over it; a directory output refuses a non-directory.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, lstatSync, mkdtempSync, openSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistAsync, hoistOk, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';

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

  test('-o - and type=tar write the file system as a tarball; dest=- writes an OCI tarball to standard output', () => {
    const toFile = (args: string[], file: string): { code: number | null; stderr: string } => {
      const fd = openSync(file, 'w');
      try {
        const result = spawnSync(join(repoRoot, 'bin', 'hoist'), build(...args), { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
        return { code: result.status, stderr: result.stderr };
      } finally {
        closeSync(fd);
      }
    };
    const piped = toFile(['-o', '-'], join(dir, 'fs.tar'));
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/^built sha256:/m);
    expect(execFileSync('tar', ['-tvf', join(dir, 'fs.tar')], { encoding: 'utf8' })).toMatch(/-rw-r--r-- .* 6 .* hello\.txt\n/);
    hoistOk(build('-o', `type=tar,dest=${join(dir, 'named.tar')}`));
    expect(execFileSync('tar', ['-xOf', join(dir, 'named.tar'), 'hello.txt'], { encoding: 'utf8' })).toBe('hello\n');
    expect(toFile(['-o', 'type=oci,dest=-'], join(dir, 'stdout.oci.tar')).code).toBe(0);
    expect(skopeoDigest(join(dir, 'stdout.oci.tar'))).toMatch(/^sha256:[0-9a-f]{64}$/);
    // A terminal gets no tarball (script gives hoist one).
    const terminal = spawnSync('script', ['-qec', `${join(repoRoot, 'bin', 'hoist')} ${build('-o', '-').join(' ')}`, '/dev/null'], { encoding: 'utf8' });
    expect(terminal.status).toBe(2);
    expect(terminal.stdout).toContain('refusing to write a tarball to a terminal');
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
