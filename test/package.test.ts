// The npm package as a user gets it: `npm pack` of a copy of the checkout, `npm install -g` of the
// tarball into a temporary prefix with the Node in use, then the installed `hoist` run by the
// unprivileged test user.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBusyboxLayout, removeTree, writeContext, type Run } from './support/hoist.ts';
import { repoRoot } from './support/paths.ts';

const name = 'hoist-builder';
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
// The tests run under npx, whose npm_* settings must not reach the user's npm and hoist.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('npm_')));

let dir: string;
let tarballFiles: string[];
let prefix: string;
let installed: string;

function run(command: string, args: string[], cwd = dir, extraEnv: Record<string, string> = {}): Run {
  const result = spawnSync(command, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.error) throw result.error;
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function ok(command: string, args: string[], cwd = dir, extraEnv: Record<string, string> = {}): Run {
  const result = run(command, args, cwd, extraEnv);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
  return result;
}

/** The Node at `path` when it is older than hoist needs (Debian's is), else undefined. */
function oldNode(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const [major, minor] = ok(path, ['-p', 'process.versions.node']).stdout.trim().split('.').map(Number);
  return major! < 22 || (major === 22 && minor! < 18) ? path : undefined;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-package-'));
  // The checkout may not be the test user's to write in (prepack compiles next to the sources):
  // pack a copy of it, holding tests and a helper built on this machine that must stay out.
  const checkout = join(dir, 'checkout');
  for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'attest', 'bin', 'builder', 'layers', 'parser', 'registry', 'userns-native', 'test']) {
    cpSync(join(repoRoot, entry), join(checkout, entry), { recursive: true });
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(checkout, 'node_modules'));
  mkdirSync(join(checkout, 'userns-native', 'build'), { recursive: true });
  writeFileSync(join(checkout, 'userns-native', 'build', 'hoist-sandbox'), 'the packer\'s own helper\n');
  const [packed] = JSON.parse(ok('npm', ['pack', '--json', '--pack-destination', dir], checkout).stdout) as { filename: string; files: { path: string }[] }[];
  tarballFiles = packed!.files.map((file) => file.path);
  prefix = join(dir, 'prefix');
  const tarball = join(dir, packed!.filename);
  // Newer npm runs a package's install script (which builds the helper) only when allowed.
  ok('npm', ['install', '--global', '--prefix', prefix, `--allow-scripts=${tarball}`, '--prefer-offline', '--no-audit', '--no-fund', tarball]);
  installed = join(prefix, 'lib', 'node_modules', name);
}, 90_000);
afterAll(() => removeTree(dir));

describe('the npm package', () => {
  test('holds the compiled JavaScript, the helper\'s C source and build script, and nothing else', () => {
    expect(tarballFiles).toEqual(expect.arrayContaining(['bin/hoist', 'builder/main.js', 'userns-native/index.js', 'userns-native/hoist-sandbox.c', 'userns-native/build.sh', 'README.md', 'package.json']));
    expect(tarballFiles.filter((path) => path.startsWith('test/') || path.startsWith('userns-native/build/') || path.endsWith('.ts'))).toEqual([]);
  });

  test('installs a `hoist` command that prints its version', () => {
    expect(ok(join(prefix, 'bin', 'hoist'), ['--version']).stdout.trim()).toBe(`hoist ${version}`);
  });

  test('builds FROM scratch with a COPY, and RUN with the helper built at install', () => {
    const hoist = join(prefix, 'bin', 'hoist');
    const store = join(dir, 'store');
    const copied = join(dir, 'copied');
    ok(hoist, ['build', '--root', store, '--output', `type=local,dest=${copied}`, writeContext(dir, 'copy', { Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\n', 'a.txt': 'copied\n' })]);
    expect(readFileSync(join(copied, 'a.txt'), 'utf8')).toBe('copied\n');

    expect(existsSync(join(installed, 'userns-native', 'build', 'hoist-sandbox'))).toBe(true);
    const ran = join(dir, 'ran');
    ok(hoist, [
      'build', '--root', store, '--build-context', `base=oci-layout://${makeBusyboxLayout(join(dir, 'busybox'))}:latest`, '--output', `type=local,dest=${ran}`,
      writeContext(dir, 'run', { Dockerfile: 'FROM base\nRUN id -u > /uid\n' }),
    ]);
    expect(readFileSync(join(ran, 'uid'), 'utf8')).toBe('0\n');
  });

  test('RUN without the helper says how to build it, and that command builds it', () => {
    const helper = join(installed, 'userns-native', 'build', 'hoist-sandbox');
    const moved = join(dir, 'hoist-sandbox');
    renameSync(helper, moved);
    // In hoist's user namespace already (entered with the moved helper), so that RUN needs the helper itself.
    const failed = run(moved, ['enter', '--', join(prefix, 'bin', 'hoist'), 'build', '--root', join(dir, 'no-helper-store'), '--build-context', `base=oci-layout://${join(dir, 'busybox')}:latest`,
      writeContext(dir, 'no-helper', { Dockerfile: 'FROM base\nRUN true\n' })]);
    expect(failed.code).not.toBe(0);
    const build = join(installed, 'userns-native', 'build.sh');
    expect(failed.stderr).toContain(`then run: sh ${build}`);
    ok('sh', [build]);
    expect(existsSync(helper)).toBe(true);
  });

  test('with an old Node, says in one line which Node it needs', ({ skip }) => {
    const node = oldNode('/usr/bin/node');
    skip(!node, 'no Node older than 22.18 at /usr/bin/node');
    // `node` on PATH is the old one: what the user's shell finds first.
    const result = run(join(installed, 'bin', 'hoist'), ['--version'], dir, { PATH: `${dirname(node!)}:/usr/bin:/bin` });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^hoist needs Node 22\.18 or newer \(this is Node v\d+\.\d+\.\d+\): [^\n]+\n$/);
  });

  test('in a clone, runs with the Node that setup.sh installed when the system\'s is too old', ({ skip }) => {
    const node = oldNode('/usr/bin/node');
    skip(!node || !existsSync(join(repoRoot, '.node')), 'no Node older than 22.18 at /usr/bin/node, or no .node/ from setup.sh');
    expect(ok(join(repoRoot, 'bin', 'hoist'), ['--version'], dir, { PATH: `${dirname(node!)}:/usr/bin:/bin` }).stdout.trim()).toBe(`hoist ${version}`);
  });
});
