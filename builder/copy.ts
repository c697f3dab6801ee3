// COPY and ADD: the entries of the layer they make, by BuildKit's rules (dockerfile2llb's
// dispatchCopy, fsutil's copy): sources and globs, destinations, --chmod, --chown, --parents, --exclude.
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { followSymlinks, sortWithHardlinks, type LayerEntry } from '../layers/index.ts';
import { archiveEntries, fetchUrl, isLocalArchive } from './archive.ts';
import { cleanPath, compilePatterns, containsWildcards, globRegExp, type PatternSet } from './context.ts';

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

/** A source resolved to a path in the root (symlinks followed), or a URL. */
interface Source {
  url?: string;
  rel: string;
  stats?: Stats;
  /** The name a copy into a directory gets: the base of the path as written or matched. */
  base: string;
  /** --parents: which paths below the source are copied. */
  include?: PatternSet;
}

interface ModeChange {
  apply(mode: number, isDirectory: boolean): number;
  /** The mode of directories the copy creates: an octal --chmod's permission bits, else 0755. */
  created: number;
}

/** A directory of a source tree, written when something below it is (or at once when copied). */
interface Frame {
  path: string;
  stats: Stats;
  /** Copied as a directory of the source; otherwise made only as a parent of what is copied. */
  copied: boolean;
  written: boolean;
}

const parentOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf('/')));
const child = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);
const mtimeOf = (stats: Stats): number => Math.floor(stats.mtimeMs / 1000);
/** Linux's PATH_MAX, its terminating NUL included: no longer path can be opened. */
export const PATH_MAX = 4096;
/** lstat, or undefined where there is nothing (a missing path, one through a file or too long). */
const lstatIfAny = (path: string): Stats | undefined => {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
};
const isGitSource = (source: string): boolean => /^(git@|git:\/\/|ssh:\/\/)/.test(source) || /^https?:\/\/[^#]*\.git(#|$)/.test(source);

/**
 * The entries COPY or ADD writes into the new layer, sorted by path, directories before their
 * contents, with the destination's missing parents. Contents are not read: a file's `source` is
 * its path on the host.
 */
export async function planCopy(options: CopyOptions): Promise<LayerEntry[]> {
  const command = options.command ?? 'COPY';
  const mode = parseChmod(options.chmod);
  const excludes = options.exclude.length > 0 ? compilePatterns(options.exclude) : undefined;
  const dest = destination(options.dest, options.workdir);
  const entries = new Map<string, LayerEntry>();
  const inodes = new Map<LayerEntry, string>();
  let copyIndex = 0;

  if (options.checksum !== undefined) {
    if (command !== 'ADD') throw new Error("checksum can't be specified for COPY");
    if (options.sources.length !== 1) throw new Error("checksum can't be specified for multiple sources");
    if (!/^https?:\/\//.test(options.sources[0]!)) throw new Error('checksum requires HTTP(S) or Git sources');
  }
  const ignored = (rel: string): boolean => options.isIgnored?.(rel) === true;
  const mayUnignore = (rel: string): boolean => options.mayUnignoreUnder?.(rel) ?? true;
  const notFound = (name: string): Error => new Error(
    `${options.isIgnored ? 'file not found in build context or excluded by .dockerignore' : 'file not found'}: stat ${name}: no such file or directory`,
  );
  const owner = (stats?: Stats): Owner => options.chown ?? (stats && options.keepOwners ? { uid: stats.uid, gid: stats.gid } : { uid: 0, gid: 0 });
  const belowAt = (path: string): NodeBelow | undefined => options.below?.(`/${path}`);
  const linkBelow = (path: string): string | undefined => {
    const node = belowAt(path);
    return node?.type === 'symlink' ? node.linkname : undefined;
  };
  /** Whether `path` is a directory, in what the copy writes or (symlinks followed) in the image below. */
  const isDirectory = (path: string): boolean => (
    entries.has(path) ? entries.get(path)!.type === 'directory' : path === '' || belowAt(followSymlinks(path, linkBelow).join('/'))?.type === 'directory'
  );

  /** Adding to a directory changes its mtime; directories of the source get theirs back afterwards. */
  const touchParent = (path: string): void => {
    const parent = entries.get(parentOf(path));
    if (parent?.type === 'directory') parent.mtime = options.createdDirMtime;
  };
  const putDirectory = (entry: LayerEntry): void => {
    const old = entries.get(entry.path);
    if (old && old.type !== 'directory') throw new Error(`cannot copy to non-directory: /${entry.path}`);
    if (!old) touchParent(entry.path);
    entries.set(entry.path, entry);
  };
  const putFile = (entry: LayerEntry, stats: Stats): void => {
    if (isDirectory(entry.path)) throw new Error(`cannot replace to directory /${entry.path} with file`);
    touchParent(entry.path);
    entries.set(entry.path, entry);
    if (typeof entry.source === 'string') options.onFile?.(entry.source, stats);
    // Hardlinks are found within one source, as BuildKit copies each source on its own.
    if (entry.type === 'file' && stats.nlink > 1) inodes.set(entry, `${copyIndex}:${stats.dev}:${stats.ino}`);
  };
  /** The directories BuildKit's MkdirAll makes: root-owned (or --chown), mode 0755 or the octal --chmod. */
  const makeDirectories = (path: string): void => {
    let at = '';
    for (const part of path.split('/').filter(Boolean)) {
      at = child(at, part);
      if (isDirectory(at)) continue;
      if (entries.has(at)) throw new Error(`mkdir /${at}: not a directory`);
      putDirectory({ path: at, type: 'directory', mode: mode.created, ...owner(), mtime: options.createdDirMtime });
    }
  };

  /** The entry of one non-directory from a source, or undefined for sockets, FIFOs and devices. */
  const entryOf = async (path: string, abs: string, stats: Stats): Promise<LayerEntry | undefined> => {
    const common = { path, ...owner(stats), mtime: mtimeOf(stats) };
    if (stats.isSymbolicLink()) return { ...common, type: 'symlink', mode: stats.mode & 0o7777, linkname: readlinkSync(abs) };
    if (!stats.isFile()) return undefined;
    return { ...common, type: 'file', mode: mode.apply(stats.mode & 0o7777, false), size: stats.size, source: abs };
  };
  const writeFrames = (frames: Frame[]): void => {
    for (const frame of frames) {
      if (frame.written) continue;
      frame.written = true;
      if (!frame.copied && isDirectory(frame.path)) continue;
      putDirectory({ path: frame.path, type: 'directory', mode: mode.apply(frame.stats.mode & 0o7777, true), ...owner(frame.stats), mtime: 0 });
    }
  };

  /**
   * Copies a source directory's contents. A directory that .dockerignore hides but that holds a
   * `!` exception is in BuildKit's context as usual; one hidden by --exclude or outside the
   * --parents patterns is made only when something below it is copied, with its mode and owner
   * but a new mtime (fsutil's createParentDirs).
   */
  const walk = async (dirAbs: string, contextRel: string, sourceRel: string, destRel: string, frames: Frame[], include?: PatternSet): Promise<void> => {
    // Synchronous calls: a tree of tens of thousands of entries is walked ten times faster than
    // with a thread-pool round trip per entry, and nothing else waits on the event loop here.
    for (const name of readdirSync(dirAbs).sort()) {
      const abs = join(dirAbs, name);
      const [rel, srcRel, path] = [child(contextRel, name), child(sourceRel, name), child(destRel, name)];
      const hidden = ignored(rel);
      const excluded = excludes?.matches(srcRel) === true;
      const included = include?.matches(srcRel) ?? true;
      const stats = lstatSync(abs);
      if (stats.isDirectory()) {
        if (hidden && !mayUnignore(rel)) continue;
        if (excluded && !excludes!.mayExceptUnder(srcRel)) continue;
        if (!included && !include!.mayMatchUnder(srcRel)) continue;
        const frame: Frame = { path, stats, copied: !excluded && included, written: false };
        if (frame.copied && !hidden) writeFrames([...frames, frame]);
        await walk(abs, rel, srcRel, path, frame.written ? [] : [...frames, frame], include);
        const written = frame.written ? entries.get(path) : undefined;
        if (written) written.mtime = frame.copied ? mtimeOf(stats) : options.createdDirMtime;
      } else if (!hidden && !excluded && included) {
        const entry = await entryOf(path, abs, stats);
        if (!entry) continue;
        writeFrames(frames);
        putFile(entry, stats);
      }
    }
  };

  // Sources are resolved with synchronous calls, as walk() reads trees: a COPY of 500,000 sources
  // then takes seconds, not minutes of thread-pool round trips.

  /** Follows symlinks in `rel` as if `root` were `/` (continuity's RootPath): the result stays inside. */
  const resolveInRoot = (rel: string, followLast: boolean): string => {
    const pending = rel.split('/').reverse(); // the next part last
    const resolved: string[] = [];
    let length = options.root.length; // of the path so far on the host
    let links = 0;
    while (pending.length > 0) {
      const part = pending.pop()!;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        length -= resolved.length > 0 ? resolved.pop()!.length + 1 : 0;
        continue;
      }
      // A path longer than PATH_MAX names nothing on the host: it is not looked up, nor joined,
      // which would take time in the square of the number of parts.
      const abs = length + part.length + 1 < PATH_MAX ? join(options.root, ...resolved, part) : undefined;
      const stats = abs !== undefined && (pending.length > 0 || followLast) ? lstatIfAny(abs) : undefined;
      if (!stats?.isSymbolicLink()) {
        resolved.push(part);
        length += part.length + 1;
        continue;
      }
      if (++links > 255) throw new Error(`${rel}: too many levels of symbolic links`);
      const target = readlinkSync(abs!);
      if (target.startsWith('/')) {
        resolved.length = 0;
        length = options.root.length;
      }
      pending.push(...target.split('/').reverse());
    }
    return resolved.join('/');
  };

  /** A path source: followed to what it names, which must exist in the (filtered) root. */
  const statSource = (rel: string, base: string, include?: PatternSet): Source => {
    const resolved = resolveInRoot(rel, true);
    const stats = lstatIfAny(join(options.root, resolved));
    const visible = (path: string): boolean => !ignored(path) || (stats?.isDirectory() === true && mayUnignore(path));
    if (!stats || !visible(rel) || !visible(resolved)) throw notFound(rel || '.');
    return { rel: resolved, stats, base, ...(include ? { include } : {}) };
  };

  /**
   * A glob's matches, as fsutil's ResolveWildcards finds them: the part before the first wildcard
   * is followed, the rest matched (Go's filepath.Match) against paths below it; a matched directory
   * is not searched further. No match is no error (BuildKit's AllowEmptyWildcard).
   */
  const expandGlob = (rel: string, include?: PatternSet): Source[] => {
    const parts = rel.split('/');
    const first = parts.findIndex(containsWildcards);
    const baseRel = resolveInRoot(parts.slice(0, first).join('/'), true);
    const pattern = parts.slice(first).join('/');
    const regExp = globRegExp(pattern);
    const depth = parts.length - first;
    const baseStats = lstatIfAny(join(options.root, baseRel));
    if (!baseStats || ignored(baseRel)) throw notFound(parts.slice(0, first).join('/') || '.');
    const matches: Source[] = [];
    const search = (dirRel: string, level: number): void => {
      for (const name of readdirSync(join(options.root, baseRel, dirRel)).sort()) {
        const matchRel = child(dirRel, name);
        const rootRel = child(baseRel, matchRel);
        const stats = lstatSync(join(options.root, rootRel));
        if (ignored(rootRel) && !(stats.isDirectory() && mayUnignore(rootRel))) continue;
        if (regExp?.test(matchRel)) {
          // --exclude also drops a file the glob matches, as documented (BuildKit only filters
          // below each match, so copies it: moby/buildkit#5489). A matched directory is copied.
          const match = statSource(rootRel, name, include);
          if (match.stats!.isDirectory() || !excludes?.matches(matchRel)) matches.push(match);
        } else if (stats.isDirectory() && level < depth) search(matchRel, level + 1);
      }
    };
    if (baseStats.isDirectory()) search('', 1);
    return matches;
  };

  const resolveSource = (source: string): Source[] => {
    if (/^https?:\/\//.test(source) || isGitSource(source)) {
      if (command === 'COPY') throw new Error(`source can't be a ${isGitSource(source) ? 'git ref' : 'URL'} for COPY`);
      if (isGitSource(source)) throw new Error(`ADD ${source}: Git sources are not supported`);
      return [{ url: source, rel: '', base: '' }];
    }
    let path = source;
    let include: PatternSet | undefined;
    if (options.parents) {
      // --parents copies the root (or the part before a `/./` pivot) filtered by the rest as a pattern.
      const pivot = source.indexOf('/./');
      const pattern = pivot < 0 ? source : source.slice(pivot + 3);
      path = pivot < 0 ? '/' : source.slice(0, pivot);
      const includeRel = cleanPath(`/${pattern}`).slice(1);
      if (includeRel !== '') include = compilePatterns([includeRel]);
      if (!containsWildcards(path) && !containsWildcards(pattern)) {
        const required = cleanPath(`/${path}/${pattern}`).slice(1);
        const stats = lstatIfAny(join(options.root, resolveInRoot(required, false)));
        if (!stats || ignored(required)) throw notFound(required);
      }
    }
    const rel = cleanPath(`/${path}`).slice(1);
    return containsWildcards(rel) ? expandGlob(rel, include) : [statSource(rel, posix.basename(rel), include)];
  };

  // Several sources into a destination that is neither a directory nor written as one are copied
  // one after the other, as BuildKit does (the "must end with a /" rule is the classic builder's).
  const sources: Source[] = [];
  for (const source of options.sources) for (const resolved of resolveSource(source)) sources.push(resolved);

  const unpack = async (archive: string): Promise<void> => {
    const unpacked = await archiveEntries(archive, `/${dest.path}`, {
      tmpDir: needTmpDir(options), chown: options.chown, createdDirMtime: options.createdDirMtime, destIsDirectory: (abs) => isDirectory(abs.slice(1)),
      below: options.below, warn: options.warn,
    });
    for (const entry of unpacked) {
      const old = entries.get(entry.path);
      // As in go-archive, an entry replaces what was there (a directory with its contents), or merges into a directory.
      if (old && (old.type !== 'directory' || entry.type !== 'directory')) {
        for (const path of entries.keys()) if (path === old.path || path.startsWith(`${old.path}/`)) entries.delete(path);
      }
      entries.set(entry.path, entry);
    }
  };
  const copyFile = async (abs: string, stats: Stats, base: string): Promise<void> => {
    makeDirectories(dest.isDirectory ? dest.path : parentOf(dest.path));
    const path = isDirectory(dest.path) ? child(dest.path, base) : dest.path;
    makeDirectories(parentOf(path));
    const entry = await entryOf(path, abs, stats);
    if (entry) putFile(entry, stats);
  };

  for (const source of sources) {
    copyIndex++;
    if (source.url !== undefined) {
      const file = await fetchUrl(source.url, needTmpDir(options), options.checksum);
      if (options.unpack === true && (await isLocalArchive(file))) await unpack(file);
      else await copyFile(file, await lstat(file), posix.basename(file));
      continue;
    }
    const abs = join(options.root, source.rel);
    const stats = source.stats!;
    if (command === 'ADD' && options.unpack !== false && stats.isFile() && (await isLocalArchive(abs))) {
      await unpack(abs);
    } else if (stats.isDirectory()) {
      makeDirectories(dest.isDirectory ? dest.path : parentOf(dest.path));
      if (!isDirectory(dest.path)) {
        if (entries.has(dest.path)) throw new Error(`cannot copy to non-directory: /${dest.path}`);
        makeDirectories(dest.path);
      }
      await walk(abs, source.rel, '', dest.path, [], source.include);
      // fsutil gives the destination directory the source directory's mtime (not its mode).
      const top = entries.get(dest.path);
      if (top?.type === 'directory') top.mtime = mtimeOf(stats);
    } else {
      await copyFile(abs, stats, source.base);
    }
  }
  return sortWithHardlinks(entries.values(), inodes);
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

/**
 * --chmod as BuildKit reads it: octal up to 07777 for files and directories alike (and, without
 * the special bits, for the directories the copy creates), or a symbolic mode (chmod(1), BSD
 * setmode with umask 0) applied to each file and directory, while created directories get 0755.
 * Symlinks keep their mode.
 */
export function parseChmod(spec: string | undefined): ModeChange {
  if (spec === undefined || spec === '') return { apply: (mode) => mode, created: 0o755 };
  if (/^[0-9]/.test(spec)) {
    const value = /^[0-7]+$/.test(spec) ? parseInt(spec, 8) : NaN;
    if (!(value <= 0o7777)) throw new Error(`invalid chmod parameter: '${spec}'. it should be octal string and between 0 and 07777`);
    return { apply: () => value, created: value & 0o777 };
  }
  const commands = parseSymbolicMode(spec);
  if (!commands) throw new Error(`invalid chmod parameter: '${spec}': not an octal or symbolic mode`);
  return { apply: (mode, isDirectory) => applySymbolicMode(commands, mode, isDirectory), created: 0o755 };
}

interface ModeCommand {
  op: '+' | '-' | 'X' | 'u' | 'g' | 'o';
  bits: number;
  /** For the copy ops `u`, `g`, `o`: the classes written (shifts 6, 3, 0), and clear/set. */
  shifts?: number[];
  clear?: boolean;
  set?: boolean;
}

const WHO: Record<string, number> = { a: 0o6777, u: 0o4700, g: 0o2070, o: 0o0007 };

/** A port of BSD setmode's parser (as tonistiigi/dchapes-mode has it), with umask 0. */
function parseSymbolicMode(spec: string): ModeCommand[] | undefined {
  const commands: ModeCommand[] = [];
  const add = (op: string, who: number, arg: number | string): void => {
    if (op === '=') {
      commands.push({ op: '-', bits: who || 0o6777 });
      op = '+';
    }
    if (op === '+' || op === '-' || op === 'X') {
      commands.push({ op, bits: who ? who & (arg as number) : (arg as number) });
    } else {
      const shifts = who ? [6, 3, 0].filter((shift) => who & (0o4 << shift)) : [6, 3, 0];
      commands.push({ op: op as 'u' | 'g' | 'o', bits: ~0, shifts, clear: arg !== '+', set: arg !== '-' });
    }
  };
  let s = spec;
  for (;;) {
    let who = 0;
    while (s !== '' && 'augo'.includes(s[0]!)) {
      who |= WHO[s[0]]!;
      s = s.slice(1);
    }
    if (s === '') return undefined;
    do {
      const op = s[0]!;
      s = s.slice(1);
      if (op !== '+' && op !== '-' && op !== '=') return undefined;
      let equalDone = false;
      let perm = 0;
      let permX = 0;
      who &= ~0o1000;
      for (;; s = s.slice(1)) {
        const c = s[0];
        const notOnlyOther = who === 0 || (who & ~0o007) !== 0;
        if (c === 'r') perm |= 0o444;
        else if (c === 'w') perm |= 0o222;
        else if (c === 'x') perm |= 0o111;
        else if (c === 'X') permX = op === '+' ? 0o111 : permX;
        else if (c === 's') perm |= notOnlyOther ? 0o6000 : 0;
        else if (c === 't') {
          if (notOnlyOther) {
            who |= 0o1000;
            perm |= 0o1000;
          }
        } else if (c === 'u' || c === 'g' || c === 'o') {
          if (perm) add(op, who, perm);
          perm = 0;
          if (op === '=') equalDone = true;
          if (permX) add('X', who, permX);
          permX = 0;
          add(c, who, op);
        } else {
          if (perm || (op === '=' && !equalDone)) add(op, who, perm);
          if (permX) add('X', who, permX);
          break;
        }
      }
    } while (s !== '' && s[0] !== ',');
    if (s === '') return commands;
    s = s.slice(1);
  }
}

function applySymbolicMode(commands: ModeCommand[], mode: number, isDirectory: boolean): number {
  const original = mode;
  for (const command of commands) {
    if (command.op === '+') mode |= command.bits;
    else if (command.op === '-') mode &= ~command.bits;
    else if (command.op === 'X') {
      if (original & 0o111 || isDirectory) mode |= command.bits;
    } else {
      const value = (mode >> { u: 6, g: 3, o: 0 }[command.op]) & 0o7;
      for (const shift of command.shifts!) {
        if (command.clear) mode &= ~(((command.set ? 0o7 : value) << shift) & command.bits);
        if (command.set) mode |= (value << shift) & command.bits;
      }
    }
  }
  return mode & 0o7777;
}
