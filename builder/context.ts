// The build context and Docker's path patterns (.dockerignore, COPY --exclude, COPY --parents).
import { constants, lstatSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import dockerignore from '@balena/dockerignore';
import { followSymlinks } from '../layers/index.ts';

export interface BuildContext {
  /** The context directory, absolute. */
  root: string;
  /** The ignore file in force: `<Dockerfile>.dockerignore` beside the Dockerfile wins over `.dockerignore`. */
  ignoreFile?: string;
  /** Whether a context path (relative, `/`-separated) is hidden from COPY and ADD. */
  isIgnored(relPath: string): boolean;
  /** Whether an ignored directory may still hold paths that are not ignored (a `!` line below it). */
  mayUnignoreUnder(relDir: string): boolean;
}

/**
 * Reads the context's ignore rules as BuildKit does. The Dockerfile and the ignore file are no
 * exception: a COPY cannot see them when the rules hide them.
 */
export async function loadContext(dir: string, dockerfilePath: string): Promise<BuildContext> {
  const root = resolve(dir);
  const dockerfile = resolve(dockerfilePath);
  for (const [base, name] of [[dirname(dockerfile), `${basename(dockerfile)}.dockerignore`], [root, '.dockerignore']] as const) {
    const found = await readInside(base, name);
    if (found === undefined) continue;
    const patterns = compilePatterns(readIgnoreFile(found.text, name));
    return {
      root,
      ignoreFile: found.path,
      isIgnored: (relPath) => patterns.matches(relPath),
      mayUnignoreUnder: (relDir) => patterns.mayExceptUnder(relDir),
    };
  }
  return { root, isIgnored: () => false, mayUnignoreUnder: () => false };
}

/**
 * The file `name` of directory `base`, its symlinks followed as if `base` were `/`, as BuildKit
 * reads the ignore file from the context's own snapshot: a link to a host file names the file of
 * that path inside `base`. Undefined when there is nothing of that name; anything else there is
 * read or refused, never left out quietly (its rules may be what keeps a secret out of the image).
 */
async function readInside(base: string, name: string): Promise<{ path: string; text: string } | undefined> {
  const stats = lstatSync(join(base, name), { throwIfNoEntry: false });
  if (!stats) return undefined;
  // Named, never shown: where a link leads is the context's text, which may be anyone's.
  const unreadable = new Error(stats.isSymbolicLink()
    ? `${name} is a symbolic link that leads to no file inside the context (an ignore file is read inside its context, as BuildKit reads it)`
    : `${name} is not a regular file`);
  let rel: string;
  try {
    rel = followSymlinks(name, (path) => {
      const abs = join(base, path);
      return lstatSync(abs, { throwIfNoEntry: false })?.isSymbolicLink() ? readlinkSync(abs) : undefined;
    });
  } catch {
    throw unreadable; // a loop of links
  }
  const path = join(base, rel);
  // No link is followed now, and a FIFO does not hold the build up.
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR' || error.code === 'ELOOP') throw unreadable;
    throw new Error(`cannot read ${name}: ${error.code ?? error.message}`);
  });
  try {
    if (!(await file.stat()).isFile()) throw unreadable;
    return { path, text: await file.readFile('utf8') };
  } finally {
    await file.close();
  }
}

/**
 * The patterns of an ignore file, cleaned as moby's ignorefile.ReadAll does. A pattern that cannot
 * be read is reported by the file's name and line alone: the file may be anyone's, and its text is
 * not for the build's output.
 */
function readIgnoreFile(text: string, name: string): string[] {
  const patterns: string[] = [];
  for (const [index, line] of text.replace(/^\uFEFF/, '').split(/\r?\n/).entries()) {
    // A comment is a `#` in the first column only: an indented `#x` is a pattern.
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const problem = patternProblem(pattern);
    if (problem) throw new Error(`${name}:${index + 1}: ${problem}`);
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern !== '') {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    patterns.push(invert ? `!${pattern}` : pattern);
  }
  return patterns;
}

export interface PatternSet {
  /** Docker's rule: the last pattern that matches the path or one of its parent directories decides. */
  matches(relPath: string): boolean;
  /** Whether a `!` pattern may match something below a matched directory. */
  mayExceptUnder(relDir: string): boolean;
  /** Whether a pattern may match something below a directory it does not match. */
  mayMatchUnder(relDir: string): boolean;
}

/** Compiles dockerignore-style patterns (moby's patternmatcher rules) with @balena/dockerignore. */
export function compilePatterns(patterns: string[]): PatternSet {
  const rules: { parts: string[]; exception: boolean }[] = [];
  // A CommonJS module: Node's default import is module.exports, which also has itself as `default`.
  const matcher = dockerignore.default({ ignorecase: false });
  for (const raw of patterns) {
    let pattern = raw.trim();
    if (pattern === '') continue;
    const problem = patternProblem(pattern);
    if (problem) throw new Error(`${problem}: ${raw}`);
    const exception = pattern.startsWith('!');
    if (exception) pattern = pattern.slice(1);
    pattern = cleanPath(pattern);
    rules.push({ parts: pattern.split('/'), exception });
    matcher.add((exception ? '!' : '') + escapeForBalena(pattern));
  }
  // Whether a rule's leading parts fit the directory's, so that it may match below it.
  const mayMatchBelow = (exception: boolean, relDir: string): boolean => {
    const dirParts = relDir.split('/');
    return rules.some((rule) => {
      if (rule.exception !== exception) return false;
      for (let i = 0; i < rule.parts.length && i < dirParts.length; i++) {
        if (rule.parts[i]!.includes('**')) return true;
        if (globRegExp(rule.parts[i]!)?.test(dirParts[i]!) === false) return false;
      }
      return true;
    });
  };
  return {
    matches: (relPath) => relPath !== '' && matcher.ignores(relPath),
    mayExceptUnder: (relDir) => mayMatchBelow(true, relDir),
    mayMatchUnder: (relDir) => mayMatchBelow(false, relDir),
  };
}

/**
 * @balena/dockerignore follows moby 19.03, which put `+(){}|` into the regexp unescaped; today's
 * patternmatcher matches them literally, and so do we. A leading `#` would be read as a comment.
 */
function escapeForBalena(pattern: string): string {
  return pattern.replace(/\\.|[+(){}|]|^#/gs, (match) => (match.length === 2 ? match : `\\${match}`));
}

/** Go's filepath.Clean for `/` paths: `a//b/../c/` gives `a/c`, `` gives `.`. */
export function cleanPath(path: string): string {
  const rooted = path.startsWith('/');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
    else if (part !== '..' || !rooted) parts.push(part);
  }
  const joined = parts.join('/');
  return rooted ? `/${joined}` : joined || '.';
}

/** Whether a path has glob characters (`*`, `?`, `[`) outside backslash escapes. */
export function containsWildcards(path: string): boolean {
  return /^(?:\\.|[^\\*?[])*[*?[]/s.test(path);
}

/** What is wrong with a pattern (trimmed), in words that do not quote it; undefined when nothing is. */
function patternProblem(pattern: string): string | undefined {
  const exception = pattern.startsWith('!');
  if (exception && pattern.slice(1) === '') return 'illegal exclusion pattern "!"';
  const parts = cleanPath(exception ? pattern.slice(1) : pattern).split('/');
  return parts.every((part) => part.includes('**') || globRegExp(part) !== undefined) ? undefined : 'syntax error in pattern (an unclosed [ or a \\ at its end)';
}

/**
 * Go's filepath.Match as a RegExp: `*` and `?` stop at `/`, `[...]` classes (`^` negates), `\`
 * escapes. Undefined for a malformed pattern, which Go's Match reports as an error.
 */
export function globRegExp(pattern: string): RegExp | undefined {
  const chars = [...pattern];
  const literal = (char: string): string => `\\u{${char.codePointAt(0)!.toString(16)}}`;
  let source = '';
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '\\') {
      if (++i >= chars.length) return undefined;
      source += literal(chars[i]!);
    } else if (char === '[') {
      let j = i + 1;
      let negate = '';
      if (chars[j] === '^') {
        negate = '^';
        j++;
      }
      let items = '';
      const item = (): string | undefined => {
        const c = chars[j];
        if (c === undefined || c === '-' || c === ']') return undefined;
        if (c === '\\') j++;
        return chars[j++];
      };
      do {
        const low = item();
        if (low === undefined) return undefined;
        let high = low;
        if (chars[j] === '-') {
          j++;
          const end = item();
          if (end === undefined) return undefined;
          high = end;
        }
        // A reversed range is no error in Go: it matches nothing.
        if (low.codePointAt(0)! <= high.codePointAt(0)!) items += `${literal(low)}-${literal(high)}`;
      } while (chars[j] !== ']');
      source += `[${negate}${items}]`;
      i = j;
    } else source += literal(char);
  }
  return new RegExp(`^${source}$`, 'u');
}
