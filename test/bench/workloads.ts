// The benchmark workloads (bench/README.md), built and pushed by hoist and by rootless buildah in
// the same run, alternately. Each run of each tool:
//   build           a cold build on an empty store, bases pulled from the registry, nothing pushed;
//   push cold       a cold build on another empty store, pushed to a fresh repository;
//   push no-change  the same again on the warm store, nothing changed, pushed to the same repository;
//   push one-file   the same after one context file changed (bench/contexts.ts), then restored.
// hoist runs `hoist build --push`; buildah `buildah bud` and then `buildah push`, as their users do.
// Wall time and peak RSS come from /usr/bin/time (several commands: times added, the largest peak).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changeOneFile, oneFileOriginal, prepareContext, workloadDir } from '../../bench/contexts.ts';
import { removeTree } from '../support/hoist.ts';
import { busyboxLayout, tarballLayout } from '../support/oci-layouts.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry } from '../support/registry.ts';

export interface Measurement {
  seconds: number;
  peakMB: number;
}

export const PHASES = ['build', 'push cold', 'push no-change', 'push one-file'] as const;
export type Phase = (typeof PHASES)[number];

export interface WorkloadResult {
  workload: string;
  phase: Phase;
  hoist: Measurement;
  buildah?: Measurement;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function timed(command: string, args: string[]): Measurement {
  // Flush the previous run's writes first, so that their writeback is not billed to this run.
  execFileSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', command, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const last = result.stderr.trim().split('\n').at(-1) ?? '';
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${result.stderr.slice(-4000)}`);
  const [seconds, kilobytes] = last.split(' ').map(Number);
  return { seconds: seconds!, peakMB: kilobytes! / 1024 };
}

const both = (first: Measurement, second: Measurement): Measurement => ({
  seconds: first.seconds + second.seconds,
  peakMB: Math.max(first.peakMB, second.peakMB),
});

const hasBuildah = (): boolean => spawnSync('buildah', ['--version']).status === 0;

/**
 * The Debian base (W2, W8) as an OCI layout beside its tarball: a bookworm minbase from mmdebstrap
 * (reproducible with a fixed SOURCE_DATE_EPOCH; no /dev nodes, which a rootless builder cannot create).
 */
export async function makeDebianBase(work: string): Promise<{ layout: string; tarball: string }> {
  const tarball = join(work, 'bookworm.tar');
  execFileSync('mmdebstrap', ['--quiet', '--variant=minbase', '--skip=output/dev', 'bookworm', tarball], { stdio: 'pipe', env: { ...process.env, SOURCE_DATE_EPOCH: '1747699200' } });
  await tarballLayout(tarball, join(work, 'debian'), 'bookworm');
  return { layout: join(work, 'debian'), tarball };
}

/** One builder as the benchmark drives it: a build on a store, optionally pushed to `repository`. */
interface Builder {
  name: 'hoist' | 'buildah';
  build(store: string, repository: string, push: boolean): Measurement;
  remove(store: string): void;
}

function hoistBuilder(dockerfile: string, context: string, registryHost: string): Builder {
  const hoist = join(repoRoot, 'bin', 'hoist');
  return {
    name: 'hoist',
    build: (store, repository, push) => timed(hoist, [
      'build', '--root', store, '-q', '-f', dockerfile, '--build-arg', `REGISTRY=${registryHost}`, '-t', repository, ...(push ? ['--push'] : []), context,
    ]),
    remove: removeTree,
  };
}

function buildahBuilder(dockerfile: string, context: string, registryHost: string): Builder {
  const storage = (store: string): string[] => ['--root', join(store, 'root'), '--runroot', join(store, 'run'), '--storage-driver', 'overlay'];
  return {
    name: 'buildah',
    build: (store, repository, push) => {
      const build = timed('buildah', [
        ...storage(store), 'bud', '--quiet', '--isolation', 'chroot', '--layers', '--tls-verify=false', '-f', dockerfile,
        '--build-arg', `REGISTRY=${registryHost}`, '-t', repository, context,
      ]);
      return push ? both(build, timed('buildah', [...storage(store), 'push', '--quiet', '--tls-verify=false', repository, `docker://${repository}`])) : build;
    },
    remove: (store) => {
      // Rootless buildah's files belong to sub-ids: remove them from inside its namespace.
      spawnSync('buildah', ['unshare', 'rm', '-rf', store]);
      if (existsSync(store)) rmSync(store, { recursive: true, force: true });
    },
  };
}

export async function benchWorkloads(workloads: string[], runs: number, log: (line: string) => void): Promise<WorkloadResult[]> {
  const work = mkdtempSync(join(tmpdir(), 'hoist-bench-'));
  const registry = await startRegistry();
  try {
    const bases = [{ layout: await busyboxLayout(join(work, 'busybox')), tag: 'latest', name: 'busybox:latest' }];
    if (workloads.some((w) => w.startsWith('W2') || w.startsWith('W8'))) bases.push({ layout: (await makeDebianBase(work)).layout, tag: 'bookworm', name: 'debian:bookworm' });
    for (const base of bases) {
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${base.layout}:${base.tag}`, `docker://${registry.host}/${base.name}`]);
    }
    const results: WorkloadResult[] = [];
    for (const workload of workloads) {
      const context = join(work, `${workload}-context`);
      prepareContext(workload, context, 1);
      const original = oneFileOriginal(workload, context);
      const dockerfile = join(workloadDir(workload), 'Dockerfile');
      const builders = [hoistBuilder(dockerfile, context, registry.host), ...(hasBuildah() ? [buildahBuilder(dockerfile, context, registry.host)] : [])];
      const runsOf = new Map<string, Measurement[]>();
      const record = (builder: Builder, phase: Phase, measurement: Measurement): void => {
        const key = `${builder.name} ${phase}`;
        runsOf.set(key, [...(runsOf.get(key) ?? []), measurement]);
        log(`${workload} ${key} run ${runsOf.get(key)!.length}: ${measurement.seconds.toFixed(2)} s, ${measurement.peakMB.toFixed(0)} MB`);
      };
      for (let run = 0; run < runs; run++) {
        // Alternate which builder goes first, so that neither always meets the other's writeback.
        for (const builder of run % 2 === 0 ? builders : [...builders].reverse()) {
          const repository = `${registry.host}/${builder.name}-${run}/${workload.toLowerCase()}:1`;
          const buildOnly = join(work, `${builder.name}-${workload}-${run}-build`);
          record(builder, 'build', builder.build(buildOnly, repository, false));
          builder.remove(buildOnly);

          const store = join(work, `${builder.name}-${workload}-${run}`);
          record(builder, 'push cold', builder.build(store, repository, true));
          record(builder, 'push no-change', builder.build(store, repository, true));
          changeOneFile(workload, context, original, run + 1);
          try {
            record(builder, 'push one-file', builder.build(store, repository, true));
          } finally {
            changeOneFile(workload, context, original, 0);
          }
          builder.remove(store);
        }
      }
      const summary = (list: Measurement[]): Measurement => ({ seconds: median(list.map((m) => m.seconds)), peakMB: median(list.map((m) => m.peakMB)) });
      for (const phase of PHASES) {
        const buildah = runsOf.get(`buildah ${phase}`);
        results.push({ workload, phase, hoist: summary(runsOf.get(`hoist ${phase}`)!), ...(buildah ? { buildah: summary(buildah) } : {}) });
      }
    }
    return results;
  } finally {
    await registry.stop();
    removeTree(work);
  }
}
