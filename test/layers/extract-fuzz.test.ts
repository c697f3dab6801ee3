// A differential fuzzer for layer extraction (issue 26): random layer sequences, applied by hoist
// inside a tree of sentinels and by umoci as the judge. No sequence may change a sentinel, and
// hoist's result must be umoci's except where a named class of DISAGREEMENTS explains the
// difference. HOIST_FUZZ_SEQUENCES and HOIST_FUZZ_SEED run more or other sequences
// (scripts/fuzz-extract.sh); HOIST_FUZZ_FINDINGS names a file that each shrunk failure is appended to.
import { appendFileSync, chmodSync, closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, expect, test } from 'vitest';
import { readTar } from '../../layers/index.ts';
import {
  formatFinding, fuzz, generateSequence, isBelow, layerTarBytes, removeTree, SANDBOX_MARK, sequenceRandom, type Extractor, type FuzzEntry, type Sequence,
} from '../support/layer-fuzz.ts';

const SEQUENCES = Number(process.env.HOIST_FUZZ_SEQUENCES ?? 1500);
const SEED = Number(process.env.HOIST_FUZZ_SEED ?? 26);
const work = mkdtempSync(join(tmpdir(), 'hoist-extract-fuzz-'));
afterAll(() => removeTree(work));

test(`${SEQUENCES} random layer sequences (seed ${SEED}): nothing outside the root changes, and hoist's result is umoci's or a named disagreement`, async () => {
  const findings = process.env.HOIST_FUZZ_FINDINGS;
  const report = await fuzz({
    seed: SEED, sequences: SEQUENCES, work: join(work, 'hoist'),
    onFinding: (finding) => findings && appendFileSync(findings, `${formatFinding(finding, SEED)}\n`),
  });
  const counts = Object.entries(report.counts).sort(([a], [b]) => a.localeCompare(b)).map(([key, count]) => `${key} ${count}`).join(', ');
  console.log(`extract fuzz: ${SEQUENCES} sequences, seed ${SEED}, ${report.seconds.toFixed(1)} s: ${counts}`);
  expect(report.counts.escape ?? 0, report.findings.map((finding) => formatFinding(finding, SEED)).join('\n')).toBe(0);
  expect(report.counts.unexplained ?? 0, report.findings.map((finding) => formatFinding(finding, SEED)).join('\n')).toBe(0);
}, 600_000);

/** An extractor with none of hoist's checks: it writes and chmods through whatever symlinks it meets. */
const naiveExtractor: Extractor = async (_store, sequence, sandbox) => {
  try {
    for (const layer of sequence) {
      for await (const { header, body } of readTar(Readable.from([layerTarBytes(layer, sandbox.dir)]))) {
        const path = join(sandbox.root, header.path);
        const name = header.path.split('/').pop()!;
        mkdirSync(dirname(path), { recursive: true });
        if (name.startsWith('.wh.')) {
          if (name !== '.wh..wh..opq') rmSync(join(dirname(path), name.slice(4)), { recursive: true, force: true });
          continue;
        }
        if (header.type !== 'directory' || !lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) rmSync(path, { recursive: true, force: true });
        if (header.type === 'directory') mkdirSync(path, { recursive: true });
        if (header.type === 'symlink') symlinkSync(header.linkname!, path);
        if (header.type === 'hardlink') linkSync(join(sandbox.root, header.linkname!), path);
        if (header.type === 'file') {
          const fd = openSync(path, 'w');
          for await (const chunk of body) writeSync(fd, chunk);
          closeSync(fd);
        }
        if (header.type === 'file' || header.type === 'directory') chmodSync(path, header.mode);
      }
    }
    return { applied: true };
  } catch (error) {
    return { applied: false, message: (error as Error).message };
  }
};

test('the fuzzer finds escapes in an extractor that follows symlinks, and shrinks them', async () => {
  const report = await fuzz({ seed: SEED, sequences: 200, work: join(work, 'naive'), compare: false, extract: naiveExtractor });
  expect(report.counts.escape).toBeGreaterThan(0);
  const escapes = report.findings.filter((finding) => finding.verdict.kind === 'escape');
  expect(escapes.length).toBeGreaterThan(0);
  for (const escape of escapes) expect(escape.sequence.flat().length).toBeLessThanOrEqual(3);
});

/** Whether a symlink at `entry.path` leads out of the root: to the sandbox, or up more `..` than it is deep. */
function leavesRoot(entry: FuzzEntry): boolean {
  const target = entry.target ?? '';
  if (target.startsWith(SANDBOX_MARK)) return true;
  const ups = target.split('/').filter((part) => part === '..').length;
  return !target.startsWith('/') && target.split('/').every((part, at) => part === '..' || at >= ups) && ups > entry.path.split('/').length - 1;
}

/** A directory, then a symlink out of the root at the same path, in one layer (a late chmod would follow it). */
const dirReplacedBySymlink = (sequence: Sequence): boolean => sequence.some((layer) => layer.some((dir, at) => (
  dir.kind === 'directory' && layer.slice(at + 1).some((link) => link.kind === 'symlink' && link.path === dir.path && leavesRoot(link))
)));

/** In one layer: an entry at or below Q, an opaque marker above Q, a symlink out of the root at Q, an entry below Q. */
const opaqueThenSymlink = (sequence: Sequence): boolean => sequence.some((layer) => layer.some((opaque, j) => opaque.kind === 'opaque' && layer.some((link, k) => (
  k > j && link.kind === 'symlink' && isBelow(link.path, opaque.path) && leavesRoot(link)
  && layer.slice(0, j).some((entry) => entry.path === link.path || isBelow(entry.path, link.path))
  && layer.slice(k + 1).some((entry) => isBelow(entry.path, link.path))
))));

test("the fixed seed's sequences hold both shapes of the escapes issue 26 reports", () => {
  const sequences = Array.from({ length: SEQUENCES }, (_, index) => generateSequence(sequenceRandom(SEED, index)));
  expect(sequences.filter(dirReplacedBySymlink).length).toBeGreaterThan(0);
  expect(sequences.filter(opaqueThenSymlink).length).toBeGreaterThan(0);
});
