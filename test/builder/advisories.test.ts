// The anchors' advisories, as tests: each case is a real CVE of runc, BuildKit or buildah, tried on
// hoist's own mechanism in every isolation mode that runs here. A host directory with a marker
// stands for everything outside a step: no step may read, write or enter it.
import { execFileSync, spawn, type StdioOptions } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { inContainer, type Container } from '../support/container.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext, type Run } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;
/** Outside every step: its listing and marker must stay as they are. */
let hostDir: string;
const MARKER = 'host-marker-5e1f';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-advisories-'));
  chmodSync(dir, 0o755);
  root = join(dir, 'store');
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
  hostDir = join(dir, 'host');
  mkdirSync(hostDir);
  writeFileSync(join(hostDir, 'marker'), `${MARKER}\n`);
});
afterAll(() => removeTree(dir));

const context = (name: string, dockerfile: string, files: Record<string, string> = {}): string => writeContext(dir, name, { Dockerfile: dockerfile, ...files });

/** The host directory is as the test made it: nothing read into a step's output, nothing written. */
function expectHostUntouched(run: Run): void {
  expect(readdirSync(hostDir)).toEqual(['marker']);
  expect(readFileSync(join(hostDir, 'marker'), 'utf8')).toBe(`${MARKER}\n`);
  expect(run.stdout + run.stderr).not.toContain(MARKER);
}

/** `hoist ARGS`, not blocking the test's event loop, started with `fds` at 3 and up. */
function hoistWith(args: string[], options: { env?: Record<string, string>; fds?: StdioOptions } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdio = ['ignore', 'pipe', 'pipe', ...((options.fds as unknown[] | undefined) ?? [])] as StdioOptions;
    const child = spawn(join(repoRoot, 'bin', 'hoist'), args, { env: { ...process.env, ...options.env }, stdio });
    let [stdout, stderr] = ['', ''];
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject).on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs `make` on every item, `width` at a time. */
async function inTurns<T, R>(items: T[], width: number, make: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += width) results.push(...(await Promise.all(items.slice(i, i + width).map(make))));
  return results;
}

describe('runc CVE-2024-21626: no descriptor of hoist\'s reaches a step, and /proc/self/fd leads nowhere', () => {
  /**
   * The descriptor numbers tried: 3 to 20, where runc's leaked one was (7 or 8), and 30 and 100,
   * above those Node uses itself, which it passes on to what it starts (the sandbox helper).
   */
  const NUMBERS = [...Array.from({ length: 18 }, (_, i) => i + 3), 30, 100];
  /** hoist started as a careless caller starts it: the host directory open at every one of NUMBERS. */
  let fds: StdioOptions;
  let container: Container;

  beforeAll(() => {
    const stdio: (number | 'ignore')[] = Array.from({ length: 101 - 3 }, () => 'ignore');
    for (const n of NUMBERS) stdio[n - 3] = openSync(hostDir, 'r');
    fds = stdio;
    container = { dir, store: root, executor: execFileSync('bash', [join(repoRoot, 'scripts', 'executor.sh'), join(dir, 'executor')], { encoding: 'utf8' }).trim() };
  }, 300_000);
  afterAll(() => {
    for (const fd of fds as (number | 'ignore')[]) if (typeof fd === 'number') closeSync(fd);
  });

  // Every descriptor the step, and in hoist's sandbox its pid 1, hold; then each of NUMBERS
  // entered, read and written through /proc/self/fd and /proc/1/fd (the in-place step's parent
  // in container mode, where pid 1 is hoist's own process: see the README).
  const probe = (parent: string): string => [
    'FROM busybox',
    `RUN echo "own: $(ls /proc/self/fd | tr '\\n' ' ')"; echo "parent: $(ls /proc/${parent}/fd | sort -n | tr '\\n' ' ')";`
    + ` for n in ${NUMBERS.join(' ')}; do for p in self ${parent}; do`
    + ' if (cd /proc/$p/fd/$n 2>/dev/null); then echo "entered /proc/$p/fd/$n"; fi;'
    + ' cat /proc/$p/fd/$n/marker 2>/dev/null; touch /proc/$p/fd/$n/written 2>/dev/null; done; done; true',
  ].join('\n');

  /** What the probe's step printed: its own descriptors (`ls`'s own is 3), its parent's, and what it entered. */
  function expectProbeContained(run: Run, parentFds: string): void {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('own: 0 1 2 3 \n');
    expect(run.stderr).toContain(`parent: ${parentFds} \n`);
    expect(run.stderr).not.toContain('entered');
    expectHostUntouched(run);
  }

  /** `WORKDIR /proc/self/fd/N` for each of `numbers`: each build fails at its RUN, which never starts. */
  function expectWorkdirsRefused(runs: Run[], numbers: number[]): void {
    for (const [i, run] of runs.entries()) {
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain(`/proc/self/fd/${numbers[i]}`);
      expect(run.stderr).not.toContain('step-2-ran');
      expectHostUntouched(run);
    }
  }
  const workdir = (n: number): string => context(`workdir-${n}`, `FROM busybox\nWORKDIR /proc/self/fd/${n}\nRUN echo step-$((1+1))-ran; pwd; ls; cat marker; touch written\n`);

  test('userns, on an overlay: RUN holds 0, 1 and 2 only, pid 1 as much, and WORKDIR /proc/self/fd/N fails', async () => {
    // pid 1 of the step, the sandbox helper, holds nothing of hoist's: its status goes another way.
    expectProbeContained(await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', context('probe-overlay', probe('1'))], { fds }), '0 1 2');
    expectWorkdirsRefused(await inTurns(NUMBERS, 4, (n) => hoistWith(['build', '--root', root, '--progress=plain', workdir(n)], { fds })), NUMBERS);
  }, 300_000);

  test('userns, on a copied root (no overlay): the same', async () => {
    const env = { HOIST_NO_OVERLAY: '1' };
    expectProbeContained(await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', context('probe-copied', probe('1'))], { fds, env }), '0 1 2');
    const numbers = [3, 20, 30];
    expectWorkdirsRefused(await inTurns(numbers, 3, (n) => hoistWith(['build', '--root', root, '--progress=plain', workdir(n)], { fds, env })), numbers);
  }, 300_000);

  test('container: the step holds 0, 1 and 2, its parent the status pipe besides, and WORKDIR /proc/self/fd/N fails', () => {
    const built = inContainer(container, ['build', '--root', '/work/store', '--no-cache', '--progress=plain', '/work/ctx'], context('probe-container', probe('$PPID')), { fds });
    expectProbeContained(built, '0 1 2 3');
    const numbers = [3, 20, 30];
    expectWorkdirsRefused(numbers.map((n) => inContainer(container, ['build', '--root', '/work/store', '--progress=plain', '/work/ctx'], workdir(n), { fds })), numbers);
  }, 300_000);

  test('container: hoist\'s own process (pid 1 there) is hidden from the step: its environment (a CI token), memory and descriptors', () => {
    const token = 'ci-token-9c41';
    const dockerfile = [
      'FROM busybox',
      'RUN cat /proc/1/environ; head -c 1 /proc/1/mem; cat /proc/1/cmdline >/dev/null && echo cmdline-readable;'
      + ` for n in ${NUMBERS.join(' ')}; do if (cd /proc/1/fd/$n 2>/dev/null); then echo "entered /proc/1/fd/$n"; fi; done; true`,
    ].join('\n');
    const built = inContainer(container, ['build', '--root', '/work/store', '--no-cache', '--progress=plain', '/work/ctx'], context('hidden-pid1', dockerfile), {
      fds, env: { container: 'hoist-test', CI_JOB_TOKEN: token },
    });
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toContain("cat: can't open '/proc/1/environ': Permission denied");
    expect(built.stderr).toContain("head: /proc/1/mem: Permission denied");
    expect(built.stderr).toContain('cmdline-readable'); // the process is there, only its insides are hidden
    expect(built.stderr).not.toContain('CI_JOB_TOKEN');
    expect(built.stderr).not.toContain(token);
    expect(built.stderr).not.toContain('entered');
    expectHostUntouched(built);
  }, 300_000);
});

describe('BuildKit CVE-2024-23651: steps sharing a cache mount and swapping symlinks in it reach nothing outside', () => {
  test('two stages at once, one swapping a symlink in the cache between a directory, / and ../.., the other mounting through it', async () => {
    const swaps = ['/', '../../../../../..', 'd'].map((to) => `ln -sfn ${to} /cache/next && mv -fT /cache/next /cache/sub`).join('; ');
    // The swapping goes on until the other stage's steps are done (at most 20,000 rounds), which wait for it to start.
    const dockerfile = (id: string): string => [
      'FROM busybox AS base',
      'RUN mkdir -p /t/ctx && echo image > /t/where',
      'FROM base AS swapper',
      `RUN --mount=type=cache,id=${id},target=/cache mkdir -p /cache/d/t/ctx && ln -sfn d /cache/sub && i=0 && while [ ! -e /cache/done ] && [ $i -lt 20000 ]; do ${swaps}; i=$((i+1)); done; echo $i > /rounds`,
      'FROM base AS mounter',
      `RUN --mount=type=cache,id=${id},target=/cache until [ -e /cache/sub ]; do sleep 0.05; done`,
      // Each step mounts the context where the symlink leads at that moment: in its own root or in the cache, once.
      ...Array.from({ length: 6 }, (_, i) => `RUN --mount=type=cache,id=${id},target=/cache --mount=type=bind,target=/cache/sub/t/ctx cat /t/ctx/where /cache/d/t/ctx/where 2>/dev/null > /seen-${i}; true`),
      `RUN --mount=type=cache,id=${id},target=/cache touch /cache/done`,
      'FROM busybox',
      'COPY --from=swapper /rounds /',
      'COPY --from=mounter /seen-* /',
    ].join('\n');
    const cacheDir = join(dir, 'race-cache');
    for (const jobs of [[], ['--jobs', '2']]) {
      const ctx = context(`cache-race-${jobs.length}`, dockerfile(`race-${jobs.length}`), { where: 'context\n' });
      const built = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', ...jobs, '--cache-to', `type=local,dest=${cacheDir},mode=max,mounts=true`, '-o', join(dir, `race-out${jobs.length}`), ctx]);
      expect(built.code, built.stderr).toBe(0);
      for (let i = 0; i < 6; i++) expect(readFileSync(join(dir, `race-out${jobs.length}`, `seen-${i}`), 'utf8')).toBe('context\n');
      // The swapping went on while every mounting step ran: it stopped when they were done.
      expect(Number(readFileSync(join(dir, `race-out${jobs.length}`, 'rounds'), 'utf8'))).toBeLessThan(20_000);
      expectHostUntouched(built);
    }
    // The exported cache mount holds the cache's own entries, and nothing a symlink led to.
    const blobs = join(cacheDir, 'blobs', 'sha256');
    for (const blob of readdirSync(blobs)) {
      const content = readFileSync(join(blobs, blob));
      const text = content[0] === 0x1f ? execFileSync('gzip', ['-dc'], { input: content }).toString('latin1') : content.toString('latin1');
      expect(text).not.toContain(MARKER);
    }
  }, 300_000);

  test('a mount target through a symlink to a host path or through /proc stops the step; source= of a cache without from= is refused', () => {
    for (const [name, to] of [['host-path', hostDir], ['magic-link', '/proc/self/root']] as const) {
      const run = hoist(['build', '--root', root, '--no-cache', context(`nested-${name}`, [
        'FROM busybox',
        `RUN --mount=type=cache,id=nested-${name},target=/cache ln -sfn ${to} /cache/sub`,
        `RUN --mount=type=cache,id=nested-${name},target=/cache --mount=type=tmpfs,target=/cache/sub/t echo step-$((1+1))-ran`,
      ].join('\n'))]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('find mount point /cache/sub/t in the root filesystem');
      expect(run.stderr).toContain('Dockerfile:3');
      expectHostUntouched(run);
    }
    const subpath = hoist(['build', '--root', root, context('cache-source', 'FROM busybox\nRUN --mount=type=cache,id=race,target=/cache,source=sub true\n')]);
    expect(subpath.code).toBe(1);
    expect(subpath.stderr).toContain('Dockerfile:2: --mount=type=cache: source= names the directory of from= that a new cache starts as, and this mount has no from=');
  });
});

describe('buildah CVE-2024-1753 and CVE-2024-11218: a writable bind mount of a stage writes nowhere outside the step', () => {
  test('RUN --mount=type=bind,from=STAGE,source=/,rw: not into the stage, the context or the host, with another stage reading it at once', async () => {
    const ctx = context('bind-rw', [
      'FROM busybox AS src',
      'RUN mkdir /data && echo original > /data/file && ln -s / /data/root-link && ln -s ../../../../../../.. /data/up-link',
      'FROM busybox AS writer',
      'RUN --mount=type=bind,from=src,source=/,target=/m,rw --mount=type=bind,target=/ctx,rw'
      + ' sh -c \'echo changed > /m/data/file && rm /m/bin/busybox && echo x > /m/new && echo x > /m/data/root-link/via-root-link'
      + ' && echo x > /m/data/up-link/via-up-link && echo changed > /ctx/ctx-file && rm /ctx/Dockerfile && echo x > /ctx/new\'',
      'FROM busybox AS reader',
      'RUN --mount=type=bind,from=src,target=/m for i in $(seq 1 20); do cat /m/data/file; done | sort -u > /read',
      'FROM busybox',
      'COPY --from=src / /src/',
      'COPY --from=writer / /writer/',
      'COPY --from=reader /read /',
    ].join('\n'), { 'ctx-file': 'original\n' });
    const out = join(dir, 'bind-rw-out');
    const built = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', '-o', out, ctx]);
    expect(built.code, built.stderr).toBe(0);
    expectHostUntouched(built);
    // The stage is as it was made, for the build and for the stage reading it at the same time.
    expect(readFileSync(join(out, 'src', 'data', 'file'), 'utf8')).toBe('original\n');
    expect(readdirSync(join(out, 'src', 'bin'))).toContain('busybox');
    expect(readdirSync(join(out, 'src'))).not.toContain('new');
    expect(readFileSync(join(out, 'read'), 'utf8')).toBe('original\n');
    // The context is as the test wrote it.
    expect(readdirSync(ctx).sort()).toEqual(['Dockerfile', 'ctx-file']);
    expect(readFileSync(join(ctx, 'ctx-file'), 'utf8')).toBe('original\n');
    // What the step wrote through the mount's symlinks went into its own root: its layer, nowhere else.
    expect(readdirSync(join(out, 'writer')).sort()).toEqual(expect.arrayContaining(['via-root-link', 'via-up-link']));
    expect(readdirSync(join(out, 'writer'))).not.toContain('m');
  }, 300_000);

  test('a bind source through a symlink that leads out of its stage is refused', () => {
    const run = hoist(['build', '--root', root, context('bind-link', [
      'FROM busybox AS src',
      'RUN ln -s / /root-link',
      'FROM busybox',
      'RUN --mount=type=bind,from=src,source=root-link,target=/m,rw echo x > /m/written',
    ].join('\n'))]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Dockerfile:4: --mount source root-link: leads out of its root');
    expectHostUntouched(run);
  });
});

describe('buildah CVE-2024-9675 and CVE-2024-9407: cache mount id= and source=, and options no mount honours', () => {
  test('an id with ../ or an absolute path names a cache in the store, nowhere else, and keeps its contents', () => {
    const ids = [`../../../../../../../..${hostDir}`, hostDir, '..', '/'];
    const mounts = ids.map((id, i) => `--mount=type=cache,id=${id},target=/c${i}`).join(' ');
    const first = hoist(['build', '--root', root, '--no-cache', context('cache-ids', `FROM busybox\nRUN ${mounts} sh -c 'for c in /c0 /c1 /c2 /c3; do echo kept > $c/file; ls $c; done' > /listed\n`)]);
    expect(first.code, first.stderr).toBe(0);
    expectHostUntouched(first);
    const again = hoist(['build', '--root', root, '--no-cache', '-o', join(dir, 'cache-ids-out'), context('cache-ids-again', `FROM busybox\nRUN ${mounts} cat /c0/file /c1/file /c2/file /c3/file > /kept\n`)]);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(dir, 'cache-ids-out', 'kept'), 'utf8')).toBe('kept\n'.repeat(4));
    expectHostUntouched(again);
  });

  test('source= of from= with ../, an absolute path or a symlink out stays in (or is refused by) the stage it names', () => {
    const stage = 'FROM busybox AS src\nRUN mkdir /seed && echo seed > /seed/file && ln -s / /seed-root && ln -s ../../../../../../.. /seed-up\nFROM busybox\n';
    const cases: [name: string, source: string, error?: string][] = [
      ['dots', `../../../../../../../..${hostDir}`, `--mount source ../../../../../../../..${hostDir}: not found`],
      ['absolute', hostDir, `--mount source ${hostDir}: not found`],
      ['root-link', 'seed-root', '--mount source seed-root: leads out of its root'],
      ['up-link', 'seed-up', '--mount source seed-up: leads out of its root'],
      ['inside', '../../seed'],
    ];
    for (const [name, source, error] of cases) {
      const run = hoist(['build', '--root', root, '--no-cache', '--progress=plain', context(`cache-source-${name}`, `${stage}RUN --mount=type=cache,id=source-${name},target=/c,from=src,source=${source} cat /c/file; ls /c\n`)]);
      expectHostUntouched(run);
      if (error === undefined) {
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).toContain('] seed\n');
        continue;
      }
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`Dockerfile:4: ${error}`);
    }
  });

  test('an option unknown to RUN --mount, or one its type does not honour, is refused by name at its line', async () => {
    const cases: [spec: string, error: string][] = [
      ['type=bind,target=/m,bind-propagation=shared', "unexpected key 'bind-propagation' in 'bind-propagation=shared'"],
      ['type=bind,target=/m,mode=0777', 'hoist does not support mode= on a bind mount (it takes source=, from=, readonly=)'],
      ['type=bind,target=/m,required', 'hoist does not support required= on a bind mount'],
      ['type=cache,target=/c,size=1m', 'hoist does not support size= on a cache mount'],
      ['type=cache,target=/c,env=X', 'hoist does not support env= on a cache mount'],
      ['type=tmpfs,target=/t,ro', 'hoist does not support readonly= on a tmpfs mount'],
      ['type=tmpfs,target=/t,from=busybox', 'hoist does not support from= on a tmpfs mount'],
      ['type=tmpfs,target=/t,sharing=locked', 'hoist does not support sharing= on a tmpfs mount'],
      ['type=secret,id=s,source=s', 'hoist does not support source= on a secret mount'],
      ['type=secret,id=s,rw', 'hoist does not support readonly= on a secret mount'],
      ['type=ssh,target=/s,uid=0,from=busybox', 'hoist does not support from= on a ssh mount'],
    ];
    const runs = await inTurns([...cases.keys()], 4, (i) => hoistWith(['build', '--root', root, context(`option-${i}`, `FROM busybox\nRUN --mount=${cases[i]![0]} echo step-$((1+1))-ran\n`)]));
    for (const [i, run] of runs.entries()) {
      expect(run.code, cases[i]![0]).toBe(1);
      expect(run.stderr, cases[i]![0]).toContain('Dockerfile:2');
      expect(run.stderr, cases[i]![0]).toContain(cases[i]![1]);
      expect(run.stderr).not.toContain('step-2-ran');
    }
  });
});

describe('entitlements: a Dockerfile gets more than a step\'s default only from the command line', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    // A service on the host's loopback, which a step's default network reaches.
    server = createServer((_, response) => response.end('loopback-service\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('RUN --network=host needs --allow network.host (or --network host), checked before any step runs', async () => {
    const ctx = context('network-host', `FROM busybox\nRUN echo first-$((1+1))-ran\nRUN --network=host wget -qO- http://127.0.0.1:${port}/\n`);
    const refused = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', ctx]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Dockerfile:3: RUN --network=host needs the network.host entitlement: add --allow network.host to the command line');
    expect(refused.stderr).not.toContain('first-2-ran');
    for (const granted of [['--allow', 'network.host'], ['--allow=network.host'], ['--allow', 'network.host,network.host'], ['--network', 'host']]) {
      const built = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', ...granted, ctx]);
      expect(built.code, `${granted.join(' ')}: ${built.stderr}`).toBe(0);
      expect(built.stderr).toContain('] loopback-service\n');
    }
  });

  test('a step\'s default network is the host\'s: it reaches a loopback service, and --network=none cuts it off', async () => {
    const reach = (name: string, flags: string): string => context(name, `FROM busybox\nRUN ${flags}wget -qO- http://127.0.0.1:${port}/ || echo unreachable\n`);
    const byDefault = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', reach('network-default', '')]);
    expect(byDefault.code, byDefault.stderr).toBe(0);
    expect(byDefault.stderr).toContain('] loopback-service\n');
    for (const [name, flags, args] of [['network-none', '--network=none ', []], ['network-none-flag', '', ['--network', 'none']]] as const) {
      const cut = await hoistWith(['build', '--root', root, '--no-cache', '--progress=plain', ...args, reach(name, flags)]);
      expect(cut.code, cut.stderr).toBe(0);
      expect(cut.stderr).toContain('] unreachable\n');
    }
  });

  test('RUN --security=insecure is refused at its line; --allow takes network.host only, and names what it refuses', () => {
    const insecure = hoist(['build', '--root', root, context('insecure', 'FROM busybox\nRUN --security=insecure echo step-$((1+1))-ran\n')]);
    expect(insecure.code).toBe(1);
    expect(insecure.stderr).toContain('Dockerfile:2: RUN --security=insecure is not supported');
    expect(insecure.stderr).not.toContain('step-2-ran');
    hoistOk(['build', '--root', root, context('sandbox', 'FROM busybox\nRUN --security=sandbox true\n')]);
    for (const [value, error] of [
      ['security.insecure', '--allow security.insecure: hoist cannot give a step the host\'s privileges'],
      ['network.host,bogus', '--allow bogus: unknown entitlement (hoist grants network.host)'],
      ['device', '--allow device: hoist gives steps no devices of the host\'s'],
    ]) {
      const run = hoist(['build', '--root', root, '--allow', value!, context('allow-refused', 'FROM busybox\n')]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(error);
    }
  });
});
