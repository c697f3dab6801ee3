// The thin TypeScript side of hoist-sandbox (see hoist-sandbox.c).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const helperPath = fileURLToPath(new URL('./build/hoist-sandbox', import.meta.url));

/** The sandbox helper's path; when it is not built (no C compiler at install), an error that says how to build it. */
export function helper(): string {
  if (!existsSync(helperPath)) {
    const build = fileURLToPath(new URL('./build.sh', import.meta.url));
    throw new Error(`hoist's sandbox helper, which RUN steps need, is not built (${helperPath}): install a C compiler (Debian/Ubuntu: apt-get install gcc libc6-dev), then run: sh ${build}`);
  }
  return helperPath;
}

export type IdMapping = 'host' | 'range' | 'single';

let mapping: IdMapping | undefined;

/**
 * The ids this process's user namespace maps, read once from the kernel: 'host' outside a user
 * namespace (or in one that maps every id as it is), 'single' when only one uid or one gid is
 * mapped (the user had no range in /etc/subuid and /etc/subgid: chown to another id fails, and
 * setgroups is denied), 'range' otherwise.
 */
export function idMapping(): IdMapping {
  mapping ??= readIdMapping();
  return mapping;
}

function readIdMapping(): IdMapping {
  // Each line of a map: the first id inside, the first id outside, how many.
  const maps = ['uid_map', 'gid_map'].map((name) => readFileSync(`/proc/self/${name}`, 'utf8').trim().split('\n').map((line) => line.trim().split(/\s+/).map(Number)));
  if (maps.every((lines) => lines.length === 1 && lines[0]!.join(' ') === '0 0 4294967295')) return 'host';
  return maps.some((lines) => lines.reduce((total, [, , count]) => total + count!, 0) === 1) ? 'single' : 'range';
}

/** A mount inside the step's root, at a target that exists there (a file or a directory). */
export type SandboxMount =
  | { type: 'bind'; source: string; target: string; readonly?: boolean }
  | { type: 'tmpfs'; target: string; sizeBytes?: number };

export interface StepOptions {
  /**
   * The root filesystem: an overlay of lower layer directories (topmost first) under a fresh upper
   * dir, mounted on the empty directory `rootfs`; or `rootfs` itself, filled by the caller; or, in
   * place, this process's own root, with no namespaces, no mounts and no network of the step's own
   * (`rootfs` then unused).
   */
  root: { overlay: { lower: string[]; upper: string; work: string } } | { copied: true } | { inPlace: true };
  rootfs: string;
  /** Host files and directories bound over paths of the root filesystem (`/etc/hosts`...), and tmpfs mounts, in order. */
  mounts: SandboxMount[];
  hostname: string;
  cwd: string;
  uid: number;
  gid: number;
  groups: number[];
  /** KEY=VALUE entries: they reach the helper on a pipe, as every local user can read its command line. */
  env: string[];
  network: 'host' | 'none';
  /** /dev/shm's size in bytes (64 MiB when not given), as `docker build --shm-size` sets it. */
  shmSize?: number;
  /** Resource limits, `NAME=SOFT:HARD` (`nofile=1024:2048`), as `docker build --ulimit` sets them. */
  ulimits?: string[];
  argv: string[];
  /** Called with each chunk the step writes, stdout and stderr as they come. */
  output: (chunk: Buffer) => void;
  /** Aborting kills the step and everything in it. */
  signal?: AbortSignal;
}

export interface StepResult {
  exitCode?: number;
  signal?: number;
  /** The kernel refused the overlay mount: the caller may run the step on a copied root. */
  noOverlay?: boolean;
}

/** Runs one RUN step in its sandbox and reports how its command ended. */
export function runStep(options: StepOptions): Promise<StepResult> {
  const root = 'overlay' in options.root
    ? [...options.root.overlay.lower.flatMap((dir) => ['--lower', dir]), '--upper', options.root.overlay.upper, '--work', options.root.overlay.work]
    : 'copied' in options.root ? ['--copied-root', 'yes'] : ['--in-place', 'yes'];
  const args = [
    'run', '--rootfs', options.rootfs, ...root,
    '--hostname', options.hostname, '--cwd', options.cwd, '--uid', String(options.uid), '--gid', String(options.gid),
    '--network', options.network, '--status-fd', '3', '--env-fd', '4',
    ...options.groups.flatMap((group) => ['--group', String(group)]),
    ...(options.shmSize ? ['--shm-size', String(options.shmSize)] : []), ...(options.ulimits ?? []).flatMap((limit) => ['--rlimit', limit]),
    ...options.mounts.flatMap((mount) => (mount.type === 'bind'
      ? [mount.readonly ? '--ro-bind' : '--bind', mount.source, mount.target]
      : ['--tmpfs', mount.target, String(mount.sizeBytes ?? 0)])),
    '--', ...options.argv,
  ];
  for (const entry of options.env) if (entry.includes('\0')) throw new Error(`an environment variable cannot hold a NUL byte: ${entry.split('=')[0]}`);
  // The helper and the step's pid 1 get no environment of hoist's: the step could read theirs.
  return new Promise((resolve, reject) => {
    // In place, the helper ends the step and what it started on SIGTERM; a sandbox ends with its pid 1.
    const killSignal = 'inPlace' in options.root ? 'SIGTERM' : 'SIGKILL';
    const child = spawn(helper(), args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: {}, signal: options.signal, killSignal });
    let status = '';
    // A helper that fails before reading its environment is reported when it exits.
    child.stdio[4]!.on('error', () => undefined);
    (child.stdio[4] as Writable).end(options.env.map((entry) => `${entry}\0`).join(''));
    child.stdout!.on('data', options.output);
    child.stderr!.on('data', options.output);
    child.stdio[3]!.on('data', (chunk: Buffer) => (status += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (/^no-overlay$/m.test(status)) return resolve({ noOverlay: true });
      const match = /^(exit|signal) (\d+)$/m.exec(status);
      if (!match) return reject(new Error(`the sandbox failed before the command ran (exit code ${code})`));
      resolve(match[1] === 'exit' ? { exitCode: Number(match[2]) } : { signal: Number(match[2]) });
    });
  });
}

/** Why the helper cannot set a RUN sandbox up here (what it printed), or undefined when it can. */
export function probeSandbox(): Promise<string | undefined> {
  if (!existsSync(helperPath)) return Promise.resolve(`the sandbox helper is not built (${helperPath})`);
  return new Promise((resolve, reject) => {
    const child = spawn(helperPath, ['probe'], { stdio: ['ignore', 'ignore', 'pipe'], env: {} });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve(code === 0 ? undefined : errors.trim().replace(/^hoist-sandbox: /, '') || `the probe exited ${code}`));
  });
}

/** Extended attributes by absolute path: of everything under a directory, or of the paths listed. */
export function readXattrs(where: string | string[]): Promise<Map<string, Record<string, Buffer>>> {
  return new Promise((resolve, reject) => {
    const listed = Array.isArray(where);
    const child = spawn(helper(), listed ? ['xattrs-of'] : ['xattrs', where], { stdio: [listed ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (listed) child.stdin!.end(where.map((path) => `${path}\0`).join(''));
    const chunks: Buffer[] = [];
    let errors = '';
    child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => (errors += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(errors.trim() || `hoist-sandbox xattrs exited ${code}`));
      const fields = Buffer.concat(chunks).toString('latin1').split('\0');
      const result = new Map<string, Record<string, Buffer>>();
      for (let i = 0; i + 2 < fields.length; i += 3) {
        const path = Buffer.from(fields[i]!, 'latin1').toString('utf8');
        const record = result.get(path) ?? {};
        record[fields[i + 1]!] = Buffer.from(fields[i + 2]!, 'hex');
        result.set(path, record);
      }
      resolve(result);
    });
  });
}

/** Sets extended attributes: [absolute path, name, value] records. */
export function writeXattrs(records: [string, string, Buffer][]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(helper(), ['setxattrs'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(errors.trim() || `hoist-sandbox setxattrs exited ${code}`))));
    child.stdin.end(Buffer.concat(records.flatMap(([path, name, value]) => [Buffer.from(`${path}\0${name}\0${value.toString('hex')}\0`)])));
  });
}
