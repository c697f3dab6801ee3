// The sandbox helper through runStep, in a user namespace as hoist makes one: paths that hold ':'
// and ',', more mounts and groups than it once took, no_new_privs by the step's user, and the id
// mapping read from the kernel.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { helperPath, idMapping, type SandboxMount, type StepOptions, type StepResult } from '../../userns-native/index.ts';
import { removeTree } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';

/** Runs inside the namespace: runs the step given on its input, if any, and prints what came of it. */
const DRIVER = `
const { idMapping, runStep } = await import(process.argv[2]);
let input = '';
for await (const chunk of process.stdin) input += chunk;
let output = '';
const result = input ? await runStep({ ...JSON.parse(input), output: (chunk) => (output += chunk) }) : undefined;
console.log(JSON.stringify({ mapping: idMapping(), result, output }));
`;

const COUNT = 300;
const APPLETS = ['sh', 'cat', 'grep', 'seq', 'id'];

type Step = Omit<StepOptions, 'output' | 'signal'>;
interface Ran { mapping: string; result?: StepResult; output: string }

let dir: string;
/** The step's root: busybox, and below it the mount points, each an overlay layer whose path holds ':' and ','. */
let lowers: string[];
let steps = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-sandbox-'));
  writeFileSync(join(dir, 'driver.mjs'), DRIVER);
  const base = join(dir, 'layer:base,1');
  mkdirSync(join(base, 'bin'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(base, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(base, 'bin', applet));
  const points = join(dir, 'layer:points,2');
  for (const path of ['proc', 'dev', 'mnt/a:b,c', ...Array.from({ length: COUNT }, (_, i) => [`b/${i}`, `t/${i}`]).flat()]) mkdirSync(join(points, path), { recursive: true });
  writeFileSync(join(points, 'mnt', 'ro:file'), '');
  lowers = [base, points];
});
afterAll(() => removeTree(dir));

/** A step as root on a fresh upper dir, its own directories' paths holding ':' and ',' too. */
function step(overrides: Partial<Step>): Step {
  const at = join(dir, `step:${steps++},x`);
  for (const name of ['upper', 'work', 'rootfs']) mkdirSync(join(at, name), { recursive: true });
  return {
    root: { overlay: { lower: lowers, upper: join(at, 'upper'), work: join(at, 'work') } }, rootfs: join(at, 'rootfs'),
    mounts: [], hostname: 'sandbox', cwd: '/', uid: 0, gid: 0, groups: [], env: ['PATH=/bin'], network: 'none', argv: ['true'],
    ...overrides,
  };
}

/**
 * Runs `step` with runStep in hoist's user namespace (entered as bin/hoist does, over the user's
 * subuid range), or in one that maps only the user's own ids (`unshare --map-root-user`).
 */
function inNamespace(namespace: 'hoist' | 'single', step?: Step): Ran {
  const enter = namespace === 'hoist' ? [helperPath, 'enter', '--'] : ['unshare', '--map-root-user', '--'];
  const index = pathToFileURL(join(repoRoot, 'userns-native', 'index.ts')).href;
  const result = spawnSync(enter[0]!, [...enter.slice(1), process.execPath, join(dir, 'driver.mjs'), index], { input: step ? JSON.stringify(step) : '', encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`the driver exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Ran;
}

test("binds whose source and target hold ':' and ',', on an overlay whose layer, upper and work dirs hold them too", () => {
  const source = join(dir, 'source:dir,1');
  mkdirSync(source);
  writeFileSync(join(source, 'file'), 'through a colon\n');
  const file = join(dir, 'read:only,file');
  writeFileSync(file, 'read-only\n');
  const mounts: SandboxMount[] = [{ type: 'bind', source, target: '/mnt/a:b,c' }, { type: 'bind', source: file, target: '/mnt/ro:file', readonly: true }];
  const ran = inNamespace('hoist', step({ mounts, argv: ['sh', '-c', 'cat /mnt/a:b,c/file /mnt/ro:file && { echo changed 2>/dev/null > /mnt/ro:file || echo refused; }'] }));
  expect(ran.result).toEqual({ exitCode: 0 });
  expect(ran.output).toBe('through a colon\nread-only\nrefused\n');
});

test(`${COUNT} binds, ${COUNT} tmpfs mounts and ${COUNT} groups, more than the helper once took: every one is there`, () => {
  const mounts: SandboxMount[] = [];
  for (let i = 0; i < COUNT; i++) {
    const source = join(dir, 'many', String(i));
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'name'), `${i}\n`);
    mounts.push({ type: 'bind', source, target: `/b/${i}`, readonly: true }, { type: 'tmpfs', target: `/t/${i}`, ...(i % 2 ? {} : { sizeBytes: (i + 1) * 4096 }) });
  }
  const groups = Array.from({ length: COUNT }, (_, i) => i + 1);
  const script = [
    `for i in $(seq 0 ${COUNT - 1}); do cat /b/$i/name; done`,
    'grep -c " /t/[0-9]* .* - tmpfs " /proc/self/mountinfo',
    'grep " /t/2 " /proc/self/mountinfo',
    'grep "^Groups:" /proc/self/status',
  ].join('\n');
  const ran = inNamespace('hoist', step({ mounts, groups, argv: ['sh', '-c', script] }));
  expect(ran.result).toEqual({ exitCode: 0 });
  const lines = ran.output.trimEnd().split('\n');
  expect(lines.slice(0, COUNT)).toEqual(groups.map((group) => String(group - 1)));
  expect(lines[COUNT]).toBe(String(COUNT));
  // The size given in bytes, as the kernel shows it: (2 + 1) * 4096 bytes.
  expect(lines[COUNT + 1]).toContain('size=12k');
  expect(lines[COUNT + 2]!.split(/\s+/).slice(1).filter(Boolean).map(Number)).toEqual(groups);
});

test('no_new_privs is set for a step as root, and not for a step with a non-root user (which sudo, su or ping may need)', () => {
  const argv = ['grep', 'NoNewPrivs', '/proc/self/status'];
  expect(inNamespace('hoist', step({ argv })).output).toBe('NoNewPrivs:\t1\n');
  expect(inNamespace('hoist', step({ argv, uid: 1000, gid: 1000 })).output).toBe('NoNewPrivs:\t0\n');
});

test("idMapping: 'host' outside a user namespace, 'range' in hoist's, 'single' where only the user's ids are mapped, where a step still runs", () => {
  expect(idMapping()).toBe('host');
  expect(inNamespace('hoist').mapping).toBe('range');
  // There setgroups is denied: the helper sees it in the namespace's gid_map and goes on without.
  const single = inNamespace('single', step({ argv: ['id', '-u'] }));
  expect(single).toEqual({ mapping: 'single', result: { exitCode: 0 }, output: '0\n' });
});
