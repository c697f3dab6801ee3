// The benchmark workloads (bench/README.md), built by hoist and by rootless buildah in the same run,
// each cold build on an empty store. Wall time and peak RSS come from /usr/bin/time. Getting the
// base images is timed for both: buildah pulls them from a local registry; hoist loads their OCI
// layouts (hoist load). W3 and W6 are also rebuilt with nothing changed, and W6 with its copied
// file changed, on the warm store; W3's and W4's images are also pushed to a fresh repository of
// the local registry (W7 in bench/README.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareContext, workloadDir } from '../../bench/contexts.ts';
import { removeTree } from '../support/hoist.ts';
import { busyboxLayout, tarballLayout } from '../support/oci-layouts.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry } from '../support/registry.ts';

export interface Measurement {
  seconds: number;
  peakMB: number;
}

export interface WorkloadResult {
  workload: string;
  hoist: Measurement;
  buildah?: Measurement;
}

/** Several commands as one measurement: times added, the largest peak. */
const total = (measurements: Measurement[]): Measurement => ({
  seconds: measurements.reduce((sum, m) => sum + m.seconds, 0),
  peakMB: Math.max(...measurements.map((m) => m.peakMB)),
});

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

const hasBuildah = (): boolean => spawnSync('buildah', ['--version']).status === 0;

/**
 * The Debian base (W2) as an OCI layout beside its tarball: a bookworm minbase from mmdebstrap
 * (reproducible with a fixed SOURCE_DATE_EPOCH; no /dev nodes, which a rootless builder cannot create).
 */
export async function makeDebianBase(work: string): Promise<{ layout: string; tarball: string }> {
  const tarball = join(work, 'bookworm.tar');
  execFileSync('mmdebstrap', ['--quiet', '--variant=minbase', '--skip=output/dev', 'bookworm', tarball], { stdio: 'pipe', env: { ...process.env, SOURCE_DATE_EPOCH: '1747699200' } });
  await tarballLayout(tarball, join(work, 'debian'), 'bookworm');
  return { layout: join(work, 'debian'), tarball };
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
      const dockerfile = join(workloadDir(workload), 'Dockerfile');
      const tag = `bench/${workload.toLowerCase()}`;
      const runsOf: Record<string, Measurement[]> = {};
      const record = (key: string, measurement: Measurement): void => {
        (runsOf[key] ??= []).push(measurement);
        log(`${workload} ${key} run ${runsOf[key]!.length}: ${measurement.seconds.toFixed(2)} s, ${measurement.peakMB.toFixed(0)} MB`);
      };
      const rebuilds = workload.startsWith('W6') || workload.startsWith('W3');
      const oneFile = workload.startsWith('W6');
      const pushes = workload.startsWith('W3') || workload.startsWith('W4');
      for (let run = 0; run < runs; run++) {
        const root = join(work, `hoist-${workload}-${run}`);
        const hoist = join(repoRoot, 'bin', 'hoist');
        const loads = bases.map((base) => timed(hoist, ['load', '--root', root, '-t', `${registry.host}/${base.name}`, `${base.layout}:${base.tag}`]));
        const hoistBuild = ['build', '--root', root, '-q', '-f', dockerfile, '--build-arg', `REGISTRY=${registry.host}`, '-t', tag, context];
        record('hoist', total([...loads, timed(hoist, hoistBuild)]));
        if (rebuilds) {
          record('hoist no-change', timed(hoist, hoistBuild));
        }
        if (oneFile) {
          prepareContext(workload, context, 2);
          record('hoist one-file', timed(hoist, hoistBuild));
          prepareContext(workload, context, 1);
        }
        if (pushes) record('hoist push (W7)', timed(hoist, ['push', '--root', root, tag, `${registry.host}/w7-hoist-${run}/${workload.toLowerCase()}:1`]));
        removeTree(root);

        if (!hasBuildah()) continue;
        const buildahRoot = join(work, `buildah-${workload}-${run}`);
        const storage = ['--root', join(buildahRoot, 'root'), '--runroot', join(buildahRoot, 'run'), '--storage-driver', 'overlay'];
        const buildahBuild = [
          ...storage, 'bud', '--quiet', '--isolation', 'chroot', '--layers', '--tls-verify=false', '-f', dockerfile,
          '--build-arg', `REGISTRY=${registry.host}`, '-t', tag, context,
        ];
        record('buildah', timed('buildah', buildahBuild));
        if (pushes) {
          record('buildah push (W7)', timed('buildah', [...storage, 'push', '--quiet', '--tls-verify=false', tag, `docker://${registry.host}/w7-buildah-${run}/${workload.toLowerCase()}:1`]));
        }
        if (rebuilds) {
          record('buildah no-change', timed('buildah', buildahBuild));
        }
        if (oneFile) {
          prepareContext(workload, context, 2);
          record('buildah one-file', timed('buildah', buildahBuild));
          prepareContext(workload, context, 1);
        }
        // Rootless buildah's files belong to sub-ids: remove them from inside its namespace.
        spawnSync('buildah', ['unshare', 'rm', '-rf', buildahRoot]);
        if (existsSync(buildahRoot)) rmSync(buildahRoot, { recursive: true, force: true });
      }
      const summary = (list: Measurement[]): Measurement => ({ seconds: median(list.map((m) => m.seconds)), peakMB: median(list.map((m) => m.peakMB)) });
      for (const variant of ['', ' no-change', ' one-file', ' push (W7)']) {
        const hoist = runsOf[`hoist${variant}`];
        if (!hoist) continue;
        const buildah = runsOf[`buildah${variant}`];
        results.push({ workload: `${workload}${variant}`, hoist: summary(hoist), ...(buildah ? { buildah: summary(buildah) } : {}) });
      }
    }
    return results;
  } finally {
    await registry.stop();
    removeTree(work);
  }
}
