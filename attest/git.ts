// The git checkout a build context lies in: its commit and where it came from, read from .git
// (no git command: a CI image may have none).
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export interface GitSource {
  /** The remote's URL (origin's, else the first), without any credentials in it; undefined for a repository with no remote. */
  url?: string;
  commit: string;
}

const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** The checkout holding `dir` and its HEAD commit, or undefined when `dir` is in none (or HEAD names no commit yet). */
export async function gitSource(dir: string): Promise<GitSource | undefined> {
  const gitDir = await findGitDir(resolve(dir));
  if (!gitDir) return undefined;
  // A worktree's refs and config are in the repository's common directory.
  const common = await readFile(join(gitDir, 'commondir'), 'utf8').then((text) => resolve(gitDir, text.trim()), () => gitDir);
  const head = (await readFile(join(gitDir, 'HEAD'), 'utf8').catch(() => '')).trim();
  const ref = /^ref: (refs\/\S+)$/.exec(head)?.[1];
  const commit = ref ? await resolveRef(gitDir, common, ref) : head;
  if (!commit || !COMMIT.test(commit)) return undefined;
  const url = remoteUrl(await readFile(join(common, 'config'), 'utf8').catch(() => ''));
  return { commit, ...(url ? { url } : {}) };
}

/** The `.git` directory for `dir`: the nearest one above, or the one a `.git` file (a worktree's, a submodule's) points to. */
async function findGitDir(dir: string): Promise<string | undefined> {
  for (let at = dir; ; at = dirname(at)) {
    const dotGit = join(at, '.git');
    const info = await stat(dotGit).catch(() => undefined);
    if (info?.isDirectory()) return dotGit;
    if (info?.isFile()) {
      const pointer = /^gitdir: (.+)$/m.exec(await readFile(dotGit, 'utf8'))?.[1];
      return pointer ? resolve(at, pointer.trim()) : undefined;
    }
    if (dirname(at) === at) return undefined;
  }
}

async function resolveRef(gitDir: string, common: string, ref: string): Promise<string | undefined> {
  for (const dir of new Set([gitDir, common])) {
    const loose = await readFile(join(dir, ref), 'utf8').catch(() => undefined);
    if (loose !== undefined) return loose.trim();
  }
  const packed = await readFile(join(common, 'packed-refs'), 'utf8').catch(() => '');
  return packed.split('\n').map((line) => line.split(' ')).find(([, name]) => name === ref)?.[0];
}

/** origin's URL from a git config, else the first remote's, with anything secret taken out of it. */
function remoteUrl(config: string): string | undefined {
  const urls = new Map<string, string>();
  let remote: string | undefined;
  for (const line of config.split('\n')) {
    const section = /^\s*\[\s*remote\s+"([^"]+)"\s*\]/.exec(line);
    if (section) remote = section[1];
    else if (/^\s*\[/.test(line)) remote = undefined;
    const value = /^\s*url\s*=\s*(.*)$/.exec(line)?.[1];
    if (remote && value !== undefined && !urls.has(remote)) urls.set(remote, configValue(value));
  }
  const url = urls.get('origin') ?? urls.values().next().value;
  return url === undefined ? undefined : publicUrl(url);
}

/** A git config value: quotes joined and taken off, a comment (`#` or `;` outside quotes) dropped. */
function configValue(raw: string): string {
  let value = '';
  let quoted = false;
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i]!;
    if (char === '"') quoted = !quoted;
    else if (char === '\\' && i + 1 < raw.length) value += raw[++i];
    else if (!quoted && (char === '#' || char === ';')) break;
    else value += char;
  }
  return value.trim();
}

/**
 * A remote's URL as provenance may show it: a URL without its user, password, query or fragment
 * (where tokens go), or scp-like `git@host:org/repo.git` (whose user is the transport's). Anything
 * else is left out rather than risk a secret.
 */
function publicUrl(url: string): string | undefined {
  if (/^[\w.-]+@[\w.-]+:[^\s:@]+$/.test(url)) return url;
  try {
    const parsed = new URL(url);
    if (!['https:', 'http:', 'ssh:', 'git:', 'file:'].includes(parsed.protocol)) return undefined;
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return undefined;
  }
}
