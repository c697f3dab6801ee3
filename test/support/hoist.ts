// Runs the real `hoist` command, as a user would.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.ts';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function hoist(args: string[], options: { cwd?: string; input?: string | Buffer; env?: Record<string, string> } = {}): Run {
  const result = spawnSync(join(repoRoot, 'bin', 'hoist'), args, {
    cwd: options.cwd ?? repoRoot, input: options.input ?? '', encoding: 'utf8', env: { ...process.env, ...options.env }, maxBuffer: 1 << 26,
  });
  if (result.error) throw result.error;
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * hoist() without blocking the test's event loop: for tests that serve something hoist talks to
 * (a token issuer, a proxy) from the test process itself.
 */
export function hoistAsync(args: string[], options: { env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repoRoot, 'bin', 'hoist'), args, { cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Like hoist(), but a non-zero exit fails the test with hoist's own message. */
export function hoistOk(args: string[], options: Parameters<typeof hoist>[1] = {}): Run {
  const run = hoist(args, options);
  if (run.code !== 0) throw new Error(`hoist ${args.join(' ')} exited ${run.code}:\n${run.stderr}`);
  return run;
}

/** A one-layer busybox image (Debian's busybox-static) as an OCI layout tagged `latest` (see oci-layouts.ts). */
export function makeBusyboxLayout(dest: string): string {
  // In a child process: writing a layer is asynchronous, and the callers are not.
  const result = spawnSync(process.execPath, [join(repoRoot, 'test', 'support', 'make-busybox.ts'), dest], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`make-busybox.ts failed: ${result.stderr}`);
  return dest;
}

/** Removes a tree that may hold files of the user's sub-ids (made inside hoist's user namespace). */
export function removeTree(path: string): void {
  const command = process.getuid?.() === 0 ? ['rm', '-rf', path] : [join(repoRoot, 'userns-native', 'build', 'hoist-sandbox'), 'enter', '--', 'rm', '-rf', path];
  const result = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`removing ${path} failed: ${result.stderr}`);
}

/** Writes a build context under `parent`: relative paths to contents. */
export function writeContext(parent: string, name: string, files: Record<string, string>): string {
  const path = join(parent, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(path, file, '..'), { recursive: true });
    writeFileSync(join(path, file), content);
  }
  return path;
}
