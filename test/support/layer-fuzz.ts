// A differential fuzzer for layer extraction (issue 26): random layer sequences from a seeded PRNG,
// applied by hoist (layers/extract.ts) inside a sandbox of sentinel files that must never change,
// and by umoci (`umoci raw unpack --rootless`) as the judge of what the result should be. A
// difference is accepted only when one of DISAGREEMENTS explains it; an escape never is.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { applyLayers, MediaTypes, OPAQUE_MARKER, REF_NAME, Store, WHITEOUT_PREFIX, type Layer } from '../../layers/index.ts';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarHeader } from '../../layers/tar.ts';
import { prng } from './reliability.ts';

// ---------------------------------------------------------------------------------------------
// Sequences: what the generator makes, and how they are written as layer tars.

/** One entry of a layer: whiteouts and opaque markers name what they hide, not their `.wh.` file. */
export interface FuzzEntry {
  kind: 'file' | 'directory' | 'symlink' | 'hardlink' | 'whiteout' | 'opaque';
  /** Relative path; for `opaque` the directory (`` for the root), for `whiteout` what it deletes. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** A symlink's target or a hardlink's; `$S` stands for the sandbox's absolute path. */
  target?: string;
  content?: string;
}

/** Layers, bottom first. */
export type Sequence = FuzzEntry[][];

/** Stands for the sandbox's absolute path in a symlink target (the sandbox differs by lane and run). */
export const SANDBOX_MARK = '$S';

/** The names paths are made of: two, so that entries often land on one another. */
const NAMES = ['a', 'b'];
const DIR_MODES = [0o755, 0o755, 0o777, 0o700, 0o555, 0o000, 0o1777, 0o2755, 0o4755, 0o750, 0o311];
const FILE_MODES = [0o644, 0o644, 0o755, 0o000, 0o777, 0o4755, 0o2755, 0o6755, 0o600, 0o444, 0o7777];
const OWNERS = [0, 0, 1000, 65534, 12345];
const CONTENTS = ['', 'x', 'hello\n', 'other content'];
/** Where symlinks lead out of the root: names that the sentinel tree holds at each level. */
const OUTSIDE_SUFFIXES = ['', 'a', 'b', 'a/a', 'a/b', 'outside', 'outside/a', 'outside/b', 'root', 'root/a'];
const KIND_WEIGHTS: [FuzzEntry['kind'], number][] = [['directory', 24], ['file', 26], ['symlink', 20], ['hardlink', 5], ['whiteout', 12], ['opaque', 10]];

type Random = ReturnType<typeof prng>;
const pick = <T>(random: Random, items: readonly T[]): T => items[random.int(items.length)]!;

function weighted<T>(random: Random, items: [T, number][]): T {
  let at = random.next() * items.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [item, weight] of items) if ((at -= weight) < 0) return item;
  return items[items.length - 1]![0];
}

function randomPath(random: Random, depth = 1 + weighted(random, [[0, 35], [1, 40], [2, 25]])): string {
  return Array.from({ length: depth }, () => pick(random, NAMES)).join('/');
}

/** Where a symlink at `path` points: inside the root, up a `..` chain into the sentinels, or absolute. */
function symlinkTarget(random: Random, path: string): string {
  const depth = path.split('/').length;
  switch (random.int(4)) {
    case 0: return pick(random, ['a', 'b', 'a/b', '.', '..', '../a', '../b/a']);
    case 1: {
      // depth-1 `..` reach the root, one more its parent (S/x), two more the sandbox (S).
      const chain = Array.from({ length: depth + random.int(2) }, () => '..').join('/');
      const suffix = pick(random, OUTSIDE_SUFFIXES);
      return suffix ? `${chain}/${suffix}` : chain;
    }
    case 2: return `/${pick(random, ['', 'a', 'b', 'a/b', 'b/a'])}`;
    default: return `${SANDBOX_MARK}/${pick(random, ['outside', 'outside/a', 'outside/b', 'a', 'b', 'x', 'x/a', 'x/b'])}`;
  }
}

/** A hardlink's target: mostly a path a file was given before, now and then one outside the root. */
function hardlinkTarget(random: Random, files: string[]): string {
  switch (weighted(random, [[0, 80], [1, 8], [2, 8], [3, 4]])) {
    case 0: return files.length > 0 && random.next() < 0.9 ? pick(random, files) : randomPath(random);
    case 1: return `../${pick(random, ['a', 'b', 'x/b', 'root/a'])}`;
    case 2: return `/${randomPath(random)}`;
    default: return `${SANDBOX_MARK}/b`;
  }
}

/**
 * What a sequence has made so far, roughly (symlinks are not followed): the generator uses it to
 * put entries where they can land, below directories rather than files, hardlinks to files.
 */
class Sketch {
  private readonly kinds = new Map<string, FuzzEntry['kind']>();

  /** Notes an entry's effect. */
  apply(entry: FuzzEntry): void {
    const clear = (path: string, self: boolean): void => {
      for (const known of [...this.kinds.keys()]) if (isBelow(known, path) || (self && known === path)) this.kinds.delete(known);
    };
    if (entry.kind === 'whiteout') return clear(entry.path, true);
    if (entry.kind === 'opaque') return clear(entry.path, false);
    if (entry.kind !== 'directory' || this.kinds.get(entry.path) !== 'directory') clear(entry.path, true);
    const parts = entry.path.split('/');
    for (let at = 1; at < parts.length; at++) if (!this.kinds.has(parts.slice(0, at).join('/'))) this.kinds.set(parts.slice(0, at).join('/'), 'directory');
    this.kinds.set(entry.path, entry.kind);
  }

  /** Whether a file or hardlink lies above `path` (an entry there would be refused by both). */
  underFile(path: string): boolean {
    const parts = path.split('/');
    return parts.slice(1).some((_, at) => ['file', 'hardlink'].includes(this.kinds.get(parts.slice(0, at + 1).join('/')) ?? ''));
  }

  files(): string[] {
    return [...this.kinds].filter(([, kind]) => kind === 'file' || kind === 'hardlink').map(([path]) => path);
  }
}

/**
 * A random sequence of 1 to 4 layers of 1 to 6 entries each, in random order (now and then sorted
 * as real layers are). An entry often takes the path of the one before it (a directory replaced by
 * a symlink in the same layer), goes below it (a write through what may now be a symlink), or
 * takes a path used before; an opaque marker often empties the parent of a path used before.
 */
export function generateSequence(random: Random): Sequence {
  const used: string[] = [];
  const sketch = new Sketch();
  const layers: Sequence = [];
  const layerCount = 1 + random.int(4);
  for (let l = 0; l < layerCount; l++) {
    const layer: FuzzEntry[] = [];
    const entryCount = 1 + random.int(6);
    for (let e = 0; e < entryCount; e++) {
      const kind = weighted(random, KIND_WEIGHTS);
      const previous = layer[layer.length - 1];
      // Below a symlink or an opaque directory just made is where escapes were found: go there more often.
      const below = previous?.kind === 'symlink' || previous?.kind === 'opaque' ? 0.4 : 0.15;
      // After an opaque marker, now and then take up again, below it, a path this layer used before it.
      const emptied = previous?.kind === 'opaque' ? layer.filter((entry) => isBelow(entry.path, previous.path)) : [];
      const choose = (): string => {
        const move = random.next();
        if (emptied.length > 0 && move < 0.5) {
          const depth = previous!.path ? previous!.path.split('/').length : 0;
          return pick(random, emptied).path.split('/').slice(0, depth + 1).join('/');
        }
        if (previous?.path && move < 0.15) return previous.path;
        if (previous && move < 0.15 + below && previous.path.split('/').length < 4) return previous.path ? `${previous.path}/${pick(random, NAMES)}` : pick(random, NAMES);
        if (used.length > 0 && move < 0.6) return pick(random, used);
        return randomPath(random);
      };
      let path = choose();
      for (let tries = 0; tries < 3 && sketch.underFile(path) && random.next() < 0.75; tries++) path = choose();
      // An opaque marker empties an ancestor of a path used before, often one of this layer's.
      const before = layer.length > 0 && random.next() < 0.5 ? layer.map((entry) => entry.path) : used;
      if (kind === 'opaque' && before.length > 0 && random.next() < 0.7) path = pick(random, before).split('/').slice(0, -1 - random.int(2)).join('/');
      if (kind === 'opaque' && random.next() < 0.1) path = '';
      if (path) used.push(path);
      const owner = { uid: pick(random, OWNERS), gid: pick(random, OWNERS), mtime: pick(random, [0, 1_000_000_000, 1_700_000_000]) + random.int(1000) };
      let entry: FuzzEntry;
      switch (kind) {
        case 'directory': entry = { kind, path, mode: pick(random, DIR_MODES), ...owner }; break;
        case 'file': entry = { kind, path, mode: pick(random, FILE_MODES), ...owner, content: pick(random, CONTENTS) }; break;
        case 'symlink': entry = { kind, path, mode: 0o777, ...owner, target: symlinkTarget(random, path) }; break;
        case 'hardlink': entry = { kind, path, mode: pick(random, FILE_MODES), ...owner, target: hardlinkTarget(random, sketch.files().filter((file) => file !== path)) }; break;
        default: entry = { kind, path, mode: 0, uid: 0, gid: 0, mtime: 0 };
      }
      if (!path && kind !== 'opaque') continue; // the root itself: only an opaque marker there
      layer.push(entry);
      sketch.apply(entry);
    }
    if (layer.length === 0) continue;
    if (random.next() < 0.3) layer.sort((a, b) => (tarPath(a) < tarPath(b) ? -1 : tarPath(a) > tarPath(b) ? 1 : 0));
    layers.push(layer);
  }
  return layers.length > 0 ? layers : [[{ kind: 'directory', path: 'a', mode: 0o755, uid: 0, gid: 0, mtime: 0 }]];
}

/** The path an entry has in the tar. */
function tarPath(entry: FuzzEntry): string {
  const parent = entry.path.includes('/') ? entry.path.slice(0, entry.path.lastIndexOf('/') + 1) : '';
  if (entry.kind === 'opaque') return entry.path ? `${entry.path}/${OPAQUE_MARKER}` : OPAQUE_MARKER;
  if (entry.kind === 'whiteout') return `${parent}${WHITEOUT_PREFIX}${entry.path.slice(parent.length)}`;
  return entry.path;
}

/** A layer as an uncompressed tar, `$S` in symlink targets replaced by `sandbox`. */
export function layerTarBytes(layer: FuzzEntry[], sandbox: string): Buffer {
  const parts: Buffer[] = [];
  for (const entry of layer) {
    const content = Buffer.from(entry.content ?? '');
    const type: TarHeader['type'] = entry.kind === 'whiteout' || entry.kind === 'opaque' ? 'file' : entry.kind;
    const linkname = entry.target?.replace(SANDBOX_MARK, sandbox);
    parts.push(encodeHeader({
      path: tarPath(entry), type, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime,
      size: type === 'file' ? content.length : 0, ...(linkname !== undefined ? { linkname } : {}),
    }));
    if (type === 'file') parts.push(content, padding(content.length));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** A sequence as text, one layer a line: what findings and failures show. */
export function formatSequence(sequence: Sequence): string {
  return sequence.map((layer, l) => `L${l + 1}: ${layer.map(formatEntry).join(' | ')}`).join('\n');
}

function formatEntry(entry: FuzzEntry): string {
  const mode = entry.mode.toString(8).padStart(4, '0');
  switch (entry.kind) {
    case 'directory': return `dir ${entry.path} ${mode}`;
    case 'file': return `file ${entry.path} ${mode} ${JSON.stringify(entry.content)}`;
    case 'symlink': return `symlink ${entry.path} -> ${entry.target}`;
    case 'hardlink': return `hardlink ${entry.path} => ${entry.target}`;
    case 'whiteout': return `whiteout ${tarPath(entry)}`;
    default: return `opaque ${tarPath(entry)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The sandbox: the root inside a tree of sentinels that nothing may change.

/**
 * A sandbox S holding the root at S/x/root. A symlink's `..` chain reaches S/x and S; both hold
 * entries named as the root's (a, b) so that a write through such a symlink lands on a sentinel.
 */
export class Sandbox {
  readonly dir: string;
  readonly root: string;

  constructor(dir: string) {
    this.dir = dir;
    this.root = join(dir, 'x', 'root');
    this.build();
  }

  /** Makes the sentinel tree afresh (after an escape changed it) with an empty root. */
  build(): void {
    if (lstatSync(this.dir, { throwIfNoEntry: false })) removeTree(this.dir);
    const dirs: [string, number][] = [['', 0o755], ['a', 0o755], ['a/b', 0o700], ['outside', 0o755], ['outside/a', 0o750], ['outside/a/b', 0o755], ['x', 0o755], ['x/a', 0o755], ['x/root', 0o755]];
    const files: [string, number][] = [['a/a', 0o644], ['b', 0o600], ['outside/a/a', 0o644], ['outside/b', 0o640], ['x/b', 0o644]];
    for (const [rel, mode] of dirs) {
      mkdirSync(join(this.dir, rel), { recursive: true });
      chmodSync(join(this.dir, rel), mode);
    }
    for (const [rel, mode] of files) writeFileSync(join(this.dir, rel), `sentinel ${rel}\n`, { mode });
  }

  /** Every sentinel (all of S but the root's contents) as a line of what it is, its metadata and content. */
  fingerprint(): Map<string, string> {
    const lines = new Map<string, string>();
    const visit = (rel: string): void => {
      const path = join(this.dir, rel);
      const info = lstatSync(path, { bigint: true, throwIfNoEntry: false });
      if (!info) return; // gone: the fingerprint before has it
      const type = info.isDirectory() ? 'dir' : info.isSymbolicLink() ? 'symlink' : info.isFile() ? 'file' : 'other';
      const detail = info.isFile() ? attempt(() => createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)) : info.isSymbolicLink() ? readlinkSync(path) : '';
      const times = rel === 'x/root' ? '' : ` links=${info.nlink} mtime=${info.mtimeNs} ctime=${info.ctimeNs}`; // the root's own change as entries come and go in it
      lines.set(rel, `${type} ${(info.mode & 0o7777n).toString(8)} ${info.uid}:${info.gid}${times} ${detail}`);
      if (!info.isDirectory() || path === this.root) return;
      const names = attempt(() => readdirSync(path).sort());
      if (typeof names === 'string') lines.set(rel, `${lines.get(rel)} ${names}`);
      else for (const name of names) visit(rel ? `${rel}/${name}` : name);
    };
    visit('');
    return lines;
  }
}

/** What `read` gives, or that it could not read (an escape may make a sentinel 000). */
function attempt<T>(read: () => T): T | string {
  try {
    return read();
  } catch (error) {
    return `unreadable (${(error as NodeJS.ErrnoException).code})`;
  }
}

/** What changed between two fingerprints, one line per sentinel. */
export function sentinelChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [rel, line] of before) if (after.get(rel) !== line) changes.push(`$S/${rel}: ${line} -> ${after.get(rel) ?? 'gone'}`);
  for (const [rel, line] of after) if (!before.has(rel)) changes.push(`$S/${rel}: new ${line}`);
  return changes;
}

/** Gives the owner rwx on every directory below `dir` (lstat first: never chmod through a symlink), so it can be read and removed. */
function makeAccessible(dir: string): void {
  const info = lstatSync(dir, { throwIfNoEntry: false });
  if (!info?.isDirectory()) return;
  if ((info.mode & 0o700) !== 0o700) chmodSync(dir, (info.mode & 0o7777) | 0o700);
  for (const name of readdirSync(dir)) makeAccessible(join(dir, name));
}

/** Removes a tree whose directories may deny their owner access (modes from a layer). */
export function removeTree(dir: string): void {
  makeAccessible(dir);
  rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Applying a sequence: hoist in-process, umoci in a child process.

/** How an extraction ended: applied, or refused with its message. */
export type Outcome = { applied: true } | { applied: false; message: string };

/** Something that applies a sequence to a sandbox's root: hoist, or (to prove the fuzzer) a naive extractor. */
export type Extractor = (store: Store, sequence: Sequence, sandbox: Sandbox) => Promise<Outcome>;

/** Applies `sequence` with hoist's applyLayers (asRoot false: the fuzzer runs as an ordinary user). */
export const hoistExtractor: Extractor = async (store, sequence, sandbox) => {
  const layers: Layer[] = [];
  for (const layer of sequence) {
    const { digest, size } = await store.writeBlob(Readable.from([layerTarBytes(layer, sandbox.dir)]));
    layers.push({ mediaType: MediaTypes.ociLayer, digest, size, diffId: digest });
  }
  try {
    await applyLayers(store, layers, sandbox.root, { asRoot: false });
    return { applied: true };
  } catch (error) {
    return { applied: false, message: (error as Error).message };
  } finally {
    for (const { digest } of layers) {
      rmSync(store.blobPath(digest), { force: true });
      rmSync(store.listingPath(digest), { force: true });
    }
  }
};

/**
 * A shell that runs umoci and removes directories for one lane, reading commands on its stdin:
 * spawning from a small shell costs far less than from Node, and removal happens off Node's thread.
 * `unpack DIR` answers one line, `ok` or `refused` and umoci's last line (its error; warnings come
 * before it); `remove DIR` answers nothing. Directories are the fuzzer's own, without spaces.
 */
const HELPER = String.raw`
while read -r command dir; do
  case $command in
    unpack)
      if umoci raw unpack --rootless --image "$dir/layout:fuzz" "$dir/rootfs" 2>"$dir/stderr"; then echo ok
      else printf 'refused %s\n' "$(tail -n 1 "$dir/stderr")"; fi ;;
    remove)
      find "$dir" -type d ! -perm -u=rwx -exec chmod u+rwx {} \; 2>/dev/null
      rm -rf "$dir" ;;
  esac
done`;

export class UmociHelper {
  private readonly child: ChildProcess;
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly exited: Promise<void>;

  constructor() {
    this.child = spawn('bash', ['-c', HELPER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.child.on('close', () => resolve()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.waiting.shift()?.(line));
  }

  /** Unpacks the image tagged `fuzz` in DIR/layout to DIR/rootfs. */
  unpack(dir: string): Promise<Outcome> {
    return new Promise((resolve) => {
      this.waiting.push((line) => resolve(line === 'ok' ? { applied: true } : { applied: false, message: line.replace(/^refused /, '') }));
      this.child.stdin!.write(`unpack ${dir}\n`);
    });
  }

  /** Removes DIR, in the background. */
  remove(dir: string): void {
    this.child.stdin!.write(`remove ${dir}\n`);
  }

  /** Finishes what is queued, then ends. */
  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.exited;
  }
}

/** Writes `sequence` as an OCI image layout tagged `fuzz` in `dir`/layout, symlink targets naming `sandbox`. */
export function writeUmociLayout(sequence: Sequence, sandbox: string, dir: string): void {
  const blobs = join(dir, 'layout', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (bytes: Buffer): { digest: string; size: number } => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const layers = sequence.map((layer) => ({ mediaType: MediaTypes.ociLayer, ...put(layerTarBytes(layer, sandbox)) }));
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) } })));
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, ...config }, layers })));
  writeFileSync(join(dir, 'layout', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'layout', 'index.json'), JSON.stringify({
    schemaVersion: 2, manifests: [{ mediaType: MediaTypes.ociManifest, ...manifest, annotations: { [REF_NAME]: 'fuzz' } }],
  }));
}

// ---------------------------------------------------------------------------------------------
// Comparing the two results.

/**
 * What is compared of each path: type, mode (with setuid, setgid, sticky), content, symlink target,
 * which other paths share its inode (hardlinks), the mtime of files and symlinks, and the owner.
 * Directory mtimes are not compared: a directory both tools make because an entry implies it has
 * the time of extraction, and umoci restores a parent's time after each entry where hoist sets it
 * once at the end of the layer. Owners are not compared: both extract rootless, so every file is
 * the extracting user's; hoist's tree is checked for that instead (a stray chown would show).
 */
export interface Node {
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  content?: string;
  target?: string;
  mtime?: number;
  /** Other paths with the same inode. */
  links?: string[];
  owner: string;
}

/** The tree below `root` (`` for the root itself), made readable for the while (modes are read first, and put back). */
export function snapshotTree(root: string): Map<string, Node> {
  const nodes = new Map<string, Node>();
  const opened: [string, number][] = [];
  const inodes = new Map<bigint, string[]>();
  const files: string[] = [];
  const visit = (rel: string): void => {
    const path = rel ? join(root, rel) : root;
    const info = lstatSync(path, { bigint: true });
    const mode = Number(info.mode & 0o7777n);
    const owner = `${info.uid}:${info.gid}`;
    if (info.isDirectory()) {
      nodes.set(rel, { type: 'directory', mode, owner });
      if ((mode & 0o700) !== 0o700) {
        chmodSync(path, mode | 0o700);
        opened.push([path, mode]);
      }
      for (const name of readdirSync(path).sort()) visit(rel ? `${rel}/${name}` : name);
    } else if (info.isSymbolicLink()) {
      nodes.set(rel, { type: 'symlink', mode: 0o777, target: readlinkSync(path), mtime: Number(info.mtimeNs / 1_000_000_000n), owner });
    } else {
      nodes.set(rel, { type: info.isFile() ? 'file' : 'other', mode, mtime: Number(info.mtimeNs / 1_000_000_000n), owner });
      if (info.isFile()) files.push(rel);
    }
    if (!info.isDirectory() && info.nlink > 1n) inodes.set(info.ino, [...(inodes.get(info.ino) ?? []), rel]);
  };
  visit('');
  for (const paths of inodes.values()) for (const rel of paths) nodes.get(rel)!.links = paths.filter((other) => other !== rel);
  for (const rel of files) {
    const path = join(root, rel);
    const node = nodes.get(rel)!;
    if ((node.mode & 0o400) === 0) {
      chmodSync(path, node.mode | 0o400);
      opened.push([path, node.mode]);
    }
    node.content = readFileSync(path, 'utf8');
  }
  // Deepest first: a directory is closed again after what is below it.
  for (const [path, mode] of opened.reverse()) chmodSync(path, mode);
  return nodes;
}

/** A path where the two trees differ, with what each holds there. */
export interface Difference {
  path: string;
  hoist?: Node;
  umoci?: Node;
}

const comparable = (node: Node | undefined): string => {
  if (!node) return 'absent';
  const { owner: _owner, ...rest } = node;
  return JSON.stringify(node.type === 'directory' ? { type: rest.type, mode: rest.mode } : rest);
};

export function compareTrees(hoist: Map<string, Node>, umoci: Map<string, Node>): Difference[] {
  const paths = [...new Set([...hoist.keys(), ...umoci.keys()])].sort();
  return paths.filter((path) => comparable(hoist.get(path)) !== comparable(umoci.get(path))).map((path) => ({ path, hoist: hoist.get(path), umoci: umoci.get(path) }));
}

export const showNode = (node: Node | undefined): string => (node ? comparable(node) : 'absent');


// ---------------------------------------------------------------------------------------------
// Judging: where hoist and umoci may differ, and why.

/** What a disagreement class looks at: the sequence, both outcomes, hoist's root as hoist left it. */
export interface Judged {
  sequence: Sequence;
  hoist: Outcome;
  umoci: Outcome;
  /** Set when both applied the sequence. */
  differences: Difference[];
  /** hoist's root as the extraction left it (part applied when it refused). */
  hoistRoot: string;
}

/** A way hoist and umoci may legitimately differ. */
export interface DisagreementClass {
  name: string;
  /** Why they differ, and why hoist's way is right (or why it is not hoist's to follow). */
  why: string;
  /** A minimal sequence that shows it (formatSequence's notation). */
  example: string;
  /** Whether this class accounts for the whole of the disagreement, checked against the files where it can be. */
  explains(judged: Judged): boolean;
}

const refusal = (outcome: Outcome): string => (outcome.applied ? '' : outcome.message);
const lstatIn = (root: string, rel: string): Stats | undefined => lstatSync(join(root, rel), { throwIfNoEntry: false });

export const isBelow = (path: string, dir: string): boolean => (dir === '' ? path !== '' : path.startsWith(`${dir}/`));

/**
 * Every class of disagreement the fuzzer accepts. Anything else (and any escape) fails it. A class
 * is checked against the files where it can be: that a symlink hoist names is one, that a
 * directory's mode does deny its owner.
 */
export const DISAGREEMENTS: DisagreementClass[] = [
  {
    name: 'dot-dot',
    why: 'hoist refuses an entry path or hardlink target with a `..` component (layers/extract.ts safeComponents); umoci cleans it lexically and applies it inside the root. A layer a registry serves never needs one.',
    example: 'L1: file b 0644 "x" | hardlink a => ../b',
    explains: ({ hoist, umoci }) => umoci.applied && (/"([^"]*)": it would land outside the root \(\.\.\)$/.exec(refusal(hoist))?.[1]?.split('/').includes('..') ?? false),
  },
  {
    name: 'absolute',
    why: 'hoist refuses an absolute entry path or hardlink target; umoci takes it as relative to the root.',
    example: 'L1: file b 0644 "x" | hardlink a => /b',
    explains: ({ hoist, umoci }) => umoci.applied && /"\/[^"]*": absolute paths are not allowed$/.test(refusal(hoist)),
  },
  {
    name: 'through-symlink',
    why: 'hoist refuses an entry whose parent path goes through a symlink, wherever it leads; umoci resolves the symlink confined to the root (securejoin) and writes where it lands. Refusing is the narrower reading, and what issue 26 asks.',
    example: 'L1: symlink a -> b | file a/x 0644 ""',
    explains: ({ hoist, hoistRoot }) => {
      const through = /its path goes through the symlink \/(.+)$/.exec(refusal(hoist))?.[1];
      return through !== undefined && (lstatIn(hoistRoot, through)?.isSymbolicLink() ?? false);
    },
  },
  {
    name: 'hardlink-to-symlink',
    why: 'hoist refuses a hardlink whose target is a symlink; umoci links the symlink itself (link(2) does not follow it). hoist takes hardlinks to regular files only.',
    example: 'L1: symlink a -> b | hardlink c => a',
    explains: ({ hoist, umoci, hoistRoot }) => {
      const target = /its hardlink target "([^"]*)" is not a file inside the layer root$/.exec(refusal(hoist))?.[1];
      return umoci.applied && target !== undefined && (lstatIn(hoistRoot, target)?.isSymbolicLink() ?? false);
    },
  },
  {
    name: 'umoci-rootless-xattr',
    why: "umoci in rootless mode keeps a file's image owner in a user.rootlesscontainers xattr, and fails reading it back from a parent directory whose mode denies its owner read (unpriv.lgetxattr: permission denied); hoist applies the layer. umoci's limit, not hoist's.",
    example: 'L1: dir a 0311 (owner 1000) | dir a/b 0777',
    explains: ({ hoist, umoci }) => hoist.applied && /unpriv\.lgetxattr: permission denied/.test(refusal(umoci)),
  },
];

/** What became of one sequence. */
export interface Verdict {
  /** `agree`: the same result or both refused; `explained`: a class of DISAGREEMENTS; `escape`: a sentinel changed. */
  kind: 'agree' | 'explained' | 'escape' | 'unexplained';
  /** The class, for `explained`. */
  class?: string;
  hoist: Outcome;
  umoci?: Outcome;
  /** Changed sentinels, differing paths, wrong owners. */
  detail: string[];
}

/** Judges a sequence both applied or refused; hoist's root is as hoist left it, umoci's at `umociRoot`. */
export function judge(sequence: Sequence, hoist: Outcome, umoci: Outcome, hoistRoot: string, umociRoot: string): Verdict {
  const verdict = (kind: Verdict['kind'], detail: string[] = [], name?: string): Verdict => ({ kind, hoist, umoci, detail, ...(name ? { class: name } : {}) });
  if (!hoist.applied && hoist.message.includes('\n')) return verdict('unexplained', ['hoist refused with more than one line']);
  let differences: Difference[] = [];
  if (hoist.applied && umoci.applied) {
    const ours = snapshotTree(hoistRoot);
    const user = `${process.getuid!()}:${process.getgid!()}`;
    const owners = [...ours].filter(([, node]) => node.owner !== user).map(([path, node]) => `/${path} is owned by ${node.owner}, not by the extracting user`);
    if (owners.length > 0) return verdict('unexplained', owners);
    differences = compareTrees(ours, snapshotTree(umociRoot));
    if (differences.length === 0) return verdict('agree');
  } else if (!hoist.applied && !umoci.applied) {
    return verdict('agree');
  }
  const shown = differences.map(({ path, hoist: ours, umoci: theirs }) => `/${path}: hoist ${showNode(ours)}, umoci ${showNode(theirs)}`);
  const judged: Judged = { sequence, hoist, umoci, differences, hoistRoot };
  const match = DISAGREEMENTS.find((candidate) => candidate.explains(judged));
  return match ? verdict('explained', shown, match.name) : verdict('unexplained', shown);
}

// ---------------------------------------------------------------------------------------------
// Running many sequences, and shrinking what fails.

/** One lane: a sandbox and store for the extractor, a helper shell for umoci; one sequence at a time. */
export class Lane {
  private readonly dir: string;
  private readonly sandbox: Sandbox;
  private readonly store: Store;
  private readonly helper = new UmociHelper();
  private readonly extract: Extractor;
  private jobs = 0;

  private constructor(dir: string, store: Store, extract: Extractor) {
    this.dir = dir;
    this.sandbox = new Sandbox(join(dir, 's'));
    this.store = store;
    this.extract = extract;
  }

  static async open(dir: string, extract: Extractor = hoistExtractor): Promise<Lane> {
    return new Lane(dir, await Store.open(join(dir, 'store')), extract);
  }

  /** Applies `sequence` with the extractor, and (`compare`) with umoci meanwhile, and judges the results. */
  async run(sequence: Sequence, compare = true): Promise<Verdict> {
    // Work goes in batches of 100 sequences, each removed whole once done with (a removal costs processes).
    const batch = join(this.dir, `batch-${Math.floor(this.jobs / 100)}`);
    const job = join(batch, `job-${this.jobs++}`);
    let umociDone: Promise<Outcome> | undefined;
    if (compare) {
      writeUmociLayout(sequence, this.sandbox.dir, job);
      umociDone = this.helper.unpack(job);
    }
    const before = this.sandbox.fingerprint();
    const hoist = await this.extract(this.store, sequence, this.sandbox);
    const escape = sentinelChanges(before, this.sandbox.fingerprint());
    const umoci = await umociDone;
    const verdict: Verdict = escape.length > 0 ? { kind: 'escape', hoist, ...(umoci ? { umoci } : {}), detail: escape }
      : umoci ? judge(sequence, hoist, umoci, this.sandbox.root, join(job, 'rootfs')) : { kind: 'agree', hoist, detail: [] };
    if (escape.length > 0) {
      this.sandbox.build();
    } else {
      // The next sequence gets an empty root at once; the helper removes the old one meanwhile.
      mkdirSync(batch, { recursive: true });
      renameSync(this.sandbox.root, join(batch, `old-root-${this.jobs}`));
      mkdirSync(this.sandbox.root);
    }
    if (this.jobs % 100 === 0) this.helper.remove(batch);
    return verdict;
  }

  async close(): Promise<void> {
    this.helper.remove(join(this.dir, `batch-${Math.floor(this.jobs / 100)}`));
    await this.helper.close();
  }
}

/** A sequence that failed (escaped, or a disagreement no class explains), shrunk as far as it still fails the same way. */
export interface Finding {
  /** Which sequence of the run (with the seed, it regenerates the original). */
  index: number;
  sequence: Sequence;
  verdict: Verdict;
  /** Entries before shrinking. */
  entriesBefore: number;
}

export interface FuzzOptions {
  seed: number;
  sequences: number;
  /** A scratch directory of the fuzzer's own. */
  work: string;
  /** Sequences in flight at once: hoist works in this process while umoci runs in others. */
  lanes?: number;
  /** Compare with umoci (default); without, only escapes are looked for. */
  compare?: boolean;
  extract?: Extractor;
  /** Failures shrunk per kind of failure (the rest are counted). */
  shrinkPerKind?: number;
  /** Called with each new finding as it is shrunk. */
  onFinding?: (finding: Finding) => void;
}

export interface FuzzReport {
  sequences: number;
  seconds: number;
  /** Sequences by verdict: `agree: applied`, `agree: refused`, a class name, `escape`, `unexplained`. */
  counts: Record<string, number>;
  findings: Finding[];
}

/** The PRNG of sequence `index` of a run: any sequence can be made again alone. */
export const sequenceRandom = (seed: number, index: number): Random => prng((Math.imul(seed, 0x9e3779b1) + index) >>> 0);

/** The kind of a failure, to shrink only a few of each: escapes by what changed, disagreements by who refused and how. */
function failureKind(verdict: Verdict): string {
  if (verdict.kind === 'escape') {
    const changed = verdict.detail.map((line) => (line.includes(': new ') ? 'new' : line.endsWith('-> gone') ? 'gone' : /^\S+ (\S+)/.exec(line.split(': ')[1] ?? '')?.[1] !== /-> \S+ (\S+)/.exec(line)?.[1] ? 'mode' : 'other'));
    return `escape ${[...new Set(changed)].sort().join(',')}`;
  }
  const message = (outcome: Outcome | undefined): string => (outcome?.applied === false ? outcome.message.replace(/"[^"]*"|'[^']*'|\/\S+/g, '_') : 'applied');
  const first = verdict.detail[0]?.replace(/^\/\S*: /, '').replace(/"mode":\d+|"(mtime|content|target)":[^,}]*/g, '') ?? '';
  return `unexplained: hoist ${message(verdict.hoist)}; umoci ${verdict.umoci?.applied === false ? 'refused' : 'applied'}; ${first}`;
}

/** Runs `sequences` generated sequences over `lanes` lanes, shrinking the first failures of each kind. */
export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { seed, sequences, work, lanes: laneCount = 4, compare = true, extract = hoistExtractor, shrinkPerKind = 2 } = options;
  const started = performance.now();
  const counts: Record<string, number> = {};
  const findings: Finding[] = [];
  const shrunk = new Map<string, number>();
  const seen = new Set<string>();
  const lanes = await Promise.all(Array.from({ length: laneCount }, (_, at) => Lane.open(join(work, `lane-${at}`), extract)));
  try {
    await Promise.all(lanes.map(async (lane, at) => {
      for (let index = at; index < sequences; index += laneCount) {
        const sequence = generateSequence(sequenceRandom(seed, index));
        const verdict = await lane.run(sequence, compare);
        const key = verdict.kind === 'agree' ? `agree: ${verdict.hoist.applied ? 'applied' : 'refused'}` : verdict.kind === 'explained' ? verdict.class! : verdict.kind;
        counts[key] = (counts[key] ?? 0) + 1;
        if (verdict.kind !== 'escape' && verdict.kind !== 'unexplained') continue;
        const kind = failureKind(verdict);
        if ((shrunk.get(kind) ?? 0) >= shrinkPerKind) continue;
        shrunk.set(kind, (shrunk.get(kind) ?? 0) + 1);
        const [small, smallVerdict] = await shrink(lane, sequence, verdict, compare);
        const text = formatSequence(small);
        if (seen.has(text)) continue;
        seen.add(text);
        const finding = { index, sequence: small, verdict: smallVerdict, entriesBefore: sequence.flat().length };
        findings.push(finding);
        options.onFinding?.(finding);
      }
    }));
  } finally {
    await Promise.all(lanes.map((lane) => lane.close()));
  }
  return { sequences, seconds: (performance.now() - started) / 1000, counts, findings };
}

/** Smaller versions of a sequence, boldest first: a layer fewer, an entry fewer, one entry plainer. */
function* smaller(sequence: Sequence): Generator<Sequence> {
  for (let l = 0; l < sequence.length; l++) if (sequence.length > 1) yield sequence.filter((_, at) => at !== l);
  for (let l = 0; l < sequence.length; l++) {
    for (let e = 0; e < sequence[l]!.length; e++) {
      const without = sequence[l]!.filter((_, at) => at !== e);
      if (without.length > 0) yield sequence.map((layer, at) => (at === l ? without : layer));
    }
  }
  for (let l = 0; l < sequence.length; l++) {
    for (let e = 0; e < sequence[l]!.length; e++) {
      const entry = sequence[l]![e]!;
      const plain: FuzzEntry = { ...entry, uid: 0, gid: 0, mtime: 0, ...(entry.content ? { content: '' } : {}) };
      if (entry.kind === 'file' || entry.kind === 'hardlink') plain.mode = 0o644;
      if (entry.kind === 'directory' && entry.mode !== 0o755) yield replaced(sequence, l, e, { ...entry, mode: 0o755 });
      if (JSON.stringify(plain) !== JSON.stringify(entry)) yield replaced(sequence, l, e, plain);
    }
  }
}

const replaced = (sequence: Sequence, l: number, e: number, entry: FuzzEntry): Sequence => sequence.map((layer, at) => (at === l ? layer.map((old, i) => (i === e ? entry : old)) : layer));

/** The smallest sequence reached by taking `smaller` steps that still fail the same way (at most 400 runs). */
async function shrink(lane: Lane, sequence: Sequence, verdict: Verdict, compare: boolean): Promise<[Sequence, Verdict]> {
  const kind = failureKind(verdict);
  let best: [Sequence, Verdict] = [sequence, verdict];
  for (let budget = 400, progress = true; progress && budget > 0;) {
    progress = false;
    for (const candidate of smaller(best[0])) {
      if (budget-- <= 0) break;
      const again = await lane.run(candidate, compare);
      if ((again.kind === 'escape' || again.kind === 'unexplained') && failureKind(again) === kind) {
        best = [candidate, again];
        progress = true;
        break;
      }
    }
  }
  return best;
}

/** A finding as markdown: what to apply, what each tool did, what differed or escaped. */
export function formatFinding(finding: Finding, seed: number): string {
  const { verdict } = finding;
  const outcome = (o: Outcome | undefined): string => (o === undefined ? 'not run' : o.applied ? 'applied' : `refused: ${o.message}`);
  return [
    `### ${verdict.kind === 'escape' ? 'ESCAPE' : 'Unexplained disagreement'} (seed ${seed}, sequence ${finding.index}, shrunk from ${finding.entriesBefore} entries to ${finding.sequence.flat().length})`,
    '```', formatSequence(finding.sequence), '```',
    `- hoist: ${outcome(verdict.hoist)}`, `- umoci: ${outcome(verdict.umoci)}`,
    ...verdict.detail.map((line) => `- ${line}`), '',
  ].join('\n');
}
