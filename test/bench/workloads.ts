// The shared benchmark workloads (../shared/bench), built by hoist and by rootless buildah in the
// same run, each cold build on an empty store. Wall time and peak RSS come from /usr/bin/time.
// The base image is put into each fresh store before the clock starts, for both builders
// (hoist: imported from the OCI layout; buildah: pulled from a local registry).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { makeBusyboxLayout } from '../support/hoist.ts';
import { repoRoot, sharedDir } from '../support/paths.ts';
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

export async function benchWorkloads(workloads: string[], runs: number, log: (line: string) => void): Promise<WorkloadResult[]> {
  const work = mkdtempSync(join(tmpdir(), 'hoist-bench-'));
  const registry = await startRegistry();
  try {
    const busybox = makeBusyboxLayout(join(work, 'busybox'));
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${busybox}:latest`, `docker://${registry.host}/busybox:latest`]);
    const baseRef = normalizeReference(`${registry.host}/busybox:latest`);
    const results: WorkloadResult[] = [];
    for (const workload of workloads) {
      const source = join(sharedDir, 'bench', 'workloads', workload);
      const context = join(work, `${workload}-context`);
      execFileSync('sh', [join(source, 'prepare.sh'), context, '1']);
      const dockerfile = join(source, 'Dockerfile');
      const hoistRuns: Measurement[] = [];
      const buildahRuns: Measurement[] = [];
      for (let run = 0; run < runs; run++) {
        const root = join(work, `hoist-${workload}-${run}`);
        const store = await Store.open(root);
        const [base] = await importOciLayout(store, busybox, 'latest');
        await store.tag(baseRef, base!.image.descriptor);
        hoistRuns.push(timed(join(repoRoot, 'bin', 'hoist'), [
          'build', '--root', root, '-q', '-f', dockerfile, '--build-arg', `REGISTRY=${registry.host}`, '-t', `bench/${workload.toLowerCase()}`, context,
        ]));
        rmSync(root, { recursive: true, force: true });
        log(`${workload} hoist run ${run + 1}: ${hoistRuns.at(-1)!.seconds.toFixed(2)} s, ${hoistRuns.at(-1)!.peakMB.toFixed(0)} MB`);

        if (!hasBuildah()) continue;
        const buildahRoot = join(work, `buildah-${workload}-${run}`);
        const storage = ['--root', join(buildahRoot, 'root'), '--runroot', join(buildahRoot, 'run'), '--storage-driver', 'overlay'];
        execFileSync('buildah', [...storage, 'pull', '--quiet', '--tls-verify=false', `docker://${registry.host}/busybox:latest`], { stdio: 'ignore' });
        buildahRuns.push(timed('buildah', [
          ...storage, 'bud', '--quiet', '--isolation', 'chroot', '--layers', '--tls-verify=false', '-f', dockerfile,
          '--build-arg', `REGISTRY=${registry.host}`, '-t', `bench/${workload.toLowerCase()}`, context,
        ]));
        // Rootless buildah's files belong to sub-ids: remove them from inside its namespace.
        spawnSync('buildah', ['unshare', 'rm', '-rf', buildahRoot]);
        if (existsSync(buildahRoot)) rmSync(buildahRoot, { recursive: true, force: true });
        log(`${workload} buildah run ${run + 1}: ${buildahRuns.at(-1)!.seconds.toFixed(2)} s, ${buildahRuns.at(-1)!.peakMB.toFixed(0)} MB`);
      }
      const summary = (list: Measurement[]): Measurement => ({ seconds: median(list.map((m) => m.seconds)), peakMB: median(list.map((m) => m.peakMB)) });
      results.push({ workload, hoist: summary(hoistRuns), ...(buildahRuns.length ? { buildah: summary(buildahRuns) } : {}) });
    }
    return results;
  } finally {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
