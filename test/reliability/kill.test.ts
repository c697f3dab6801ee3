// A kill loop: hoist is SIGKILLed, as a CI runner cancelling a job kills it, at a random moment of
// each phase of a build (pulling the base from a registry, a RUN step, writing a layer, pushing,
// tagging; and a RUN step's first milliseconds), five to ten times per phase, the whole process
// group or the top process alone.
// After each kill: no process of the build is left, nor a mount of it, the store is whole (every
// blob hashes to its name, every tag's blobs are there, no lock blocks: the next tag takes it at
// once), and the next build in the same store works and gives the right image. The moments come
// from a seeded PRNG: the seed is printed, and HOIST_KILL_SEED=N repeats a run.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { acquireLock } from '../../layers/index.ts';
import { hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';
import { childrenOf } from '../support/processes.ts';
import { startRegistry, type Registry } from '../support/registry.ts';
import {
  deadTemps, hashFile, kill, prng, processesMentioning, readdirSafe, sleep, STORE_ENTRIES, storeProblems, storeTags, waitForNoMounts, waitForNoProcesses, watch,
  type ProcessInfo, type Watched,
} from '../support/reliability.ts';

const seed = Number(process.env.HOIST_KILL_SEED ?? Math.floor(Math.random() * 2 ** 32));
const random = prng(seed);
/** In every command line and step environment of this run: what a left-over process is known by. */
const token = `hoist-kill-${randomBytes(6).toString('hex')}`;
const TAGS = 150;

/**
 * `run-start` is a RUN step's first milliseconds, from the sandbox helper's start to its command's:
 * the helper and the step's pid 1 must die with hoist even then. `run` is the step running.
 */
type Phase = 'pull' | 'run-start' | 'run' | 'layer' | 'push' | 'tag';
const PHASES: Phase[] = ['pull', 'run-start', 'run', 'layer', 'push', 'tag'];
/** Kills per phase: more where the window is short and the top process alone is what matters. */
const KILLS: Record<Phase, { top: number; group: number }> = {
  pull: { top: 2, group: 3 }, 'run-start': { top: 8, group: 2 }, run: { top: 2, group: 3 }, layer: { top: 2, group: 3 }, push: { top: 2, group: 3 }, tag: { top: 2, group: 3 },
};
const helper = join(repoRoot, 'userns-native', 'build', 'hoist-sandbox');
/** How long what dies with hoist may take to be gone, on a loaded machine: only a failure waits it out. */
const GONE_MS = 30_000;

let dir: string;
let registry: Registry;
let root: string;
const verified = new Set<string>();
/** The layer phase's 30 MiB file. */
let bigHash: string;

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** A file of `size` bytes, half random and half text, so that gzip has work to do. */
function bigFile(path: string, size: number): string {
  const half = randomBytes(size / 2);
  const data = Buffer.concat([half, Buffer.from(half.toString('base64').slice(0, size / 2))]);
  writeFileSync(path, data);
  return sha256(data);
}

/** Random 24 MiB base images on the registry, one per pull attempt: each pull has all its bytes to fetch. */
const bases: { ref: string; sha256: string }[] = [];

/** Builds and pushes a new base image, from a store of its own. */
function newBase(): number {
  const i = bases.length;
  const ctx = writeContext(dir, `base-${i}`, { Dockerfile: `FROM ${registry.host}/base/busybox:1\nCOPY rand /rand\n` });
  const hash = bigFile(join(ctx, 'rand'), 24 << 20);
  const ref = `${registry.host}/base/big-${i}:1`;
  hoistOk(['build', '--root', join(dir, 'base-store'), '-t', ref, '--push', ctx]);
  bases.push({ ref, sha256: hash });
  return i;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-kill-'));
  root = join(dir, 'store');
  registry = await startRegistry();
  const busybox = makeBusyboxLayout(join(dir, 'busybox'));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${busybox}:latest`, `docker://${registry.host}/base/busybox:1`]);
  writeContext(dir, 'run', {
    Dockerfile: [
      `FROM ${registry.host}/base/busybox:1`, 'ARG N=0', 'ARG NONCE=none',
      `RUN echo "run-started $NONCE" && i=0 && while [ $i -lt $N ]; do head -c 262144 /dev/urandom > /chunk-$i; sleep 0.1; i=$((i+1)); done && echo "$NONCE" > /done.txt && echo "run-finished $NONCE"`,
      '',
    ].join('\n'),
  });
  const layer = writeContext(dir, 'layer', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nCOPY big /big\n` });
  bigHash = bigFile(join(layer, 'big'), 30 << 20);
  writeContext(dir, 'tag', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nENV TAGGED=1\n` });
  // Quiet while it runs, and needing no variable: a step left behind by a dead hoist is not ended by
  // writing to its closed pipe, nor by an environment hoist died before sending.
  writeContext(dir, 'run-start', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nARG NONCE=none\nRUN sleep 10 && echo "$NONCE" > /done.txt\n` });
  writeContext(dir, 'run-start-next', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nARG NONCE=none\nRUN sleep 0 && echo "$NONCE" > /done.txt\n` });
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  if (dir) removeTree(dir);
});

/** hoist's environment: the token marks hoist's own processes (node's environment). */
const env = { HOIST_RELIABILITY_TOKEN: token };

interface Attempt {
  phase: Phase;
  how: 'group' | 'top';
  delayMs: number;
  inPhase: boolean;
  evidence: string;
  /** Processes of the build still there right after the kill, and after the wait. */
  seen: ProcessInfo[];
  left: ProcessInfo[];
  leftMounts: number;
  locks: string[];
  temps: number;
  litter?: string[];
}

/** What the top of a store holds (layers/store.ts, layers/cache.ts, the RUN steps' root dirs). */
/** Left-over entries already reported (each is reported once, by the kill that left it). */
const litterSeen = new Set<string>();

/** What one phase's killed build and its next build are. */
interface PhasePlan {
  /** Starts the build that is killed, attempt `n`. */
  start(n: number): Watched;
  /** Resolves once the build is in the phase. */
  entered(w: Watched, n: number): Promise<void>;
  /** Resolves once the build has left the phase (for calibration). */
  left(w: Watched, n: number): Promise<void>;
  /** After the kill: whether it came inside the phase, and how that is known. */
  judge(w: Watched, n: number): Promise<{ inPhase: boolean; evidence: string }>;
  /** The next build in the store: it must work and give the right image. */
  verify(n: number): Promise<void>;
  /** The calibration build is killed once the phase has been timed (it would run long). */
  killAfterCalibration?: boolean;
  /** Kill moments lean to the start of the phase (the delay is the phase's length times r²). */
  early?: boolean;
}

/** Lets the event loop run (output, exits) without the millisecond a timer costs. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A child of `pid` that is the sandbox helper running a step (`hoist-sandbox run`). */
function sandboxChild(pid: number): number | undefined {
  return childrenOf(pid).find((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith(`${helper}\0run\0`);
    } catch {
      return false; // gone
    }
  });
}

const localOutput = (name: string): string => join(dir, 'out', `${name}-${randomBytes(4).toString('hex')}`);
const stepMarker = (phase: string, n: number): string => `${token}-${phase}-${n}`;

/** A build with -t and an image output besides a local one, so that every next build also tags. */
function verifyBuild(args: string[], name: string): { dest: string; stderr: string } {
  const dest = localOutput(name);
  const run = hoistOk(['build', '--root', root, '-t', `verify/${name}:1`, '--output', 'type=image', '--output', `type=local,dest=${dest}`, ...args], { env });
  return { dest, stderr: run.stderr };
}

async function registryGet(path: string, method = 'GET'): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(`http://${registry.host}/v2/${path}`, {
    method, headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

const attemptBase = new Map<number, number>();

const plans: Record<Phase, PhasePlan> = {
  pull: {
    start: (n) => {
      const base = newBase();
      attemptBase.set(n, base);
      const ctx = writeContext(dir, `pull-${n}`, { Dockerfile: `FROM ${bases[base]!.ref}\nENV PULLED=${n}\n` });
      return watch(['build', '--root', root, ctx], { env });
    },
    entered: async (w) => void (await w.waitFor(/^pulling /m)),
    left: async (w) => void (await w.waitFor(/^\[stage-0 2\/2\]/m)),
    // Pulled is tagged: a kill in the pull leaves the base untagged, its next step not started.
    judge: async (w, n) => {
      const temps = readdirSafe(join(root, 'tmp')).filter((name) => name.startsWith(`blob-${w.pid}-`)).length;
      const tagged = storeTags(root).has(bases[attemptBase.get(n)!]!.ref);
      const next = /^\[stage-0 2\/2\]/m.test(w.stderr);
      return {
        inPhase: /^pulling /m.test(w.stderr) && !tagged && !next,
        evidence: `"pulling" shown; the base ${tagged ? 'was' : 'was not'} tagged, the next step ${next ? 'was' : 'was not'} started; ${temps} blob temp file(s) of it left`,
      };
    },
    verify: async (n) => {
      const { dest } = verifyBuild([join(dir, `pull-${n}`)], `pull-${n}`);
      expect(hashFile(join(dest, 'rand'))).toBe(bases[attemptBase.get(n)!]!.sha256);
    },
  },
  'run-start': {
    start: (n) => watch(['build', '--root', root, '--build-arg', `NONCE=${stepMarker('run-start', n)}`, join(dir, 'run-start')], { env }),
    // The sandbox helper is hoist's child (seen as soon as it has exec'd).
    entered: async (w) => {
      await w.waitFor(/RUN sleep 10/);
      // A tight loop, yielding now and then: the race it is after lasts about a millisecond.
      for (let polled = Date.now(); sandboxChild(w.pid) === undefined;) {
        if (Date.now() - polled < 20) continue;
        if (w.done) throw new Error(`the build ended before its RUN step started:\n${w.stderr}`);
        await tick();
        polled = Date.now();
      }
    },
    // The step's command runs: a process with the step's NONCE (an ARG) in its environment.
    left: async (w, n) => {
      while (processesMentioning([stepMarker('run-start', n)]).length === 0) {
        if (w.done) throw new Error(`the build ended before its RUN step ran:\n${w.stderr}`);
        await tick();
      }
    },
    judge: async (w) => ({ inPhase: !/DONE/.test(w.stderr), evidence: 'the sandbox helper had started, the step had not finished' }),
    verify: async (n) => {
      const nonce = `${stepMarker('run-start', n)}-next`;
      const { dest } = verifyBuild(['--build-arg', `NONCE=${nonce}`, join(dir, 'run-start-next')], `run-start-${n}`);
      expect(readFileSync(join(dest, 'done.txt'), 'utf8')).toBe(`${nonce}\n`);
    },
    // Calibration does not wait the 10 s out.
    killAfterCalibration: true,
    // The spawn race (the helper not yet bound to hoist's life) is in the first part of the window.
    early: true,
  },
  run: {
    start: (n) => watch(['build', '--root', root, '--build-arg', 'N=15', '--build-arg', `NONCE=${stepMarker('run', n)}`, join(dir, 'run')], { env }),
    entered: async (w, n) => void (await w.waitFor(new RegExp(`run-started ${stepMarker('run', n)}`))),
    left: async (w, n) => void (await w.waitFor(new RegExp(`run-finished ${stepMarker('run', n)}`))),
    judge: async (w, n) => ({
      inPhase: w.stderr.includes(`run-started ${stepMarker('run', n)}`) && !w.stderr.includes(`run-finished ${stepMarker('run', n)}`) && !/DONE/.test(w.stderr),
      evidence: 'the step had started and not finished',
    }),
    verify: async (n) => {
      const nonce = `${stepMarker('run', n)}-next`;
      const { dest } = verifyBuild(['--build-arg', 'N=2', '--build-arg', `NONCE=${nonce}`, join(dir, 'run')], `run-${n}`);
      expect(readFileSync(join(dest, 'done.txt'), 'utf8')).toBe(`${nonce}\n`);
      expect(statSync(join(dest, 'chunk-1')).size).toBe(262144);
    },
  },
  layer: {
    start: () => watch(['build', '--root', root, '--no-cache', join(dir, 'layer')], { env }),
    // In the layer write: the blob's temp file is there and growing.
    entered: async (w) => {
      await w.waitFor(/COPY big \/big/);
      for (;;) {
        const temp = readdirSafe(join(root, 'tmp')).find((name) => name.startsWith(`blob-${w.pid}-`));
        if (temp && (statSync(join(root, 'tmp', temp), { throwIfNoEntry: false })?.size ?? 0) > 0) return;
        if (w.done) throw new Error(`the build ended before its layer write was seen:\n${w.stderr}`);
        await sleep(1);
      }
    },
    left: async (w) => void (await w.waitFor(/DONE/)),
    judge: async (w) => {
      const temp = readdirSafe(join(root, 'tmp')).find((name) => name.startsWith(`blob-${w.pid}-`));
      const size = temp ? statSync(join(root, 'tmp', temp), { throwIfNoEntry: false })?.size : undefined;
      return { inPhase: !/DONE/.test(w.stderr) && size !== undefined, evidence: `the layer's blob temp file was ${size} bytes (the layer holds 30 MiB)` };
    },
    verify: async (n) => {
      const { dest } = verifyBuild(['--no-cache', join(dir, 'layer')], `layer-${n}`);
      expect(hashFile(join(dest, 'big'))).toBe(bigHash);
    },
  },
  push: {
    // Each attempt pushes a layer the registry has never seen, 24 MiB of it.
    start: (n) => {
      const ctx = writeContext(dir, `push-${n}`, { Dockerfile: `FROM ${registry.host}/base/busybox:1\nCOPY big /big\n` });
      bigFile(join(ctx, 'big'), 24 << 20);
      return watch(['build', '--root', root, '-t', `${registry.host}/app/push:${n}`, '--push', ctx], { env });
    },
    entered: async (w) => void (await w.waitFor(/^exported image/m)),
    left: async (w) => void (await w.waitFor(/^pushed /m)),
    judge: async (w, n) => {
      const manifest = await registryGet(`app/push/manifests/${n}`, 'HEAD');
      return {
        inPhase: /^exported image/m.test(w.stderr) && !/^pushed /m.test(w.stderr) && manifest.status === 404,
        evidence: `the image was tagged, not pushed: the registry answers ${manifest.status} for its manifest`,
      };
    },
    verify: async (n) => {
      const run = hoistOk(['build', '--root', root, '-t', `${registry.host}/app/push:${n}`, '--push', join(dir, `push-${n}`)], { env });
      const digest = /pushed \S+@(sha256:[a-f0-9]{64})/.exec(run.stderr)?.[1];
      expect(digest, run.stderr).toBeDefined();
      const index = await registryGet(`app/push/manifests/${n}`);
      expect(index.status).toBe(200);
      expect(`sha256:${sha256(index.body)}`).toBe(digest);
      // An index (the push's default provenance rides along): every manifest and blob it names is there.
      const { manifests } = JSON.parse(index.body.toString()) as { manifests: { digest: string }[] };
      expect(manifests).toHaveLength(2);
      for (const child of manifests) {
        const manifest = await registryGet(`app/push/manifests/${child.digest}`);
        expect(manifest.status).toBe(200);
        const { config, layers } = JSON.parse(manifest.body.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
        for (const blob of [config, ...layers]) expect((await registryGet(`app/push/blobs/${blob.digest}`, 'HEAD')).status).toBe(200);
      }
    },
  },
  tag: {
    start: (n) => watch(['build', '--root', root, ...Array.from({ length: TAGS }, (_, i) => ['-t', `tags-${n}:${i}`]).flat(), join(dir, 'tag')], { env }),
    entered: async (w, n) => {
      const mine = new RegExp(`/tags-${n}:`);
      for (;;) {
        if ([...storeTags(root).keys()].some((tag) => mine.test(tag))) return;
        if (w.done) throw new Error(`the build ended before a tag was seen:\n${w.stderr}`);
        await sleep(1);
      }
    },
    left: async (w) => void (await w.waitFor(/^exported image/m)),
    judge: async (w, n) => {
      const count = [...storeTags(root).keys()].filter((tag) => tag.includes(`/tags-${n}:`)).length;
      return { inPhase: count > 0 && count < TAGS && !/^exported image/m.test(w.stderr), evidence: `${count} of ${TAGS} tags were written` };
    },
    verify: async (n) => {
      const run = hoistOk(['build', '--root', root, ...Array.from({ length: TAGS }, (_, i) => ['-t', `tags-${n}:${i}`]).flat(), join(dir, 'tag')], { env });
      const digest = /built (sha256:[a-f0-9]{64})/.exec(run.stdout)?.[1];
      const tags = [...storeTags(root)].filter(([tag]) => tag.includes(`/tags-${n}:`));
      expect(tags).toHaveLength(TAGS);
      expect(new Set(tags.map(([, value]) => value))).toEqual(new Set([digest]));
    },
  },
};

/** How long each phase lasts, from an uncut build of it: kills land uniformly inside that. */
const durations = new Map<Phase, number>();

async function calibrate(phase: Phase, n: number): Promise<void> {
  const w = plans[phase].start(n);
  await plans[phase].entered(w, n);
  const entered = Date.now();
  await plans[phase].left(w, n);
  durations.set(phase, Date.now() - entered);
  if (plans[phase].killAfterCalibration) kill(w, 'group');
  const { code } = await w.exited;
  await w.closed;
  if (!plans[phase].killAfterCalibration) expect(code, w.stderr).toBe(0);
}

async function attempt(phase: Phase, n: number, how: 'group' | 'top', scale: number): Promise<Attempt> {
  const plan = plans[phase];
  const w = plan.start(n);
  await plan.entered(w, n);
  const r = random.next();
  const delayMs = (plan.early ? r * r : r) * 0.9 * durations.get(phase)! * scale;
  // A timer cannot wait less than a millisecond: short delays are spun.
  if (delayMs < 5) for (const until = performance.now() + delayMs; performance.now() < until;);
  else await sleep(delayMs);
  kill(w, how);
  const exit = await Promise.race([w.exited, sleep(GONE_MS).then(() => undefined)]);
  expect(exit, `the top process did not end after SIGKILL:\n${w.stderr}`).toBeDefined();
  // What is left once the top process is gone: processes whose command line names the store (node,
  // the sandbox helpers) or whose environment holds the token (node; a RUN step's processes, by
  // its NONCE argument). The kernel ends them at once (parent-death signals, the end of a pid
  // namespace's init); the wait is for a loaded machine to get round to it.
  const { seen, left } = await waitForNoProcesses([root, token], GONE_MS);
  const mounts = await waitForNoMounts([root], GONE_MS);
  // Every process that held hoist's output pipes (a step's too) has closed them.
  const closed = await Promise.race([w.closed.then(() => true), sleep(GONE_MS).then(() => false)]);
  expect(closed, 'something still holds the killed build\'s output pipes').toBe(true);
  const { inPhase, evidence } = await plan.judge(w, n);
  const locks = readdirSafe(root).filter((name) => name.startsWith('index.json.lock') && !litterSeen.has(name));
  const temps = deadTemps(root).length;
  // The killed build may have held the store's lock: the next tag takes it over at once (a lock that
  // cannot be read is waited for until it ages; a live owner's, for 30 s). hoist's own lock code says.
  const release = await acquireLock(join(root, 'index.json.lock'), { waitMs: 0, what: 'the store' });
  expect.soft(release, `a tag after a kill (${how}) in ${phase} would wait for the lock it left`).toBeDefined();
  await release?.();
  const result: Attempt = { phase, how, delayMs: Math.round(delayMs), inPhase, evidence, seen, left, leftMounts: mounts.length, locks, temps };
  // Soft: the loop goes on, so that one run counts every kind of thing left behind.
  expect.soft(left, `processes left after killing ${how} in ${phase}`).toEqual([]);
  expect.soft(mounts, `mounts left after killing ${how} in ${phase}`).toEqual([]);
  // Blobs, tags and cache records; lock files are looked at after the next build.
  expect.soft(storeProblems(root, verified).filter((problem) => !problem.startsWith('lock file')), `the store after a kill (${how}) in ${phase}`).toEqual([]);
  await plan.verify(n);
  expect.soft(storeProblems(root, verified), `after the build that followed a kill (${how}) in ${phase}`).toEqual([]);
  // The next build opened the store: the killed build's temp files are gone, and nothing else of it
  // is left at the top of the store (a lock's temp file, say).
  expect.soft(deadTemps(root), `temp files of the killed build after the next one (${how} in ${phase})`).toEqual([]);
  result.litter = readdirSafe(root).filter((name) => !STORE_ENTRIES.includes(name) && !litterSeen.has(name));
  for (const name of result.litter) litterSeen.add(name);
  expect.soft(result.litter, `left in the store after a kill (${how}) in ${phase} and the next build`).toEqual([]);
  return result;
}

function describeAttempt(a: Attempt): string {
  const alive = a.seen.map((p) => p.cmdline.split(' ').slice(0, 2).join(' ').replace(/^\S*\//, '')).join('; ');
  return `${a.inPhase ? 'in' : 'missed'} ${a.phase} (${a.how}, ${a.delayMs} ms): ${a.evidence}; `
    + `${a.seen.length} process(es) alive right after the top one ended${alive ? ` (${alive})` : ''}, ${a.left.length} left after ${GONE_MS / 1000} s`
    + `${a.left.length ? ` (${a.left.map((p) => p.cmdline.slice(0, 80)).join('; ')})` : ''}, ${a.leftMounts} mount(s) held by them; `
    + `${a.locks.length ? `lock files ${a.locks.join(',')}; ` : ''}${a.temps} temp(s) of dead processes`
    + `${a.litter?.length ? `; left in the store after the next build: ${a.litter.join(',')}` : ''}`;
}

describe('kill loop', () => {
  test('SIGKILLs in each phase of a build leave nothing behind, and the next build works', async () => {
    console.log(`kill loop seed ${seed} (HOIST_KILL_SEED=${seed} repeats the kill moments), token ${token}`);
    let n = 0;
    // The first build of each phase runs whole: it gives the phase's length, and the cache and tags
    // a real store has.
    for (const phase of PHASES) await calibrate(phase, n++);
    console.log(`phase lengths (ms): ${[...durations].map(([phase, ms]) => `${phase} ${ms}`).join(', ')}`);
    // Kills in a random order of phases, of the process group or of the top process alone.
    const order = PHASES.flatMap((phase) => [
      ...Array.from({ length: KILLS[phase].group }, () => ({ phase, how: 'group' as const })),
      ...Array.from({ length: KILLS[phase].top }, () => ({ phase, how: 'top' as const })),
    ]);
    for (let i = order.length - 1; i > 0; i--) {
      const j = random.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const attempts: Attempt[] = [];
    const inPhase = (phase: Phase, how?: string): number => attempts.filter((a) => a.inPhase && a.phase === phase && (!how || a.how === how)).length;
    try {
      for (const { phase, how } of order) {
        // A kill that came after the phase had ended is tried again with shorter delays.
        for (let scale = 1, tries = 0; ; scale /= 2, tries++) {
          const result = await attempt(phase, n++, how, scale);
          attempts.push(result);
          if (result.inPhase) break;
          expect(tries, `three kills in a row missed the ${phase} phase: ${JSON.stringify(result)}`).toBeLessThan(3);
        }
      }
    } finally {
      console.log(`kills:\n${attempts.map(describeAttempt).join('\n')}`);
      console.log(`kills in phase: ${PHASES.map((phase) => `${phase} ${inPhase(phase)}`).join(', ')}; total ${attempts.filter((a) => a.inPhase).length}`);
    }
    for (const phase of PHASES) {
      expect(inPhase(phase), phase).toBeGreaterThanOrEqual(KILLS[phase].group + KILLS[phase].top);
      expect(inPhase(phase, 'group'), `${phase} group kills`).toBeGreaterThan(0);
      expect(inPhase(phase, 'top'), `${phase} top-process kills`).toBeGreaterThan(0);
    }
    expect(attempts.filter((a) => a.inPhase).length).toBeGreaterThanOrEqual(20);
  }, 300_000);
});
