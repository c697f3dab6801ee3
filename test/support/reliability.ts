// Helpers for the reliability suites (test/reliability/): hoist runs that can be killed at a chosen
// moment, what a killed build may leave behind (processes, mounts), and whether a store is whole.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hashFile } from '../../builder/cache.ts';
import { isAlive, tempOwner } from '../../layers/store.ts';
import { waitUntil } from './load.ts';
import { repoRoot } from './paths.ts';
import { childrenOf } from './processes.ts';

// The suites take the builder's hashFile from here, with the other helpers.
export { hashFile };

/** What a store's root holds (layers/store.ts): anything else there is litter. */
export const STORE_ENTRIES = ['blobs', 'index.json', 'oci-layout', 'tmp', 'rootfs', 'cache', 'sources', 'listings'];

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A small seeded PRNG (mulberry32): the same seed gives the same kill moments. */
export function prng(seed: number): { next(): number; int(below: number): number; between(low: number, high: number): number } {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (below) => Math.floor(next() * below), between: (low, high) => low + next() * (high - low) };
}

/** A hoist process being watched: its output as it comes, and ways to end it as a CI runner would. */
export interface Watched {
  child: ChildProcess;
  /** The top process: bin/hoist execs the sandbox helper, which execs node, all in this pid. */
  pid: number;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (or signal) once the top process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once its output pipes are closed: by every process that holds them (the step's too). */
  closed: Promise<void>;
  done: boolean;
  /** Resolves when `pattern` is in stderr; rejects when the process ends first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<number>;
}

/**
 * Starts bin/hoist (or another command) in a process group of its own, as a CI runner starts a
 * job's step, so that the whole tree can be killed at once.
 */
export function watch(args: string[], options: { command?: string[]; env?: Record<string, string> } = {}): Watched {
  const command = options.command ?? [join(repoRoot, 'bin', 'hoist')];
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const watched: Watched = {
    child, pid: child.pid!, stdout: '', stderr: '', done: false,
    exited: new Promise((resolve) => child.on('exit', (code, signal) => {
      watched.done = true;
      resolve({ code, signal });
    })),
    closed: new Promise((resolve) => child.on('close', () => resolve())),
    waitFor: async (pattern, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (pattern.test(watched.stderr)) return Date.now();
        if (watched.done) throw new Error(`hoist ended before ${pattern} appeared:\n${watched.stderr}`);
        if (Date.now() > deadline) throw new Error(`${pattern} did not appear within ${timeoutMs} ms:\n${watched.stderr}`);
        await sleep(2);
      }
    },
  };
  child.stdout!.on('data', (chunk) => (watched.stdout += chunk));
  child.stderr!.on('data', (chunk) => (watched.stderr += chunk));
  return watched;
}

/** SIGKILL to the process group (every process of the job), or to the top process alone. */
export function kill(watched: Watched, how: 'group' | 'top'): void {
  try {
    process.kill(how === 'group' ? -watched.pid : watched.pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

export interface ProcessInfo {
  pid: number;
  cmdline: string;
}

const pids = (): number[] => readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);

/** Processes (other than this one) whose command line or environment holds any of `markers`. */
export function processesMentioning(markers: string[]): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      return '';
    }
  };
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    const cmdline = read(`/proc/${pid}/cmdline`);
    const environ = read(`/proc/${pid}/environ`);
    if (markers.some((marker) => cmdline.includes(marker) || environ.includes(marker))) found.push({ pid, cmdline });
  }
  // And their descendants, which may carry no marker (a step's processes whose environment never came).
  for (let i = 0; i < found.length; i++) {
    for (const child of childrenOf(found[i]!.pid)) {
      if (!found.some((known) => known.pid === child)) found.push({ pid: child, cmdline: read(`/proc/${child}/cmdline`) });
    }
  }
  return found.filter((info) => info.cmdline !== '');
}

/**
 * Mounts that name any of `markers` (as mount point or source), in the mount tables of every
 * process this user can read (its own namespaces, hoist's and a step's private ones).
 */
function mountsMentioning(markers: string[]): { pid: number; line: string }[] {
  const found: { pid: number; line: string }[] = [];
  for (const pid of [process.pid, ...pids()]) {
    let table: string;
    try {
      table = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    for (const line of table.split('\n')) if (markers.some((marker) => line.includes(marker))) found.push({ pid, line });
  }
  return found;
}

/**
 * Waits up to `timeoutMs` for every process mentioning `markers` to be gone; returns what was
 * seen right after the kill and what is left at the end (then SIGKILLed, so a failure cleans up).
 */
export async function waitForNoProcesses(markers: string[], timeoutMs: number): Promise<{ seen: ProcessInfo[]; left: ProcessInfo[]; waitedMs: number }> {
  const started = Date.now();
  const seen = processesMentioning(markers);
  let left = seen;
  while (left.length > 0 && Date.now() - started < timeoutMs) {
    await sleep(20);
    left = processesMentioning(markers);
  }
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, or not ours
    }
  }
  return { seen, left, waitedMs: Date.now() - started };
}

/**
 * The mounts naming `markers` that are still there after up to `timeoutMs`: a killed process's
 * namespaces, and the mounts in them, go a moment after its command line does.
 */
export async function waitForNoMounts(markers: string[], timeoutMs: number): Promise<{ pid: number; line: string }[]> {
  const started = Date.now();
  let mounts = mountsMentioning(markers);
  while (mounts.length > 0 && Date.now() - started < timeoutMs) {
    await sleep(20);
    mounts = mountsMentioning(markers);
  }
  return mounts;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

/**
 * What is wrong with a store (an empty list when nothing): every blob hashes to its name; index.json
 * parses, and every tagged manifest (or index) has all its blobs; cache records parse; no lock
 * file is left. `verified` remembers blobs already hashed (by name, inode, size and mtime).
 */
export function storeProblems(root: string, verified = new Set<string>()): string[] {
  const problems: string[] = [];
  const blobs = join(root, 'blobs', 'sha256');
  const names = new Set(readdirSync(blobs));
  for (const name of names) {
    const info = statSync(join(blobs, name));
    const id = `${name}:${info.ino}:${info.size}:${info.mtimeMs}`;
    if (verified.has(id)) continue;
    const actual = hashFile(join(blobs, name));
    if (actual !== name) problems.push(`blob ${name} hashes to ${actual}`);
    else verified.add(id);
  }
  const has = (digest: string): boolean => names.has(digest.replace(/^sha256:/, ''));
  const json = <T>(digest: string): T => JSON.parse(readFileSync(join(blobs, digest.replace(/^sha256:/, '')), 'utf8')) as T;
  const checkManifest = (descriptor: Descriptor, ref: string): void => {
    if (!has(descriptor.digest)) return void problems.push(`${ref}: manifest ${descriptor.digest} is missing`);
    const document = json<{ manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(descriptor.digest);
    for (const child of document.manifests ?? []) checkManifest(child, ref);
    for (const blob of [document.config, ...(document.layers ?? [])]) {
      if (blob && !has(blob.digest)) problems.push(`${ref}: blob ${blob.digest} (${blob.mediaType}) is missing`);
    }
  };
  let index: { manifests: Descriptor[] } | undefined;
  try {
    index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`index.json does not parse: ${(error as Error).message}`);
  }
  for (const descriptor of index?.manifests ?? []) checkManifest(descriptor, descriptor.annotations?.['org.opencontainers.image.ref.name'] ?? descriptor.digest);
  const records = join(root, 'cache', 'records');
  for (const name of readdirSafe(records)) {
    try {
      JSON.parse(readFileSync(join(records, name), 'utf8'));
    } catch (error) {
      problems.push(`cache record ${name} does not parse: ${(error as Error).message}`);
    }
  }
  if (readdirSync(root).includes('index.json.lock')) {
    problems.push(`lock file left: index.json.lock (${readFileSync(join(root, 'index.json.lock'), 'utf8').trim() || 'empty'})`);
  }
  return problems;
}

export function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** The tags in a store's index.json, with the manifest digest each names. */
export function storeTags(root: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(join(root, 'index.json'), 'utf8');
  } catch {
    return new Map();
  }
  const index = JSON.parse(text) as { manifests: Descriptor[] };
  return new Map(index.manifests.filter((d) => d.annotations?.['org.opencontainers.image.ref.name']).map((d) => [d.annotations!['org.opencontainers.image.ref.name']!, d.digest]));
}

/** Entries of STORE/tmp whose process is gone: the next open of the store removes them. */
export function deadTemps(root: string): string[] {
  return readdirSafe(join(root, 'tmp')).filter((name) => {
    const owner = tempOwner(name);
    return owner !== undefined && !isAlive(owner);
  });
}

/**
 * A user and mount namespace (made by hoist-sandbox enter, as bin/hoist makes hoist's) holding a
 * tmpfs of `sizeBytes` at `dir`: hoist runs inside it with nsenter, and the test reads and writes
 * the tmpfs through /proc/PID/root. The namespace, and the tmpfs, end with stop() or with the test.
 */
export interface TmpfsNamespace {
  pid: number;
  dir: string;
  /** The path of `path` (inside the namespace) as this process sees it. */
  outside(path: string): string;
  /** Runs a command inside the namespace as its root (hoist runs without entering another). */
  run(command: string[], options?: { env?: Record<string, string>; input?: string }): { code: number; stdout: string; stderr: string };
  /** Free bytes on the tmpfs (statfs). */
  free(): number;
  stop(): Promise<void>;
}

export async function startTmpfsNamespace(dir: string, sizeBytes: number): Promise<TmpfsNamespace> {
  const sandbox = join(repoRoot, 'userns-native', 'build', 'hoist-sandbox');
  // The holder lives while its standard input is open: it ends with the test, whatever happens.
  const holder = spawn(sandbox, ['enter', '--', 'sh', '-c', `mount -t tmpfs -o size=${sizeBytes} tmpfs "$0" && echo ready && exec cat >/dev/null`, dir], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  holder.stdout!.on('data', (chunk) => (output += chunk));
  holder.stderr!.on('data', (chunk) => (output += chunk));
  await waitUntil(() => {
    if (holder.exitCode !== null) throw new Error(`could not mount a tmpfs in a user namespace: ${output}`);
    return output.includes('ready');
  }, 'a tmpfs in a user namespace');
  // `cat` replaced the shell: the holder's pid is the namespace's.
  const pid = holder.pid!;
  const outside = (path: string): string => `/proc/${pid}/root${path}`;
  return {
    pid, dir, outside,
    run: (command, options = {}) => {
      const result = spawnSync('nsenter', ['-t', String(pid), '-U', '-m', '--', 'env', 'HOIST_USERNS=1', ...command], {
        cwd: '/', env: { ...process.env, ...options.env }, input: options.input ?? '', encoding: 'utf8', maxBuffer: 1 << 26,
      });
      if (result.error) throw result.error;
      return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
    },
    free: () => {
      const stats = statfsSync(outside(dir));
      return stats.bavail * stats.bsize;
    },
    stop: async () => {
      if (holder.exitCode !== null) return;
      holder.stdin!.end();
      await new Promise((resolve) => holder.once('exit', resolve));
    },
  };
}
