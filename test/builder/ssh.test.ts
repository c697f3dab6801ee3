// --ssh and RUN --mount=type=ssh, judged by OpenSSH's own tools: ssh-add lists what the agent
// serves, ssh-keygen verifies what it signs, and a real ssh-agent is forwarded into a step, where
// the host's ssh-add (copied in with its libraries) talks to it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { openAgentSocket, parseSshSpec } from '../../builder/ssh.ts';
import { hoist, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { waitUntil } from '../support/load.ts';

const run = promisify(execFile);
let dir: string;
let root: string;
const keys: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-ssh-'));
  root = join(dir, 'store');
  for (const [name, args] of [['ed25519', ['-t', 'ed25519']], ['rsa', ['-t', 'rsa', '-b', '2048']], ['ecdsa', ['-t', 'ecdsa', '-b', '256']]] as const) {
    keys[name] = join(dir, `id_${name}`);
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', keys[name]!]);
  }
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
}, 120_000);
afterAll(() => removeTree(dir));

/** A public key file's type and key, without its comment. */
const publicKey = (path: string): string => readFileSync(path, 'utf8').split(' ').slice(0, 2).join(' ');

test('key files are served as an agent: ssh-add lists them, and ssh-keygen verifies their signatures', async () => {
  const [, source] = parseSshSpec(`deploy=${keys.ed25519},${keys.rsa},${keys.ecdsa}`);
  const socket = join(dir, 'agent.sock');
  const close = await openAgentSocket(source, socket, { uid: process.getuid!(), gid: process.getgid!(), mode: 0o600 });
  try {
    const env = { ...process.env, SSH_AUTH_SOCK: socket };
    const listed = (await run('ssh-add', ['-L'], { env })).stdout.trim().split('\n').map((line) => line.split(' ').slice(0, 2).join(' '));
    expect(listed).toEqual(['ed25519', 'rsa', 'ecdsa'].map((name) => publicKey(`${keys[name]}.pub`)));
    const data = join(dir, 'data');
    writeFileSync(data, 'signed through the agent\n');
    for (const name of ['ed25519', 'rsa', 'ecdsa']) {
      await run('ssh-keygen', ['-Y', 'sign', '-U', '-f', `${keys[name]}.pub`, '-n', 'file', data], { env });
      const signers = join(dir, `signers-${name}`);
      writeFileSync(signers, `tester ${publicKey(`${keys[name]}.pub`)}\n`);
      const verified = await run('sh', ['-c', `ssh-keygen -Y verify -f ${signers} -I tester -n file -s ${data}.sig < ${data}`]);
      expect(verified.stdout).toContain('Good "file" signature for tester');
      execFileSync('rm', [`${data}.sig`]);
    }
  } finally {
    await close();
  }
  expect(existsSync(socket)).toBe(false);

  const encrypted = join(dir, 'id_encrypted');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'passphrase', '-f', encrypted]);
  expect(() => parseSshSpec(`x=${encrypted}`)).toThrow('the key is encrypted: add it to an agent (ssh-add) and pass --ssh default');
}, 60_000);

/** A context holding the host's ssh-add and the libraries it loads, at the same paths. */
function sshAddContext(name: string, dockerfile: string): string {
  const ctx = writeContext(dir, name, { Dockerfile: dockerfile });
  const files = ['/usr/bin/ssh-add', ...execFileSync('ldd', ['/usr/bin/ssh-add'], { encoding: 'utf8' }).split('\n').map((line) => /(\/\S+) \(0x/.exec(line)?.[1]).filter((path): path is string => path !== undefined)];
  for (const file of files) {
    mkdirSync(join(ctx, 'host', dirname(file)), { recursive: true });
    copyFileSync(file, join(ctx, 'host', file));
  }
  return ctx;
}

test('--ssh default forwards the running agent into RUN --mount=type=ssh; the socket reaches no layer', async () => {
  const agentSocket = join(dir, 'real-agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
  try {
    await waitUntil(() => existsSync(agentSocket), 'ssh-agent\'s socket');
    await run('ssh-add', [keys.ed25519!], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket } });
    const ctx = sshAddContext('forward', [
      'FROM busybox',
      'COPY host/ /',
      'RUN --mount=type=ssh ssh-add -L > /listed && echo "$SSH_AUTH_SOCK" > /socket-path',
      'RUN --mount=type=ssh,id=other true',
    ].join('\n'));
    const out = join(dir, 'forward-out');
    const built = hoist(['build', '--root', root, '--ssh', 'default', '-o', `type=local,dest=${out}`, ctx], { env: { SSH_AUTH_SOCK: agentSocket } });
    expect(built.code, built.stderr).toBe(0);
    expect(readFileSync(join(out, 'listed'), 'utf8').split(' ').slice(0, 2).join(' ')).toBe(publicKey(`${keys.ed25519}.pub`));
    expect(readFileSync(join(out, 'socket-path'), 'utf8')).toBe('/run/buildkit/ssh_agent.0\n');
    expect(built.stderr).toContain('RUN --mount=type=ssh,id=other: no --ssh other given, so the step has no agent');
    expect(existsSync(join(out, 'run', 'buildkit'))).toBe(false);
  } finally {
    agent.kill();
  }
}, 120_000);

test('--ssh ID=KEY serves the key to the step, and a required agent that is missing is an error', () => {
  const ctx = sshAddContext('keyfile', 'FROM busybox\nCOPY host/ /\nRUN --mount=type=ssh,id=deploy,target=/agent.sock SSH_AUTH_SOCK=/agent.sock ssh-add -L > /listed\n');
  const out = join(dir, 'keyfile-out');
  const built = hoist(['build', '--root', root, '--ssh', `deploy=${keys.rsa}`, '-o', `type=local,dest=${out}`, ctx]);
  expect(built.code, built.stderr).toBe(0);
  expect(readFileSync(join(out, 'listed'), 'utf8').split(' ').slice(0, 2).join(' ')).toBe(publicKey(`${keys.rsa}.pub`));
  expect(existsSync(join(out, 'agent.sock'))).toBe(false);

  const required = writeContext(dir, 'required', { Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,required=true true\n' });
  const missing = hoist(['build', '--root', root, required]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('ssh default is required: pass it with --ssh default');
  const bad = hoist(['build', '--root', root, '--ssh', `x=${join(dir, 'no-such-key')}`, required]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain(`--ssh x=${join(dir, 'no-such-key')}: cannot read`);
});
