// --load: hoist has no daemon, so a built image goes to the docker (or podman) CLI's `load`.
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Writable } from 'node:stream';
import { BuildError } from './errors.ts';

/** A command's path on PATH, if it is there. */
export function onPath(command: string): string | undefined {
  return (process.env.PATH ?? '').split(':').filter(Boolean).map((dir) => join(dir, command)).find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return statSync(path).isFile();
    } catch {
      return false;
    }
  });
}

/** Streams a docker archive into `CLI load`; what it says goes to the log, and its failure is the build's. */
export async function loadInto(cli: string, write: (dest: Writable) => Promise<void>, log: (line: string) => void): Promise<void> {
  const child = spawn(cli, ['load'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let said = '';
  for (const stream of [child.stdout, child.stderr]) stream.setEncoding('utf8').on('data', (text: string) => (said += text));
  const exited = new Promise<number | null>((done, fail) => child.on('error', fail).on('close', done));
  exited.catch(() => undefined); // awaited below, once the archive is written
  // A load that ends early (a daemon that is not running) says why when it exits; any other
  // failure of the writing is the build's own.
  child.stdin.on('error', () => undefined);
  await write(child.stdin).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
  child.stdin.end();
  const code = await exited;
  for (const line of said.trim().split('\n').filter(Boolean)) log(`${basename(cli)}: ${line}`);
  if (code !== 0) throw new BuildError(`${basename(cli)} load failed (exit ${code}): ${said.trim().split('\n').at(-1) ?? ''}`);
}
