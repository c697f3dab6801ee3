// Git repositories for git contexts and ADD's git sources: commands in a work tree with a fixed
// identity, and a git daemon on a free loopback port serving bare repositories.
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { waitUntil } from './load.ts';
import { freePort } from './registry.ts';

/** `git -C work ARGS...` with an author and committer of its own, returning what it printed. */
export function gitIn(work: string, ...args: string[]): string {
  const identity = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
  return execFileSync('git', ['-C', work, ...args], { encoding: 'utf8', env: { ...process.env, ...identity } }).trim();
}

/** Whether something listens on a loopback port. */
export const canConnect = (port: number): Promise<boolean> => new Promise((done) => {
  const socket = connect(port, '127.0.0.1', () => {
    socket.destroy();
    done(true);
  }).on('error', () => done(false));
});

/** A git daemon serving every bare repository under `repos` as `git://127.0.0.1:PORT/NAME`, once it answers. */
export async function startGitDaemon(repos: string): Promise<{ port: number; stop: () => void }> {
  const port = await freePort();
  const daemon = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${repos}`, '--listen=127.0.0.1', `--port=${port}`, repos], { stdio: 'ignore' });
  try {
    await waitUntil(() => canConnect(port), `git daemon on port ${port}`);
  } catch (error) {
    daemon.kill();
    throw error;
  }
  return { port, stop: () => daemon.kill() };
}
