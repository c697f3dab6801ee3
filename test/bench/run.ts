// `npm run bench [-- WORKLOAD...]`: hoist's benchmarks, printed as figures to quote.
// BENCH_RUNS sets the runs per workload (default 3); figures are medians.
import { WORKLOADS } from '../../bench/contexts.ts';
import { benchParser } from './parser.ts';
import { benchWorkloads } from './workloads.ts';

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const parser = benchParser();
console.log(
  `parser: ${parser.lines}-line Dockerfile (${parser.bytes} bytes) parsed, planned and expanded: ` +
    `median ${median(parser.ms).toFixed(1)} ms over ${parser.ms.length} runs, first run ${parser.ms[0]!.toFixed(1)} ms`,
);

const chosen = process.argv.slice(2).length ? WORKLOADS.filter((w) => process.argv.slice(2).some((arg) => w.startsWith(arg))) : WORKLOADS;
const results = await benchWorkloads(chosen, Number(process.env.BENCH_RUNS ?? 3), (line) => console.error(line));
console.log('\nworkload                         hoist s   hoist MB   buildah s   buildah MB   ratio (time)');
for (const { workload, hoist, buildah } of results) {
  const ratio = buildah ? (hoist.seconds / buildah.seconds).toFixed(2) : 'n/a (no buildah)';
  console.log(`${workload.padEnd(32)} ${hoist.seconds.toFixed(2).padStart(7)}   ${hoist.peakMB.toFixed(0).padStart(8)}   ${buildah ? buildah.seconds.toFixed(2).padStart(9) : '      n/a'}   ${buildah ? buildah.peakMB.toFixed(0).padStart(10) : '       n/a'}   ${ratio}`);
}
