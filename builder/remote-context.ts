// Build contexts that are not a local directory, as buildx takes them: `-` (a tar, or a Dockerfile
// alone, on standard input), a tarball (a file or an http(s) URL), and a git repository
// (`https://host/org/repo.git#ref:subdir`, `git@host:org/repo.git`, `git://...`). Each is made into
// a directory first; a tarball goes through ADD's unpacking, which keeps every entry inside it.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, link, mkdir, readdir, readFile, realpath, rm, stat, symlink, utimes } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { LayerEntry } from '../layers/index.ts';
import type { ClientOptions } from '../registry/index.ts';
import { archiveEntries, fetchUrl, isLocalArchive } from './archive.ts';
import { BuildError } from './errors.ts';

/** A context as a directory, and the Dockerfile it came with when it was one alone (`-`). */
export interface MaterializedContext {
  dir: string;
  dockerfile?: string;
  /** Shown in messages: the URL or file given. */
  source: string;
}

/** buildx's test for a git context (and ADD's for a git source): git://, ssh://, git@, or an http(s) URL whose path ends in .git (before its #fragment), or github.com's. */
export function isGitUrl(spec: string): boolean {
  if (/^(git|ssh):\/\//.test(spec) || /^git@[^:]+:/.test(spec)) return true;
  if (!/^https?:\/\//.test(spec)) return false;
  const path = spec.split('#')[0]!;
  return /\.git\/?$/.test(path) || /^https?:\/\/github\.com\//.test(path);
}

/** Whether a context is something other than a local directory: `-`, a URL, or a file. */
export async function isRemoteContext(spec: string): Promise<boolean> {
  if (spec === '-' || isGitUrl(spec) || /^https?:\/\//.test(spec)) return true;
  return (await stat(spec).catch(() => undefined))?.isFile() === true;
}

/** Makes a context a directory under `work` (which the caller removes). */
export async function materializeContext(
  spec: string, work: string, options: { registry?: ClientOptions; stdin: () => AsyncIterable<Buffer>; secrets: ReadonlyMap<string, Buffer> },
): Promise<MaterializedContext> {
  const dir = join(work, 'context');
  await mkdir(dir);
  if (isGitUrl(spec)) return { dir: (await gitCheckout(spec, work, dir, { secrets: options.secrets, keepGitDir: false })).dir, source: redacted(spec) };
  let file: string;
  if (spec === '-') {
    file = join(work, 'stdin');
    await pipeline(options.stdin(), createWriteStream(file));
  } else if (/^https?:\/\//.test(spec)) {
    file = await fetchUrl(spec, work, undefined, options.registry).catch((error: Error) => {
      throw new BuildError(`context ${redacted(spec)}: ${redacted(error.message)}`);
    });
  } else file = resolve(spec);
  if (await isLocalArchive(file)) {
    await writeEntries(await archiveEntries(file, '/', { tmpDir: work }), dir);
    return { dir, source: redacted(spec) };
  }
  // Not an archive: a Dockerfile alone, with an empty context, as `docker build - < Dockerfile`.
  return { dir, dockerfile: await readFile(file, 'utf8'), source: redacted(spec) };
}

/** Writes unpacked archive entries under `dir`, with their modes and times: their paths are already inside it, their parents first. */
async function writeEntries(entries: LayerEntry[], dir: string): Promise<void> {
  for (const entry of entries) {
    const path = join(dir, entry.path);
    if (entry.type === 'directory') await mkdir(path, { recursive: true });
    else if (entry.type === 'symlink') await symlink(entry.linkname ?? '', path);
    else if (entry.type === 'hardlink') await link(join(dir, entry.linkname ?? ''), path);
    else if (entry.type === 'file' && typeof entry.source === 'string') await copyFile(entry.source, path);
    if (entry.type === 'symlink' || entry.type === 'hardlink') continue;
    await chmod(path, entry.mode);
    await utimes(path, entry.mtime, entry.mtime);
  }
}

/** Runs git with extra environment; its messages become the error's. */
function git(args: string[], cwd: string, env: Record<string, string> = {}): Promise<void> {
  return new Promise((done, fail) => {
    // No prompt for a password: a CI job would wait for ever. Credentials come from git's own helpers.
    const child = spawn('git', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GIT_TERMINAL_PROMPT: '0', ...env } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', (error) => fail(new BuildError(`git ${args[0]}: ${error.message} (git contexts and ADD's git sources need git installed)`)));
    child.on('close', (code) => (code === 0 ? done() : fail(new BuildError(`git ${args[0]}: ${redacted(stderr.trim().split('\n').at(-1) ?? `exit ${code}`)}`))));
  });
}

/** Text with the user information of any URL in it taken out (`https://user:token@host` gives `https://host`). */
export const redacted = (text: string): string => text.replace(/\/\/[^/@\s]*@/g, '//');

/** Removes the .git entries under `dir` (the submodules' files too, which would otherwise reach a layer), never following a symlink. */
async function removeGitDirs(dir: string): Promise<void> {
  const pending = [dir];
  while (pending.length > 0) {
    const at = pending.pop()!;
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (entry.name === '.git') await rm(join(at, entry.name), { recursive: true, force: true });
      else if (entry.isDirectory()) pending.push(join(at, entry.name));
    }
  }
}

/** Whether `path`, its symlinks followed, lies inside `root` (its symlinks followed too). */
export async function inside(root: string, path: string): Promise<boolean> {
  const [realRoot, real] = await Promise.all([realpath(root), realpath(path).catch(() => undefined)]);
  if (real === undefined) return false;
  const rel = relative(realRoot, real);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Checks out `URL#REF:SUBDIR` (REF a branch, tag or commit; the default branch without one) into
 * `dir` with its submodules, as BuildKit's git source does, and returns the directory (the
 * subdirectory, if one is named, which must lie inside the checkout) and the commit. The .git
 * directories are left out unless `keepGitDir` (ADD --keep-git-dir), as BuildKit leaves them out.
 * An https repository is fetched with the secret GIT_AUTH_TOKEN.<host>, else GIT_AUTH_TOKEN, as
 * BuildKit takes them.
 */
export async function gitCheckout(spec: string, work: string, dir: string, options: { secrets: ReadonlyMap<string, Buffer>; keepGitDir: boolean }): Promise<{ dir: string; commit: string }> {
  const hash = spec.indexOf('#');
  const url = hash < 0 ? spec : spec.slice(0, hash);
  const [ref = '', subdir = ''] = hash < 0 ? [] : spec.slice(hash + 1).split(':');
  const shown = redacted(spec);
  if (ref.startsWith('-')) throw new BuildError(`${shown}: "${ref}" is no git ref`);
  // The token reaches git in its environment (GIT_CONFIG_*), which no other user can read, as an
  // Authorization header for that host alone.
  const origin = /^https:\/\/([^/@]+@)?([^/]+)/.exec(url);
  const token = origin && (options.secrets.get(`GIT_AUTH_TOKEN.${origin[2]}`) ?? options.secrets.get('GIT_AUTH_TOKEN'));
  const auth: Record<string, string> = token ? {
    GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: `http.https://${origin[2]}/.extraheader`,
    GIT_CONFIG_VALUE_0: `Authorization: basic ${Buffer.from(`x-access-token:${token.toString('utf8').trim()}`).toString('base64')}`,
  } : {};
  const isCommit = /^[0-9a-f]{7,64}$/.test(ref);
  const fail = (error: unknown): never => {
    throw new BuildError(`${shown}: ${(error as Error).message}`);
  };
  await git(['init', '-q', dir], work);
  await git(['remote', 'add', 'origin', url], dir);
  try {
    await git(['fetch', '-q', '--depth=1', '--no-tags', 'origin', '--end-of-options', ref || 'HEAD'], dir, auth);
  } catch (error) {
    // A commit that the server will not give by itself: fetch everything, tags too, then take it.
    if (!isCommit) fail(error);
    await git(['fetch', '-q', '--tags', 'origin'], dir, auth).catch(fail);
  }
  await git(['checkout', '-q', isCommit ? ref : 'FETCH_HEAD'], dir).catch(fail);
  await git(['submodule', 'update', '-q', '--init', '--recursive', '--depth=1'], dir, auth).catch(fail);
  const commit = (await readFile(join(dir, '.git', 'HEAD'), 'utf8')).trim();
  if (!options.keepGitDir) await removeGitDirs(dir);
  const context = join(dir, subdir);
  if (!(await inside(dir, context)) || !(await stat(context).catch(() => undefined))?.isDirectory()) {
    throw new BuildError(`${shown}: the repository has no directory ${subdir} (inside it)`);
  }
  return { dir: context, commit };
}
