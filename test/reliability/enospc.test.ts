// A full disk: the store (and TMPDIR) on a small tmpfs, mounted in a user and mount namespace of
// the test's own (hoist-sandbox enter, as bin/hoist makes hoist's), and hoist run inside it. The
// disk is filled to a chosen level with a filler file, so that hoist meets ENOSPC in each phase:
// pulling, writing a COPY layer, a RUN step that writes until the disk is full, writing index.json
// for a tag (and its lock), and writing a cache record. After each failure: hoist says in one line,
// without a stack trace, that the disk is full and where; no lock is left (the next tag takes the
// lock at once); then, with the filler removed, the next build works and the store is whole.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { acquireLock } from '../../layers/index.ts';
import { hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import { deadTemps, hashFile, readdirSafe, startTmpfsNamespace, STORE_ENTRIES, storeProblems, storeTags, type TmpfsNamespace } from '../support/reliability.ts';

const SIZE = 48 << 20;
const PAGE = 4096;

let dir: string;
let registry: Registry;
let ns: TmpfsNamespace;
/** The tmpfs, as hoist sees it inside the namespace; `store` is on it. */
let mnt: string;
let store: string;
/** The store as this process sees it (through /proc/PID/root). */
let outside: string;
let bigRef: string;
let bigHash: string;

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** hoist inside the namespace: HOIST_USERNS is set there, so bin/hoist does not enter another. */
function hoistIn(args: string[]): { code: number; stdout: string; stderr: string } {
  return ns.run([join(repoRoot, 'bin', 'hoist'), ...args], { env: { TMPDIR: join(mnt, 'tmp') } });
}

function hoistInOk(args: string[]): { stdout: string; stderr: string } {
  const run = hoistIn(args);
  if (run.code !== 0) throw new Error(`hoist ${args.join(' ')} exited ${run.code}:\n${run.stderr}`);
  return run;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-enospc-'));
  mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  ns = await startTmpfsNamespace(mnt, SIZE);
  store = join(mnt, 'store');
  outside = ns.outside(store);
  mkdirSync(ns.outside(join(mnt, 'tmp')));
  registry = await startRegistry();
  const busybox = makeBusyboxLayout(join(dir, 'busybox'));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${busybox}:latest`, `docker://${registry.host}/base/busybox:1`]);
  // A base of 8 MiB random bytes on the registry, built and pushed by hoist from a store on the disk.
  const base = writeContext(dir, 'base', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nCOPY rand /rand\n` });
  const rand = randomBytes(8 << 20);
  writeFileSync(join(base, 'rand'), rand);
  bigHash = sha256(rand);
  bigRef = `${registry.host}/base/big:1`;
  hoistOk(['build', '--root', join(dir, 'setup-store'), '-t', bigRef, '--push', base]);
  hoistInOk(['load', '--root', store, '-t', 'busybox', `${busybox}:latest`]);
  hoistInOk(['load', '--root', store, '-t', 'victim:1', `${busybox}:latest`]);
}, 120_000);

afterAll(async () => {
  console.log(`ENOSPC messages:\n${messages.join('\n')}`);
  await ns?.stop();
  await registry?.stop();
  if (dir) removeTree(dir);
});

let fillers = 0;
/** What hoist said in each phase, printed at the end. */
const messages: string[] = [];

/** Fills the tmpfs with a file of zeros until `leave` bytes (whole pages) are free; returns its path. */
function fill(leave: number): string {
  const path = ns.outside(join(mnt, `filler-${fillers++}`));
  let bytes = Math.floor((ns.free() - leave) / PAGE) * PAGE;
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'w');
  try {
    while (bytes > 0) bytes -= writeSync(fd, chunk, 0, Math.min(bytes, chunk.length));
  } finally {
    closeSync(fd);
  }
  expect(ns.free(), 'the filler leaves what was asked').toBe(leave);
  return path;
}

const blobCount = (): number => readdirSafe(join(outside, 'blobs', 'sha256')).length;
const recordCount = (): number => readdirSafe(join(outside, 'cache', 'records')).length;

/**
 * The failure is one clear line that says the disk is full and where (the store, or the file
 * system that holds it), and there is no stack trace.
 */
function expectDiskFullMessage(phase: string, stderr: string, options: { dockerfileLine?: number } = {}): void {
  const errors = stderr.split('\n').filter((line) => line.startsWith('hoist: '));
  expect(errors, stderr).toHaveLength(1);
  const [line] = errors as [string];
  messages.push(`${phase}: ${line}`);
  // A step's failure names its line of the Dockerfile (and is not hidden by a later one).
  if (options.dockerfileLine) expect.soft(line, 'the failure names the Dockerfile line').toMatch(new RegExp(`^hoist: Dockerfile:${options.dockerfileLine}: `));
  // ENOSPC was met: no other failure is taken for it.
  expect(line).toMatch(/no space left on device|disk is full|ENOSPC/i);
  expect.soft(line, 'the message says the disk is full').toMatch(/disk is full|no space left/i);
  expect.soft(line, 'the message says where: the store or the file system that holds it').toContain(mnt);
  expect.soft(stderr, 'no stack trace').not.toMatch(/^\s+at /m);
}

/**
 * After a failure: no lock is left, and once the fillers are gone a tag (index.json under its lock)
 * takes the lock at once; the store is whole once the next build has opened it.
 */
function expectNoLockLeft(): void {
  const locks = readdirSync(outside).filter((name) => name.startsWith('index.json.lock'));
  expect.soft(locks.map((name) => `${name}: "${readFileSync(join(outside, name), 'utf8')}"`), 'lock files left by the failure').toEqual([]);
  // A failed hoist (unlike a killed one) removes its own temp files: on a full disk they hold space.
  expect.soft(deadTemps(outside), 'temp files the failed hoist left in the store').toEqual([]);
}

function freeAll(paths: string[]): void {
  for (const path of paths) if (existsSync(path)) unlinkSync(path);
}

/**
 * The store's lock is free, or held only by a dead process: hoist's lock code takes it without
 * waiting (a lock it cannot read would make it wait for the lock to age; a live owner, for ever).
 */
async function expectTagTakesLockAtOnce(): Promise<void> {
  const release = await acquireLock(join(outside, 'index.json.lock'), { waitMs: 0, what: 'the store' });
  expect(release, 'a tag after the failure would wait for the lock').toBeDefined();
  await release!();
  // rmi of a name that is not there still rewrites index.json under the lock.
  const probe = hoistIn(['rmi', '--root', store, 'lock-probe:none']);
  expect(probe.stderr).toContain('no image named lock-probe:none');
}

function expectStoreWhole(): void {
  expect(storeProblems(outside)).toEqual([]);
  expect(deadTemps(outside), 'temp files of dead processes, after the next build').toEqual([]);
  expect(readdirSync(outside).filter((name) => !STORE_ENTRIES.includes(name))).toEqual([]);
}

/** A context on the ordinary disk (read from inside the namespace, which sees it too). */
const context = (name: string, files: Record<string, string | Buffer>): string => {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  for (const [file, content] of Object.entries(files)) writeFileSync(join(path, file), content);
  return path;
};
const localDest = (name: string): string => join(dir, 'out', `${name}-${randomBytes(4).toString('hex')}`);

describe('a full disk', () => {
  test('while pulling the base image', async () => {
    const ctx = context('pull', { Dockerfile: `FROM ${bigRef}\nENV PULLED=1\n` });
    const filler = fill(2 << 20);
    try {
      const failed = hoistIn(['build', '--root', store, ctx]);
      expect(failed.code, failed.stderr).toBe(1);
      // In the pull: it had started, the base was not tagged, the next step did not start.
      expect(failed.stderr).toContain(`pulling ${bigRef}`);
      expect(failed.stderr).not.toMatch(/\[stage-0 2\/2\]/);
      expect(storeTags(outside).has(bigRef)).toBe(false);
      expectDiskFullMessage('pull', failed.stderr, { dockerfileLine: 1 });
      expectNoLockLeft();
    } finally {
      freeAll([filler]);
    }
    await expectTagTakesLockAtOnce();
    const dest = localDest('pull');
    hoistInOk(['build', '--root', store, '--output', `type=local,dest=${dest}`, ctx]);
    expect(hashFile(join(dest, 'rand'))).toBe(bigHash);
    expect(storeTags(outside).has(bigRef)).toBe(true);
    expectStoreWhole();
  });

  test('while writing a COPY layer', async () => {
    const big = randomBytes(8 << 20);
    const ctx = context('copy', { Dockerfile: 'FROM busybox\nCOPY big /big\n', big });
    const filler = fill(2 << 20);
    try {
      const failed = hoistIn(['build', '--root', store, ctx]);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain('COPY big /big');
      expect(failed.stderr).not.toContain('DONE');
      expectDiskFullMessage('COPY layer write', failed.stderr, { dockerfileLine: 2 });
      expectNoLockLeft();
    } finally {
      freeAll([filler]);
    }
    await expectTagTakesLockAtOnce();
    const dest = localDest('copy');
    hoistInOk(['build', '--root', store, '--output', `type=local,dest=${dest}`, ctx]);
    expect(hashFile(join(dest, 'big'))).toBe(sha256(big));
    expectStoreWhole();
  });

  test('by a RUN step that writes until the disk is full', async () => {
    const ctx = context('run', { Dockerfile: 'FROM busybox\nRUN head -c 104857600 /dev/zero > /big\n' });
    const failed = hoistIn(['build', '--root', store, ctx]);
    expect(failed.code, failed.stderr).toBe(1);
    // The step's own words are only an I/O error (busybox head) or ENOSPC.
    expect(failed.stderr).toMatch(/I\/O error|No space left on device/);
    expectDiskFullMessage('RUN', failed.stderr, { dockerfileLine: 2 });
    const line = failed.stderr.split('\n').find((text) => text.startsWith('hoist: '))!;
    expect(line).toContain('disk is full');
    expect(line).toContain(store);
    expect(line).toMatch(/\d+ bytes free/);
    expect(line).toContain('RUN exited with code 1');
    expectNoLockLeft();
    // hoist removed what the step wrote.
    expect(ns.free()).toBeGreaterThan(SIZE / 2);
    await expectTagTakesLockAtOnce();
    const dest = localDest('run');
    hoistInOk(['build', '--root', store, '--output', `type=local,dest=${dest}`, context('run-ok', { Dockerfile: 'FROM busybox\nRUN echo ok > /ok.txt\n' })]);
    expect(readFileSync(join(dest, 'ok.txt'), 'utf8')).toBe('ok\n');
    expectStoreWhole();
  });

  test('while writing index.json for a tag', async () => {
    const ctx = context('tag', { Dockerfile: 'FROM busybox\nENV TAGGED=1\n' });
    hoistInOk(['build', '--root', store, ctx]);
    // A new label makes a new config and manifest (a page each), the lock takes a page: index.json's
    // temp file finds none.
    const blobs = blobCount();
    const filler = fill(3 * PAGE);
    try {
      const failed = hoistIn(['build', '--root', store, '--label', 'tagged=1', '-t', 'tagged:1', ctx]);
      expect(failed.code, failed.stderr).toBe(1);
      // In the tag: the image was written, it was not tagged.
      expect(blobCount(), 'the image was written').toBe(blobs + 2);
      expect([...storeTags(outside).keys()].some((tag) => tag.includes('tagged:1'))).toBe(false);
      expectDiskFullMessage('index.json write', failed.stderr);
      expectNoLockLeft();
    } finally {
      freeAll([filler]);
    }
    await expectTagTakesLockAtOnce();
    hoistInOk(['build', '--root', store, '--label', 'tagged=1', '-t', 'tagged:1', ctx]);
    expect([...storeTags(outside).keys()].some((tag) => tag.includes('tagged:1'))).toBe(true);
    expectStoreWhole();
  });

  test('while taking the lock for a tag (no page free at all)', async () => {
    const filler = fill(0);
    try {
      const failed = hoistIn(['rmi', '--root', store, 'victim:1']);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).not.toContain('Untagged');
      expect([...storeTags(outside).keys()].some((tag) => tag.includes('victim:1'))).toBe(true);
      expectDiskFullMessage('lock write', failed.stderr);
      expectNoLockLeft();
    } finally {
      freeAll([filler]);
    }
    // An empty lock left behind made every later tag wait 31 s: this one must not.
    await expectTagTakesLockAtOnce();
    const removed = hoistIn(['rmi', '--root', store, 'victim:1']);
    expect(removed.code, removed.stderr).toBe(0);
    expectStoreWhole();
  });

  test('while writing the cache record of a step', async () => {
    const small = `small ${randomBytes(8).toString('hex')}\n`;
    const ctx = context('cache', { Dockerfile: 'FROM busybox\nCOPY small /small\n', small });
    const [blobs, records] = [blobCount(), recordCount()];
    // The layer (one page) fits; its cache record does not.
    const filler = fill(PAGE);
    try {
      const failed = hoistIn(['build', '--root', store, ctx]);
      expect(failed.code, failed.stderr).toBe(1);
      expect(blobCount(), 'the layer was written').toBe(blobs + 1);
      expect(recordCount(), 'no record was kept').toBe(records);
      expectDiskFullMessage('cache record write', failed.stderr, { dockerfileLine: 2 });
      expectNoLockLeft();
    } finally {
      freeAll([filler]);
    }
    await expectTagTakesLockAtOnce();
    const dest = localDest('cache');
    hoistInOk(['build', '--root', store, '-t', 'cached:1', '--output', 'type=image', '--output', `type=local,dest=${dest}`, ctx]);
    expect(readFileSync(join(dest, 'small'), 'utf8')).toBe(small);
    expect(recordCount()).toBeGreaterThan(records);
    // And the step is a cache hit from now on.
    expect(hoistInOk(['build', '--root', store, ctx]).stderr).toContain('CACHED');
    expectStoreWhole();
  });
});
