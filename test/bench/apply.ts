// How fast a base image is applied to a directory (what the first RUN on a base waits for), beside
// GNU tar unpacking the same files, both in hoist's user namespace on the same file system.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { helperPath } from '../../userns-native/index.ts';
import { repoRoot } from '../support/paths.ts';

export interface ApplyResult {
  hoist: number;
  tar: number;
  gunzipTar: number;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Seconds a command takes in hoist's user namespace (where files can have any owner). */
function inNamespace(script: string, ...args: string[]): string {
  return execFileSync(helperPath, ['enter', '--', 'sh', '-c', script, 'sh', ...args], { encoding: 'utf8' });
}

/** `runs` applications of the layout's image, and of its tarball by GNU tar (plain, and gunzipped from the blob). */
export function benchApply(layout: string, tag: string, tarball: string, work: string, runs: number): ApplyResult {
  // The image's one layer blob: the largest file of the layout.
  const blobs = join(layout, 'blobs', 'sha256');
  const layer = readdirSync(blobs).map((name) => join(blobs, name)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const seconds = (script: string, ...args: string[]): number => {
    const dest = join(work, 'apply-dest');
    execFileSync('sync');
    const started = performance.now();
    const printed = inNamespace(`mkdir "$1" && ${script}`, dest, ...args).trim();
    const elapsed = (performance.now() - started) / 1000;
    inNamespace('rm -rf "$1"', dest);
    return printed ? Number(printed) : elapsed;
  };
  const store = join(work, 'apply-store');
  const hoist: number[] = [];
  const tar: number[] = [];
  const gunzipTar: number[] = [];
  for (let run = 0; run < runs; run++) {
    hoist.push(seconds(`node "${join(repoRoot, 'test', 'bench', 'apply-layer.ts')}" "$2" "$3" "$4" "$1"`, store, layout, tag));
    tar.push(seconds('tar -xf "$2" -C "$1"', tarball));
    gunzipTar.push(seconds('gzip -dc "$2" | tar -xf - -C "$1"', layer));
  }
  inNamespace('rm -rf "$1"', store);
  rmSync(join(work, 'apply-dest'), { recursive: true, force: true });
  return { hoist: median(hoist), tar: median(tar), gunzipTar: median(gunzipTar) };
}
