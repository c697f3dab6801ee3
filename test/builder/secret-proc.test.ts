// A RUN step's secrets stay out of every /proc file another local user can read while the step runs
// (the sandbox helper takes the step's environment on a pipe, not its command line), and out of
// the step's own view of its pid 1 when the step did not mount them.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { helperPath } from '../../userns-native/index.ts';
import { hoistAsync, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';

/**
 * Reads {secrets, testPid} from its first input line, reports itself, then reads every
 * /proc/PID/cmdline and /proc/PID/environ every 50 ms until its input ends (at most 2 minutes),
 * and reports what it saw. The secrets come on its input, so its own /proc files hold none.
 */
const POLLER = `
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { once } from 'node:events';
let input = '';
let ended = false;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => (ended = true));
while (!input.includes('\\n')) await once(process.stdin, 'data');
const { secrets, testPid } = JSON.parse(input.slice(0, input.indexOf('\\n')));
let testEnviron = 'readable';
try { readFileSync('/proc/' + testPid + '/environ'); } catch (error) { testEnviron = error.code; }
console.log(JSON.stringify({ pid: process.pid, pidNamespace: readlinkSync('/proc/self/ns/pid'), testEnviron }));
const report = { polls: 0, processes: 0, cmdlinesRead: 0, environsRead: 0, sleepsSeen: 0, found: {} };
const seen = new Set();
const deadline = Date.now() + 120_000;
while (!ended && Date.now() < deadline) {
  report.polls++;
  for (const pid of readdirSync('/proc').filter((name) => /^\\d+$/.test(name))) {
    seen.add(pid);
    for (const file of ['cmdline', 'environ']) {
      let text;
      try { text = readFileSync('/proc/' + pid + '/' + file, 'latin1'); } catch { continue; }
      if (file === 'cmdline') report.cmdlinesRead++;
      else report.environsRead++;
      if (text === 'sleep\\u00003\\u0000') report.sleepsSeen++;
      for (const secret of secrets) {
        const at = text.indexOf(secret);
        if (at >= 0) report.found[pid + '/' + file] = text.slice(Math.max(0, at - 60), at + 60).replaceAll('\\u0000', ' ');
      }
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
}
report.processes = seen.size;
console.log(JSON.stringify(report));
`;

let dir: string;
let pollerDir: string;
let root: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-secret-proc-'));
  root = join(dir, 'store');
  hoistOk(['load', '--root', root, '-t', 'busybox', `${makeBusyboxLayout(join(dir, 'busybox'))}:latest`]);
  // The poller runs as another user: its script must be readable by everyone, and nothing else here.
  pollerDir = mkdtempSync(join(tmpdir(), 'hoist-secret-poller-'));
  chmodSync(pollerDir, 0o755);
  writeFileSync(join(pollerDir, 'poller.mjs'), POLLER, { mode: 0o644 });
});
afterAll(() => {
  removeTree(dir);
  removeTree(pollerDir);
});

interface PollerReport { polls: number; processes: number; cmdlinesRead: number; environsRead: number; sleepsSeen: number; found: Record<string, string> }

test('while a RUN step with secrets runs, another user finds them in no /proc/*/cmdline or environ; a step without them cannot read them from its pid 1', async () => {
  const envMarker = randomBytes(16).toString('hex');
  const fileMarker = randomBytes(16).toString('hex');
  // Spaces, '=' and a newline: the value must reach the step whole.
  const envSecret = `env ${envMarker} = with\nnewline`;
  const fileSecret = `${fileMarker}\n`;
  const secretFile = join(dir, 'secret.txt');
  writeFileSync(secretFile, fileSecret, { mode: 0o600 });
  const context = writeContext(dir, 'ctx', {
    Dockerfile: [
      'FROM busybox',
      'RUN cat /proc/1/cmdline /proc/1/environ > /pid1.txt',
      'RUN --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=file,target=/run/secrets/file \\',
      '  printf %s "$TOK" | sha256sum > /tok.sum && sha256sum < /run/secrets/file > /file.sum && sh -c \'sleep 3\'',
    ].join('\n'),
  });

  // In a user namespace of the test user's subuid range, uid 1000 is another kernel uid.
  const poller = spawn(helperPath, ['enter', '--', 'setpriv', '--reuid', '1000', '--regid', '1000', '--clear-groups', process.execPath, join(pollerDir, 'poller.mjs')], {
    env: { PATH: process.env.PATH }, stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  poller.stdout.setEncoding('utf8');
  poller.stdout.on('data', (chunk: string) => (output += chunk));
  const pollerDone = new Promise<number | null>((resolve) => poller.on('close', resolve));
  poller.stdin.write(`${JSON.stringify({ secrets: [envMarker, fileMarker], testPid: process.pid })}\n`);
  while (!output.includes('\n')) {
    if (poller.exitCode !== null) throw new Error(`the poller ended before it started (exit code ${poller.exitCode})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const hello = JSON.parse(output.slice(0, output.indexOf('\n'))) as { pid: number; pidNamespace: string; testEnviron: string };

  // Seen from here, the poller's real, effective, saved and filesystem uids are one uid, not ours.
  const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${hello.pid}/status`, 'utf8'))![1]!.split(/\s+/);
  expect(new Set(uids).size).toBe(1);
  expect(Number(uids[0])).not.toBe(process.getuid!());
  // It cannot read our processes' environments (hoist's holds HOIST_TEST_TOKEN), but sees our processes.
  expect(hello.testEnviron).toBe('EACCES');
  expect(hello.pidNamespace).toBe(readlinkSync('/proc/self/ns/pid'));

  const out = join(dir, 'out');
  const build = await hoistAsync(['build', '--root', root, '--secret', 'id=tok,env=HOIST_TEST_TOKEN', '--secret', `id=file,src=${secretFile}`, '--output', `type=local,dest=${out}`, context], {
    env: { HOIST_TEST_TOKEN: envSecret },
  });
  poller.stdin.end();
  expect(await pollerDone).toBe(0);
  expect(build.code, build.stderr).toBe(0);
  const report = JSON.parse(output.trim().split('\n').at(-1)!) as PollerReport;
  console.log(`poller: ${report.polls} polls, ${report.processes} processes seen, ${report.cmdlinesRead} cmdlines and ${report.environsRead} environs read, the step's sleep seen ${report.sleepsSeen} times`);

  expect.soft(report.found).toEqual({});
  expect(report.sleepsSeen).toBeGreaterThan(5);
  expect(report.polls).toBeGreaterThan(20);
  // The step got both secrets whole.
  const sum = (text: string): string => `${createHash('sha256').update(text).digest('hex')}  -\n`;
  expect(readFileSync(join(out, 'tok.sum'), 'utf8')).toBe(sum(envSecret));
  expect(readFileSync(join(out, 'file.sum'), 'utf8')).toBe(sum(fileSecret));
  // The step's pid 1 is the helper: its command line is there to read, and no secret is.
  const pid1 = readFileSync(join(out, 'pid1.txt'), 'latin1');
  expect(pid1).toContain('hoist-sandbox\0run\0');
  for (const marker of [envMarker, fileMarker]) expect.soft(pid1).not.toContain(marker);
});
