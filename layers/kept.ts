// Paths that layers applied in place must leave alone, with all below them (--isolation=container,
// where RUN steps use the container's own root): hoist's own directory, its store and inputs, and
// the container's mounts (/proc, /dev, /sys, /etc/hosts, volumes).
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export class KeptPaths {
  /** Relative to the root, without slashes at either end. */
  private readonly paths: string[];

  constructor(absolute: Iterable<string>) {
    this.paths = [...new Set([...absolute].map((path) => path.split('/').filter(Boolean).join('/')))].filter((path) => path !== '');
  }

  /** Whether `rel` is kept: one of the paths, or below one. */
  has(rel: string): boolean {
    return this.paths.some((path) => rel === path || rel.startsWith(`${path}/`));
  }

  /** Whether a kept path lies below `rel`: it must stay a directory, and only what is not kept in it may go. */
  isAbove(rel: string): boolean {
    return this.paths.some((path) => rel === '' || path.startsWith(`${rel}/`));
  }

  /** Removes `rel` (relative to `root`) and everything below it, except what is kept. */
  remove(root: string, rel: string): void {
    if (this.has(rel)) return;
    const abs = join(root, rel);
    if (!this.isAbove(rel)) {
      rmSync(abs, { recursive: true, force: true });
      return;
    }
    if (!lstatSync(abs, { throwIfNoEntry: false })?.isDirectory()) return;
    for (const name of readdirSync(abs)) this.remove(root, rel ? `${rel}/${name}` : name);
  }
}
