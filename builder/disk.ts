// Saying where a disk is full: the file system holding a path, the mount it is, and what is left.
import { existsSync, readFileSync, realpathSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/** Bytes free (to an unprivileged user) and in all on the file system holding `path` or its nearest existing parent. */
export function spaceAt(path: string): { free: number; size: number; at: string } {
  let at = path;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  const stats = statfsSync(at);
  return { free: stats.bavail * stats.bsize, size: stats.blocks * stats.bsize, at };
}

/** The mount holding `path`, from this namespace's mount table: the longest mount point above it. */
function mountOf(path: string): { point: string; type: string } | undefined {
  const real = realpathSync(path);
  const unescape = (text: string): string => text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')).filter((fields) => fields.length > 4)
    .map((fields) => ({ point: unescape(fields[4]!), type: fields[fields.indexOf('-') + 1] ?? '?' }))
    .filter(({ point }) => point === '/' || real === point || real.startsWith(`${point}/`))
    .sort((a, b) => b.point.length - a.point.length)[0];
}

/** `the disk is full: no space left on the file system holding WHAT (tmpfs on /mnt): N bytes free of M MiB`. */
export function diskFullMessage(path: string, what: string, quota = false): string {
  const { free, size, at } = spaceAt(path);
  const mount = mountOf(at);
  return `${quota ? 'your disk quota is used up' : 'the disk is full'}: no space left on the file system holding ${what}`
    + `${mount ? ` (${mount.type} on ${mount.point})` : ''}: ${free} bytes free of ${(size / (1 << 20)).toFixed(1)} MiB`;
}
