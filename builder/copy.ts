// COPY and ADD: the entries of the layer they make, by BuildKit's rules (dockerfile2llb's
// dispatchCopy, fsutil's copy): sources and globs, destinations, --chmod, --chown, --parents, --exclude.
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { entryFromStats, followSymlinks, LayerBuilder, mtimeOf, parentOf, type LayerEntry } from '../layers/index.ts';
import type { ClientOptions } from '../registry/index.ts';
import { archiveEntries, fetchUrl, isLocalArchive } from './archive.ts';
import { isGitUrl } from './remote-context.ts';
import { cleanPath, compilePatterns, containsWildcards, globRegExp, type PatternSet } from './context.ts';
import { parseChmod, type ModeChange } from './chmod.ts';
import { abbreviate, BuildError } from './errors.ts';

export interface Owner {
  uid: number;
  gid: number;
}

export interface CopyOptions {
  /** Where sources are read: the build context, or a stage's root filesystem. */
  root: string;
  /** The context's .dockerignore rules (none for a stage). */
  isIgnored?: (relPath: string) => boolean;
  /** Lets the copy skip ignored directories with nothing un-ignored below (BuildContext has it). */
  mayUnignoreUnder?: (relDir: string) => boolean;
  /** As written: relative to `root` (a leading `/` or `..` cannot leave it), globs allowed. */
  sources: string[];
  dest: string;
  workdir: string;
  chown?: Owner;
  /** Octal (`0755`) or symbolic (`u+x,go=rX`). */
  chmod?: string;
  parents: boolean;
  exclude: string[];
  /** What the layers below have at a path (absolute in the image, symlinks not followed), if anything. */
  below?: (absPath: string) => NodeBelow | undefined;
  /** Told of what ADD leaves out of an archive. */
  warn?: (message: string) => void;
  /** The mtime of directories the copy creates or adds to ("now" in BuildKit). */
  createdDirMtime: number;
  /** COPY --from keeps the stage's owners, as BuildKit does; the context's become 0:0. */
  keepOwners?: boolean;
  /** ADD downloads URLs and unpacks local archives (unless `unpack` is false). Default COPY. */
  command?: 'COPY' | 'ADD';
  unpack?: boolean;
  /** ADD --checksum of a URL source: `sha256:<hex>`. */
  checksum?: string;
  /** Where ADD keeps downloads and unpacked contents; the caller removes it. */
  tmpDir?: string;
  /** Called with each file copied from the root and its stat data. */
  onFile?: (source: string, stats: Stats) => void;
  /** How ADD downloads a URL: as the registry is reached (--tls-ca, proxies, timeouts). */
  registry?: ClientOptions;
}

/** A path of the image below a copy, as its layers leave it. */
export interface NodeBelow {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
}

/** A source resolved to a path in the root (symlinks followed). */
interface PathSource {
  rel: string;
  stats: Stats;
  /** The name a copy into a directory gets: the base of the path as written or matched. */
  base: string;
  /** --parents: which paths below the source are copied. */
  include?: PatternSet;
}

/** A source of ADD or COPY, resolved. */
type Source = PathSource | { url: string };

/** A directory of a source tree, written when something below it is (or at once when copied). */
interface Frame {
  path: string;
  abs: string;
  stats: Stats;
  /** Copied as a directory of the source; otherwise made only as a parent of what is copied. */
  copied: boolean;
  written: boolean;
}

const child = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);
/** Linux's PATH_MAX, its terminating NUL included: no longer path can be opened. */
const PATH_MAX = 4096;

/**
 * A path in the image, refused when longer than Linux allows: nothing could open it, and following
 * its symlinks and making its directories takes time in the square of its depth.
 */
export function imagePath(path: string): string {
  if (Buffer.byteLength(path) >= PATH_MAX) throw new BuildError(`${abbreviate(path)}: the path is longer than ${PATH_MAX - 1} bytes (Linux's PATH_MAX)`);
  return path;
}

/** The symlinks a source path may go through: continuity's RootPath, which BuildKit uses, follows 255 (Linux 40). */
const MAX_SOURCE_SYMLINKS = 255;
/** lstat, or undefined where there is nothing (a missing path, one through a file or too long). */
const lstatIfAny = (path: string): Stats | undefined => {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
};

/**
 * The entries COPY or ADD writes into the new layer, sorted by path, directories before their
 * contents, with the destination's missing parents. Contents are not read: a file's `source` is
 * its path on the host.
 */
export async function planCopy(options: CopyOptions): Promise<LayerEntry[]> {
  const plan = new CopyPlan(options);
  // Several sources into a destination that is neither a directory nor written as one are copied
  // one after the other, as BuildKit does (the "must end with a /" rule is the classic builder's).
  for (const source of plan.resolveSources()) await plan.copy(source);
  return plan.layer.build();
}

/** One COPY or ADD: its sources found in the root, then written into the layer one after the other. */
class CopyPlan {
  readonly layer: LayerBuilder;
  private readonly options: CopyOptions;
  private readonly command: 'COPY' | 'ADD';
  private readonly mode: ModeChange;
  private readonly excludes: PatternSet | undefined;
  private readonly dest: { path: string; isDirectory: boolean };
  /** Which source is being copied: hardlinks are found within one, as BuildKit copies each on its own. */
  private sourceIndex = 0;

  constructor(options: CopyOptions) {
    this.options = options;
    this.command = options.command ?? 'COPY';
    this.mode = parseChmod(options.chmod);
    this.excludes = options.exclude.length > 0 ? compilePatterns(options.exclude) : undefined;
    this.dest = destination(options.dest, options.workdir);
    if (options.checksum !== undefined) {
      if (this.command !== 'ADD') throw new Error("checksum can't be specified for COPY");
      if (options.sources.length !== 1) throw new Error("checksum can't be specified for multiple sources");
      if (!/^https?:\/\//.test(options.sources[0]!)) throw new Error('checksum requires HTTP(S) or Git sources');
    }
    // A path the copy does not write is a directory if the image below has one there, symlinks followed.
    const linkBelow = (path: string): string | undefined => {
      const node = options.below?.(`/${path}`);
      return node?.type === 'symlink' ? node.linkname : undefined;
    };
    this.layer = new LayerBuilder((path) => options.below?.(`/${followSymlinks(path, linkBelow)}`)?.type === 'directory');
  }

  // --- Sources, found in the root with synchronous calls: a COPY of 500,000 sources then takes
  // seconds, not minutes of thread-pool round trips.

  resolveSources(): Source[] {
    const sources: Source[] = [];
    for (const source of this.options.sources) for (const resolved of this.resolveSource(source)) sources.push(resolved);
    return sources;
  }

  private resolveSource(source: string): Source[] {
    if (/^https?:\/\//.test(source) || isGitUrl(source)) {
      if (this.command === 'COPY') throw new Error(`source can't be a ${isGitUrl(source) ? 'git ref' : 'URL'} for COPY`);
      return [{ url: source }];
    }
    const { path, include } = this.options.parents ? this.parentsSource(source) : { path: source, include: undefined };
    const rel = cleanPath(`/${path}`).slice(1);
    return containsWildcards(rel) ? this.expandGlob(rel, include) : [this.statSource(rel, posix.basename(rel), include)];
  }

  /** --parents copies the root (or the part before a `/./` pivot) filtered by the rest as a pattern, which must name something. */
  private parentsSource(source: string): { path: string; include: PatternSet | undefined } {
    const pivot = source.indexOf('/./');
    const pattern = pivot < 0 ? source : source.slice(pivot + 3);
    const path = pivot < 0 ? '/' : source.slice(0, pivot);
    const includeRel = cleanPath(`/${pattern}`).slice(1);
    const include = includeRel === '' ? undefined : compilePatterns([includeRel]);
    if (!containsWildcards(path) && !containsWildcards(pattern)) {
      // What the pattern names must be there; its last part is not followed (a symlink will do).
      const required = cleanPath(`/${path}/${pattern}`).slice(1);
      const stats = lstatIfAny(join(this.options.root, this.resolveInRoot(parentOf(required)), required.slice(required.lastIndexOf('/') + 1)));
      if (!stats || this.ignored(required)) throw this.notFound(required);
    }
    return { path, include };
  }

  /** A path source: followed to what it names, which must exist in the (filtered) root. */
  private statSource(rel: string, base: string, include?: PatternSet): PathSource {
    const resolved = this.resolveInRoot(rel);
    const stats = lstatIfAny(join(this.options.root, resolved));
    const visible = (path: string): boolean => !this.ignored(path) || (stats?.isDirectory() === true && this.mayUnignore(path));
    if (!stats || !visible(rel) || !visible(resolved)) throw this.notFound(rel || '.');
    return { rel: resolved, stats, base, ...(include ? { include } : {}) };
  }

  /**
   * A glob's matches, as fsutil's ResolveWildcards finds them: the part before the first wildcard
   * is followed, the rest matched (Go's filepath.Match) against paths below it; a matched directory
   * is not searched further. No match is no error (BuildKit's AllowEmptyWildcard).
   */
  private expandGlob(rel: string, include?: PatternSet): PathSource[] {
    const parts = rel.split('/');
    const first = parts.findIndex(containsWildcards);
    const baseRel = this.resolveInRoot(parts.slice(0, first).join('/'));
    const regExp = globRegExp(parts.slice(first).join('/'));
    const depth = parts.length - first;
    const baseStats = lstatIfAny(join(this.options.root, baseRel));
    if (!baseStats || this.ignored(baseRel)) throw this.notFound(parts.slice(0, first).join('/') || '.');
    const matches: PathSource[] = [];
    const search = (dirRel: string, level: number): void => {
      for (const name of readdirSync(join(this.options.root, baseRel, dirRel)).sort()) {
        const matchRel = child(dirRel, name);
        const rootRel = child(baseRel, matchRel);
        const stats = lstatSync(join(this.options.root, rootRel));
        if (this.ignored(rootRel) && !(stats.isDirectory() && this.mayUnignore(rootRel))) continue;
        if (regExp?.test(matchRel)) {
          // --exclude also drops a file the glob matches, as documented (BuildKit only filters
          // below each match, so copies it: moby/buildkit#5489). A matched directory is copied.
          const match = this.statSource(rootRel, name, include);
          if (match.stats.isDirectory() || !this.excludes?.matches(matchRel)) matches.push(match);
        } else if (stats.isDirectory() && level < depth) search(matchRel, level + 1);
      }
    };
    if (baseStats.isDirectory()) search('', 1);
    return matches;
  }

  /** `rel` with its symlinks followed as if the root were `/` (continuity's RootPath): the result stays inside. */
  private resolveInRoot(rel: string): string {
    return followSymlinks(rel, (path) => {
      // A path longer than PATH_MAX names nothing on the host: it is not looked up.
      if (this.options.root.length + 1 + path.length >= PATH_MAX) return undefined;
      const abs = join(this.options.root, path);
      return lstatIfAny(abs)?.isSymbolicLink() ? readlinkSync(abs) : undefined;
    }, MAX_SOURCE_SYMLINKS);
  }

  private ignored(rel: string): boolean {
    return this.options.isIgnored?.(rel) === true;
  }

  private mayUnignore(rel: string): boolean {
    return this.options.mayUnignoreUnder?.(rel) ?? true;
  }

  private notFound(name: string): Error {
    const what = this.options.isIgnored ? 'file not found in build context or excluded by .dockerignore' : 'file not found';
    return new Error(`${what}: stat ${name}: no such file or directory`);
  }

  // --- Writing a source into the layer.

  async copy(source: Source): Promise<void> {
    this.sourceIndex++;
    if ('url' in source) {
      const file = await fetchUrl(source.url, needTmpDir(this.options), this.options.checksum, this.options.registry);
      if (this.options.unpack === true && (await isLocalArchive(file))) await this.unpack(file);
      else this.copyFile(file, await lstat(file), posix.basename(file));
      return;
    }
    const abs = join(this.options.root, source.rel);
    if (this.command === 'ADD' && this.options.unpack !== false && source.stats.isFile() && (await isLocalArchive(abs))) await this.unpack(abs);
    else if (source.stats.isDirectory()) this.copyDirectory(abs, source);
    else this.copyFile(abs, source.stats, source.base);
  }

  private copyFile(abs: string, stats: Stats, base: string): void {
    const { dest } = this;
    this.makeDirectories(dest.isDirectory ? dest.path : parentOf(dest.path));
    const path = this.layer.isDirectory(dest.path) ? child(dest.path, base) : dest.path;
    this.makeDirectories(parentOf(path));
    const entry = this.entryOf(path, stats, abs);
    if (entry) this.putFile(entry, stats);
  }

  private copyDirectory(abs: string, source: PathSource): void {
    const { dest } = this;
    this.makeDirectories(dest.isDirectory ? dest.path : parentOf(dest.path));
    if (!this.layer.isDirectory(dest.path)) {
      if (this.layer.get(dest.path)) throw new Error(`cannot copy to non-directory: /${dest.path}`);
      this.makeDirectories(dest.path);
    }
    this.walk(abs, source.rel, '', dest.path, [], source.include);
    // fsutil gives the destination directory the source directory's mtime (not its mode).
    const top = this.layer.get(dest.path);
    if (top?.type === 'directory') top.mtime = mtimeOf(source.stats);
  }

  /** An archive unpacked into the destination: its entries replace what is there, or merge into a directory (go-archive). */
  private async unpack(archive: string): Promise<void> {
    const entries = await archiveEntries(archive, `/${this.dest.path}`, {
      tmpDir: needTmpDir(this.options), chown: this.options.chown, createdDirMtime: this.options.createdDirMtime,
      destIsDirectory: (abs) => this.layer.isDirectory(abs.slice(1)), below: this.options.below, warn: this.options.warn,
    });
    for (const entry of entries) this.layer.put(entry);
  }

  /**
   * Copies a source directory's contents. A directory that .dockerignore hides but that holds a
   * `!` exception is in BuildKit's context as usual; one hidden by --exclude or outside the
   * --parents patterns is made only when something below it is copied, with its mode and owner
   * but a new mtime (fsutil's createParentDirs).
   */
  private walk(dirAbs: string, contextRel: string, sourceRel: string, destRel: string, frames: Frame[], include?: PatternSet): void {
    // Synchronous calls: a tree of tens of thousands of entries is walked ten times faster than
    // with a thread-pool round trip per entry.
    for (const name of readdirSync(dirAbs).sort()) {
      const abs = join(dirAbs, name);
      const [rel, srcRel, path] = [child(contextRel, name), child(sourceRel, name), child(destRel, name)];
      const hidden = this.ignored(rel);
      const excluded = this.excludes?.matches(srcRel) === true;
      const included = include?.matches(srcRel) ?? true;
      const stats = lstatSync(abs);
      if (stats.isDirectory()) {
        if (hidden && !this.mayUnignore(rel)) continue;
        if (excluded && !this.excludes!.mayExceptUnder(srcRel)) continue;
        if (!included && !include!.mayMatchUnder(srcRel)) continue;
        const frame: Frame = { path, abs, stats, copied: !excluded && included, written: false };
        if (frame.copied && !hidden) this.writeFrames([...frames, frame]);
        this.walk(abs, rel, srcRel, path, frame.written ? [] : [...frames, frame], include);
        const written = frame.written ? this.layer.get(path) : undefined;
        if (written) written.mtime = frame.copied ? mtimeOf(stats) : this.options.createdDirMtime;
      } else if (!hidden && !excluded && included) {
        const entry = this.entryOf(path, stats, abs);
        if (!entry) continue;
        this.writeFrames(frames);
        this.putFile(entry, stats);
      }
    }
  }

  /** Writes the directories of the source not written yet, down to the one being walked. */
  private writeFrames(frames: Frame[]): void {
    for (const frame of frames) {
      if (frame.written) continue;
      frame.written = true;
      if (!frame.copied && this.layer.isDirectory(frame.path)) continue;
      this.putDirectory(this.entryOf(frame.path, frame.stats, frame.abs)!);
    }
  }

  /** The entry of what a source holds, as the copy writes it: with its owner, --chmod applied (not to symlinks); undefined for sockets, FIFOs and devices. */
  private entryOf(path: string, stats: Stats, abs: string): LayerEntry | undefined {
    const entry = entryFromStats(path, stats, abs);
    if (!entry) return undefined;
    Object.assign(entry, this.owner(stats));
    if (entry.type !== 'symlink') entry.mode = this.mode.apply(entry.mode, entry.type === 'directory');
    return entry;
  }

  /** --chown's owner; else root's, or a stage's own (COPY --from keeps them). */
  private owner(stats?: Stats): Owner {
    return this.options.chown ?? (stats && this.options.keepOwners ? { uid: stats.uid, gid: stats.gid } : { uid: 0, gid: 0 });
  }

  /** Adding to a directory changes its mtime; directories of the source get theirs back afterwards. */
  private touchParent(path: string): void {
    const parent = this.layer.get(parentOf(path));
    if (parent?.type === 'directory') parent.mtime = this.options.createdDirMtime;
  }

  private putDirectory(entry: LayerEntry): void {
    const old = this.layer.get(entry.path);
    if (old && old.type !== 'directory') throw new Error(`cannot copy to non-directory: /${entry.path}`);
    if (!old) this.touchParent(entry.path);
    this.layer.set(entry);
  }

  private putFile(entry: LayerEntry, stats: Stats): void {
    if (this.layer.isDirectory(entry.path)) throw new Error(`cannot replace to directory /${entry.path} with file`);
    this.touchParent(entry.path);
    this.layer.set(entry, entry.type === 'file' && stats.nlink > 1 ? `${this.sourceIndex}:${stats.dev}:${stats.ino}` : undefined);
    if (typeof entry.source === 'string') this.options.onFile?.(entry.source, stats);
  }

  /** The directories BuildKit's MkdirAll makes: root-owned (or --chown), mode 0755 or the octal --chmod. */
  private makeDirectories(path: string): void {
    const inTheWay = this.layer.mkdirAll(path, (dir) => {
      this.touchParent(dir);
      return { path: dir, type: 'directory', mode: this.mode.created, ...this.owner(), mtime: this.options.createdDirMtime };
    });
    if (inTheWay !== undefined) throw new Error(`mkdir /${inTheWay}: not a directory`);
  }
}

/**
 * A copy's entries with what an overlay mount copies up when they are written: every directory
 * above them that the image `below` has, with its owner and mode (never --chown's); the one
 * written into gets the time of the copy. BuildKit's and buildah's layers hold them, and a layer
 * applied on its own then shows its parents as they are, not as root's 0755.
 */
export function withParentsBelow(copied: LayerEntry[], below: (absPath: string) => NodeBelow | undefined, createdDirMtime: number): LayerEntry[] {
  const entries = new Map(copied.map((entry) => [entry.path, entry]));
  const added = new Set<string>();
  for (const path of [...entries.keys()]) {
    for (let parent = parentOf(path), direct = true; parent !== ''; parent = parentOf(parent), direct = false) {
      if (entries.has(parent)) {
        if (direct && added.has(parent)) entries.get(parent)!.mtime = createdDirMtime;
        break;
      }
      const node = below(`/${parent}`);
      if (node?.type !== 'directory') break;
      entries.set(parent, { path: parent, type: 'directory', mode: node.mode & 0o7777, uid: node.uid, gid: node.gid, mtime: direct ? createdDirMtime : node.mtime });
      added.add(parent);
    }
  }
  return [...entries.values()];
}

function needTmpDir(options: CopyOptions): string {
  if (options.tmpDir === undefined) throw new Error('ADD of a URL or an archive needs a tmpDir');
  return options.tmpDir;
}

/**
 * The destination in the image, relative (`` for `/`), from the working directory; a trailing `/`
 * (or `.`, `/.`) says it is a directory.
 */
function destination(dest: string, workdir: string): { path: string; isDirectory: boolean } {
  const absolute = absoluteDestination(dest, workdir);
  return { path: cleanPath(absolute).slice(1), isDirectory: absolute.endsWith('/') };
}

/**
 * COPY's destination as an absolute path in the image, ending in `/` where BuildKit takes it for a
 * directory whatever is there: `.`, an empty one, or one ending in `/` or `/.` (and the root).
 */
export function absoluteDestination(dest: string, workdir: string): string {
  const written = dest === '' || dest === '.' ? './' : dest;
  const path = cleanPath(written.startsWith('/') ? written : `/${workdir}/${written}`);
  return (written.endsWith('/') || written.endsWith('/.')) && path !== '/' ? `${path}/` : path;
}
