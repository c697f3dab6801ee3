// The benchmark workloads' build contexts, generated. The same workload and seed always give the
// same bytes, modes and dates, so every run, and hoist and buildah within a run, build the same thing.
//   node bench/contexts.ts WORKLOAD CONTEXT_DIR [SEED]
import { createCipheriv, createHash, type Cipheriv } from 'node:crypto';
import { chmodSync, linkSync, lutimesSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The date of every generated file and directory. */
const MTIME = 1_700_000_000;

/** Seeded randomness: numbers from mulberry32, bulk bytes from AES-CTR (fast, and the same everywhere). */
class Random {
  private state: number;
  private readonly keystream: Cipheriv;

  constructor(label: string) {
    const key = createHash('sha256').update(label).digest();
    this.state = key.readUInt32LE(16);
    this.keystream = createCipheriv('aes-128-ctr', key.subarray(0, 16), Buffer.alloc(16));
  }

  /** A number in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** A log-normal number (median 1): many small values and a long tail, as file sizes are. */
  logNormal(sigma: number): number {
    const normal = Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
    return Math.exp(sigma * normal);
  }

  /** Bytes that look random to a compressor. */
  bytes(count: number): Buffer {
    return this.keystream.update(Buffer.alloc(count));
  }
}

const WORDS = (
  'alpha array async await buffer cache callback chunk client config context cursor data decode default ' +
  'delete digest emit encode entry error event export fetch field filter format handler header index ' +
  'input items join key length listen logger map merge message module node options output parse path ' +
  'plugin promise queue read reduce render request resolve response result route schema scope server ' +
  'session shift slice socket source split state status store stream string token update value write'
).split(' ');

/** Pseudo-JavaScript, as a node_modules tree or a binary's symbol table holds: gzip -1 makes it about 40% of its size. */
function sourceText(random: Random, size: number): Buffer {
  const names = Array.from({ length: 8000 }, () => `${random.pick(WORDS)}${random.pick(WORDS).replace(/^./, (c) => c.toUpperCase())}${random.below(10000)}`);
  const name = (): string => random.pick(names);
  const statements = [
    (): string => `const ${name()} = require('${random.pick(WORDS)}-${random.pick(WORDS)}');`,
    (): string => `function ${name()}(${name()}, ${name()}) {`,
    (): string => `  return ${name()}.${random.pick(WORDS)}(${random.below(2 ** 32)}, ${name()});`,
    (): string => `  if (${name()} === ${random.below(1000)}) throw new Error('${random.pick(WORDS)} ${random.pick(WORDS)}');`,
    (): string => `  const ${name()} = await ${name()}[${random.below(16)}] ?? '${random.below(2 ** 32).toString(36)}${random.below(2 ** 32).toString(36)}';`,
    (): string => '}',
    (): string => `module.exports.${name()} = ${name()};`,
    (): string => `// ${random.pick(WORDS)} ${random.pick(WORDS)} ${random.pick(WORDS)} ${random.pick(WORDS)}`,
  ];
  const lines: string[] = [];
  for (let length = 0; length < size;) {
    const line = random.pick(statements)();
    lines.push(line);
    length += line.length + 1;
  }
  return Buffer.from(lines.join('\n')).subarray(0, size);
}

/**
 * An executable's worth of bytes, in 4 KiB runs: random (compressed data), a few byte values
 * (machine code), text (symbols and strings) and zeros. gzip -6 halves it, as it does a Go binary.
 */
function binaryLike(random: Random, size: number): Buffer {
  const text = sourceText(random, 1 << 20);
  const opcodes = random.bytes(12);
  const run = 4096;
  const out = Buffer.alloc(Math.ceil(size / run) * run); // zeros unless filled
  for (let at = 0; at < size; at += run) {
    const kind = random.next();
    if (kind < 0.15) random.bytes(run).copy(out, at);
    else if (kind < 0.6) for (let i = 0; i < run; i++) out[at + i] = opcodes[random.below(opcodes.length)]!;
    else if (kind < 0.88) {
      const from = random.below(text.length - run);
      text.copy(out, at, from, from + run);
    }
  }
  return out.subarray(0, size);
}

function writeFile(path: string, content: Buffer | string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode); // whatever the umask
  utimesSync(path, MTIME, MTIME);
}

/** Dates every entry under `dir` (and `dir`) MTIME and makes the directories 0755. */
function settle(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) chmodSync(path, 0o755);
    lutimesSync(path, MTIME, MTIME);
  }
  chmodSync(dir, 0o755);
  utimesSync(dir, MTIME, MTIME);
}

/** `app`: a 10 MiB executable (W1, W6). */
function binaryContext(context: string, seed: number): void {
  writeFile(join(context, 'app'), binaryLike(new Random(`binary ${seed}`), 10 << 20), 0o755);
}

/**
 * `node_modules`: packages of 5 to 35 files, some scoped, some nested in other packages'
 * node_modules; `files` entries in all, one in 30 a hardlink to a file of another package; file
 * sizes log-normal, about `bytes` in all, one file in 20 incompressible (a native addon); one
 * symlink per 60 files, half in node_modules/.bin, half aliases inside packages.
 */
function treeContext(context: string, seed: number, files: number, bytes: number): void {
  const random = new Random(`tree ${seed}`);
  const modules = join(context, 'node_modules');
  rmSync(modules, { recursive: true, force: true });
  mkdirSync(join(modules, '.bin'), { recursive: true });
  const text = sourceText(random, 24 << 20);

  const hardlinks = Math.floor(files / 30);
  const regular = files - hardlinks;
  const weights = Array.from({ length: regular }, () => random.logNormal(1.3));
  const scale = bytes / weights.reduce((sum, w) => sum + w, 0);
  const sizes = weights.map((w) => Math.min(4 << 20, Math.max(16, Math.floor(w * scale))));

  const folders = ['', 'lib', 'lib/internal', 'dist', 'dist/esm', 'src', 'types'];
  const extensions = ['.js', '.js', '.js', '.js', '.mjs', '.cjs', '.d.ts', '.json', '.md', '.map'];
  const packages: string[] = [];
  const written: string[] = [];
  for (let n = 0; written.length < regular; n++) {
    const parent = n % 11 === 10 && packages.length > 0 ? join(random.pick(packages), 'node_modules') : modules;
    const pkg = join(parent, n % 9 === 0 ? `@org-${n % 17}/pkg-${n}` : `pkg-${n}`);
    packages.push(pkg);
    const count = Math.min(regular - written.length, 5 + random.below(31));
    for (let k = 0; k < count; k++) {
      const index = written.length;
      const size = sizes[index]!;
      const native = k >= 2 && index % 20 === 7;
      const name = k === 0 ? 'package.json' : k === 1 ? 'index.js' : `${random.pick(WORDS)}-${k}${native ? '.node' : random.pick(extensions)}`;
      const path = join(pkg, k < 2 ? '' : random.pick(folders), name);
      const from = random.below(text.length - size);
      const body = native ? random.bytes(size) : text.subarray(from, from + size);
      // The path in a comment first, so that no two files have the same content.
      const content = Buffer.concat([Buffer.from(`/* ${relative(context, path)} */\n`), body]).subarray(0, size);
      writeFile(path, content, index % 50 === 3 ? 0o755 : 0o644);
      written.push(path);
    }
  }
  for (let h = 0; h < hardlinks; h++) {
    const target = random.pick(written);
    const link = join(random.pick(packages), 'linked', `${h}-${target.split('/').at(-1)}`);
    mkdirSync(dirname(link), { recursive: true });
    linkSync(target, link);
  }
  for (let s = 0; s < Math.floor(files / 60); s++) {
    const pkg = random.pick(packages);
    const link = s % 2 === 0 ? join(modules, '.bin', `tool-${s}`) : join(pkg, `alias-${s}.js`);
    symlinkSync(relative(dirname(link), join(pkg, 'index.js')), link);
  }
  settle(context);
}

/** A small file whose content names the seed. */
function noteContext(name: string, text: (seed: number) => string): (context: string, seed: number) => void {
  return (context, seed) => writeFile(join(context, name), text(seed), 0o644);
}

const generators: Record<string, (context: string, seed: number) => void> = {
  'W1-static-binary': binaryContext,
  'W2-apt-python': noteContext('app.py', (seed) => `import platform\nprint("hoist benchmark W2, seed ${seed}: python", platform.python_version())\n`),
  'W3-many-small-files': (context, seed) => treeContext(context, seed, 30_000, 264_000_000),
  'W4-big-run-layer': noteContext('marker', (seed) => `W4 seed ${seed}\n`), // its RUN makes the data
  'W5-multi-stage': noteContext('marker', (seed) => `W5 seed ${seed}\n`),
  'W6-warm-rebuild': binaryContext,
  'W8-debian-run-true': noteContext('marker', (seed) => `W8 seed ${seed}\n`),
};

/** The file of each context that the benchmark's "one file changed" rebuild changes. */
const changedFile: Record<string, string> = {
  'W1-static-binary': 'app',
  'W2-apt-python': 'app.py',
  'W3-many-small-files': 'node_modules/pkg-1/index.js',
  'W4-big-run-layer': 'marker',
  'W5-multi-stage': 'marker',
  'W6-warm-rebuild': 'app',
  'W8-debian-run-true': 'marker',
};

export const benchDir = fileURLToPath(new URL('.', import.meta.url));

/** The workloads, in the order the benchmark runs them. */
export const WORKLOADS = Object.keys(generators);

/** The folder of a workload: its Dockerfile. */
export const workloadDir = (workload: string): string => join(benchDir, 'workloads', workload);

/** Writes (or rewrites) a workload's build context in `context`. */
export function prepareContext(workload: string, context: string, seed: number): void {
  const generate = generators[workload];
  if (!generate) throw new Error(`no such workload: ${workload} (known: ${WORKLOADS.join(', ')})`);
  mkdirSync(context, { recursive: true });
  generate(context, seed);
}

/**
 * Changes one file of a prepared context (appends a line naming `round`), or with round 0 puts it
 * back as `prepareContext` wrote it; its mode and date stay.
 */
export function changeOneFile(workload: string, context: string, original: Buffer, round: number): void {
  const path = join(context, changedFile[workload]!);
  const { mode } = statSync(path);
  writeFile(path, round === 0 ? original : Buffer.concat([original, Buffer.from(`\nchanged ${round}\n`)]), mode & 0o7777);
}

/** The content of the file `changeOneFile` changes, as prepared. */
export const oneFileOriginal = (workload: string, context: string): Buffer => readFileSync(join(context, changedFile[workload]!));

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [workload, context, seed = '1'] = process.argv.slice(2);
  if (!workload || !context) {
    console.error(`usage: node bench/contexts.ts WORKLOAD CONTEXT_DIR [SEED]\nworkloads: ${WORKLOADS.join(', ')}`);
    process.exit(2);
  }
  prepareContext(workload, context, Number(seed));
}
