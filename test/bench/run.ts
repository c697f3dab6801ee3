// `npm run bench`: hoist's benchmarks, printed as figures to quote.
import { benchParser } from './parser.ts';

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const parser = benchParser();
console.log(
  `parser: ${parser.lines}-line Dockerfile (${parser.bytes} bytes) parsed, planned and expanded: ` +
    `median ${median(parser.ms).toFixed(1)} ms over ${parser.ms.length} runs, first run ${parser.ms[0]!.toFixed(1)} ms`,
);
