// `npm run bench [-- WORKLOAD...]`: hoist's benchmarks, printed as figures to quote.
// BENCH_RUNS sets the runs per workload (default 3); figures are medians.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WORKLOADS } from '../../bench/contexts.ts';
import { benchParser } from './parser.ts';
import { benchApply } from './apply.ts';
import { benchWorkloads, makeDebianBase } from './workloads.ts';

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const parser = benchParser();
console.log(
  `parser: ${parser.lines}-line Dockerfile (${parser.bytes} bytes) parsed, planned and expanded: ` +
    `median ${median(parser.ms).toFixed(1)} ms over ${parser.ms.length} runs, first run ${parser.ms[0]!.toFixed(1)} ms`,
);

const args = process.argv.slice(2);
const chosen = args.length ? WORKLOADS.filter((w) => args.some((arg) => w.startsWith(arg))) : WORKLOADS;

// `apply` (or no workload named): a Debian base applied to a directory, beside GNU tar on the same files.
if (args.length === 0 || args.includes('apply')) {
  const work = mkdtempSync(join(tmpdir(), 'hoist-bench-apply-'));
  try {
    const { layout, tarball } = await makeDebianBase(work);
    const applied = benchApply(layout, 'bookworm', tarball, work, Number(process.env.BENCH_RUNS ?? 3));
    console.log(`base apply: Debian minbase (${(statSync(tarball).size / 1e6).toFixed(0)} MB unpacked), medians: hoist ${applied.hoist.toFixed(2)} s; `
      + `GNU tar ${applied.tar.toFixed(2)} s from the tarball, ${applied.gunzipTar.toFixed(2)} s from the gzip layer (gzip -dc | tar)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The issue's targets for hoist/buildah, build+push, where one was set (bench/README.md). */
const TARGETS: Record<string, number> = {
  'W1-static-binary push cold': 0.5,
  'W2-apt-python push cold': 0.7,
  'W3-many-small-files push cold': 0.25,
  'W3-many-small-files push no-change': 0.05,
  'W4-big-run-layer push cold': 0.3,
  'W5-multi-stage push cold': 0.5,
  'W6-warm-rebuild push one-file': 0.5,
  'W8-debian-run-true push cold': 0.4,
};

const results = await benchWorkloads(chosen, Number(process.env.BENCH_RUNS ?? 3), (line) => console.error(line));
console.log(`\nmedians of ${process.env.BENCH_RUNS ?? 3} runs; "push" is build+push (bench/README.md)`);
console.log('workload             phase            hoist s  hoist MB  buildah s  buildah MB  ratio  target');
for (const { workload, phase, hoist, buildah } of results) {
  const ratio = buildah ? (hoist.seconds / buildah.seconds).toFixed(2) : 'n/a';
  const target = TARGETS[`${workload} ${phase}`];
  console.log(
    `${workload.padEnd(20)} ${phase.padEnd(15)} ${hoist.seconds.toFixed(2).padStart(8)} ${hoist.peakMB.toFixed(0).padStart(9)} ` +
      `${buildah ? buildah.seconds.toFixed(2).padStart(10) : '       n/a'} ${buildah ? buildah.peakMB.toFixed(0).padStart(11) : '        n/a'} ` +
      `${ratio.padStart(6)}  ${target === undefined ? '' : `≤ ${target}`}`,
  );
}
