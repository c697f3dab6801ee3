// What a build takes from outside its Dockerfile's control, made hostile: a step that floods the
// ssh agent and never reads, messages that carry a megabyte of outside text, ignore files that lead
// out of their context or hold someone's secret, and Dockerfiles (a remote context's too) that name
// an OCI layout on the host. Each is judged end to end, by what the real `hoist` command does.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { gitIn, startGitDaemon } from '../support/git.ts';
import { hoist, hoistAsync, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;
let busybox: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-session-hostile-'));
  root = join(dir, 'store');
  busybox = makeBusyboxLayout(join(dir, 'busybox'));
  const store = await Store.open(root);
  const [image] = await importOciLayout(store, busybox, 'latest');
  await store.tag(normalizeReference('busybox'), image!.image.descriptor);
}, 120_000);
afterAll(() => removeTree(dir));

/** The length of the longest line of hoist's standard error. */
const longestLine = (stderr: string): number => Math.max(...stderr.split('\n').map((line) => line.length));

/**
 * A static client for a step: it connects to $SSH_AUTH_SOCK and writes agent requests (identities,
 * 5 bytes each), never reading an answer, until it has sent BYTES or the agent has taken nothing
 * for 2 seconds; it says which.
 */
const FLOOD_C = String.raw`
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long total = atol(argv[1]), sent = 0;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strncpy(addr.sun_path, getenv("SSH_AUTH_SOCK"), sizeof addr.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  static char buf[65535];
  for (size_t i = 0; i + 5 <= sizeof buf; i += 5) memcpy(buf + i, "\0\0\0\1\13", 5);
  while (sent < total) {
    long want = total - sent < 65530 ? total - sent : 65530;
    ssize_t n = write(fd, buf + sent % 5, want); /* from the next byte of a request on */
    if (n > 0) { sent += n; continue; }
    if (n < 0 && errno != EAGAIN) { perror("write"); return 1; }
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    if (poll(&p, 1, 2000) == 0) { printf("stalled after %ld bytes\n", sent); return 0; }
  }
  printf("sent %ld bytes\n", sent);
  return 0;
}
`;

describe('the ssh agent of RUN --mount=type=ssh', () => {
  test('a step that floods it with requests and never reads stalls itself; hoist holds no more memory for it', () => {
    const key = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const ctx = writeContext(dir, 'flood', { Dockerfile: 'FROM busybox\nCOPY flood /flood\nARG BYTES\nRUN --mount=type=ssh /flood $BYTES > /flooded\n' });
    writeFileSync(join(dir, 'flood.c'), FLOOD_C);
    execFileSync('cc', ['-static', '-O2', '-o', join(ctx, 'flood'), join(dir, 'flood.c')]);
    // hoist's peak resident memory (its own and its children's, the step's among them), from the
    // kernel's accounting as GNU time reads it; and what the step's client said.
    const build = (bytes: number): { peakKb: number; said: string } => {
      const out = join(dir, `flood-out-${bytes}`);
      const measured = join(dir, `flood-rss-${bytes}`);
      const run = spawnSync('/usr/bin/time', ['-f', '%M', '-o', measured, join(repoRoot, 'bin', 'hoist'), 'build', '--root', root, '--no-cache',
        '--ssh', `default=${key}`, '--build-arg', `BYTES=${bytes}`, '-o', `type=local,dest=${out}`, ctx], { encoding: 'utf8', maxBuffer: 1 << 26 });
      expect(run.status, run.stderr).toBe(0);
      return { peakKb: Number(readFileSync(measured, 'utf8').trim().split('\n').at(-1)), said: readFileSync(join(out, 'flooded'), 'utf8') };
    };
    const one = build(5);
    expect(one.said).toBe('sent 5 bytes\n');
    // 64 MiB of requests would be 0.9 GB of answers, held for a client that never takes them.
    const flood = build(64 << 20);
    expect(flood.peakKb - one.peakKb).toBeLessThan(64 * 1024);
    // hoist stopped reading once its answers were not taken: the client's writes stalled.
    expect(flood.said).toMatch(/^stalled after \d+ bytes\n$/);
    expect(Number(/\d+/.exec(flood.said)![0])).toBeLessThan(4 << 20);
  }, 300_000);
});

describe('messages that carry outside text', () => {
  /** ENV doubled 16 times: a 1 MiB value from a short Dockerfile. */
  const megabyte = ['ENV A=aaaaaaaaaaaaaaaa', ...Array.from({ length: 16 }, () => 'ENV A=$A$A')];

  test('a path of 1 MiB in a COPY, and a -f path too long to open (ENAMETOOLONG), print lines cut at 4 KiB', () => {
    const ctx = writeContext(dir, 'long-path', { Dockerfile: ['FROM scratch', ...megabyte, 'COPY a/$A /x', ''].join('\n'), a: 'a\n' });
    const copied = hoist(['build', '--root', root, ctx]);
    expect(copied.code).toBe(1);
    expect(copied.stderr).toContain('hoist: Dockerfile:19: file not found in build context or excluded by .dockerignore: stat a/aaaa');
    expect(copied.stderr).toMatch(/\.\.\. \(1044\d\d\d more characters\)\n$/);
    expect(longestLine(copied.stderr)).toBeLessThan(4200);
    expect(copied.stderr.length).toBeLessThan(16_000);

    const tooLong = hoist(['build', '--root', root, '-f', `/${'d'.repeat(100_000)}`, ctx]);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toContain('hoist: cannot read the Dockerfile /ddd');
    expect(longestLine(tooLong.stderr)).toBeLessThan(4200);
  });

  test('a warning that carries 100 KB of outside text (an unused --build-arg) is a line cut at 4 KiB', () => {
    const ctx = writeContext(dir, 'long-warning', { Dockerfile: 'FROM scratch\nCOPY a /a\n', a: 'a\n' });
    const run = hoist(['build', '--root', root, '--build-arg', `${'b'.repeat(100_000)}=1`, ctx]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('warning: build-args not consumed by any ARG: bbbb');
    expect(run.stderr).toMatch(/bbbb\.\.\. \(959\d\d more characters\)\n/);
    expect(longestLine(run.stderr)).toBeLessThan(4200);
  });

  test('a platform missing from an index of 10,000 entries is one short line naming the first few', () => {
    const layout = join(dir, 'wide-index');
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    const blob = (value: unknown): { digest: string; size: number } => {
      const bytes = Buffer.from(JSON.stringify(value));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
      return { digest, size: bytes.length };
    };
    const config = blob({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } });
    const manifest = blob({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [] });
    const manifests = Array.from({ length: 10_000 }, (_, i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { os: 'linux', architecture: `arch${i}` } }));
    const index = blob({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 'wide' } }] }));
    const ctx = writeContext(dir, 'wide-ctx', { Dockerfile: 'FROM wide\n' });
    const run = hoist(['build', '--root', root, '--platform', 'linux/amd64', '--build-context', `wide=oci-layout://${layout}:wide`, ctx]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`has no image for linux/amd64 (it has ${Array.from({ length: 10 }, (_, i) => `linux/arch${i}`).join(', ')}, and 9990 more)`);
    expect(longestLine(run.stderr)).toBeLessThan(500);
  });
});

describe('ignore files', () => {
  /** A file of the host's that no build may read: its line is no valid pattern, and its text a secret. */
  const hostFile = (): string => {
    const path = join(dir, 'host-secret');
    writeFileSync(path, 'ghp_SECRETTOKEN[\n');
    return path;
  };
  const LEADS_NOWHERE = 'is a symbolic link that leads to no file inside the context (an ignore file is read inside its context, as BuildKit reads it)';

  test("a directory context's ignore files are read inside it: a link is followed as if the context were /, and one that finds nothing there is refused", () => {
    const secret = hostFile();
    for (const name of ['.dockerignore', 'Dockerfile.dockerignore']) {
      const ctx = writeContext(dir, `ignore-dir-${name}`, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f\n' });
      symlinkSync(secret, join(ctx, name));
      const refused = hoist(['build', '--root', root, ctx]);
      expect(refused.stderr).not.toContain('SECRETTOKEN');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`hoist: Dockerfile:2: ${name} ${LEADS_NOWHERE}`);
    }

    // The same link with a file at that path inside the context: its rules apply.
    const inside = writeContext(dir, 'ignore-inside', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f\n', [secret]: 'f\n' });
    symlinkSync(secret, join(inside, '.dockerignore'));
    const ignored = hoist(['build', '--root', root, inside]);
    expect(ignored.code).toBe(1);
    expect(ignored.stderr).toContain('hoist: Dockerfile:2: file not found in build context or excluded by .dockerignore: stat f');
  });

  test("an ignore file's line that is no pattern is named by file and line, never shown", () => {
    const ctx = writeContext(dir, 'ignore-bad', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f\n', '.dockerignore': '# build files\n*.tmp\nghp_SECRETTOKEN[\n' });
    const run = hoist(['build', '--root', root, ctx]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('hoist: Dockerfile:2: .dockerignore:3: syntax error in pattern (an unclosed [ or a \\ at its end)');
    expect(run.stderr).not.toContain('SECRETTOKEN');
  });

  test("a tar context's .dockerignore and Dockerfile.dockerignore that link to a host file read nothing of it", () => {
    const secret = hostFile();
    for (const name of ['.dockerignore', 'Dockerfile.dockerignore']) {
      const ctx = writeContext(dir, `ignore-tar-${name}`, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f\n' });
      symlinkSync(secret, join(ctx, name));
      const tarball = join(dir, `ignore-${name}.tar`);
      execFileSync('tar', ['-cf', tarball, '-C', ctx, '.']);
      const run = hoist(['build', '--root', root, tarball]);
      expect(run.stderr).not.toContain('SECRETTOKEN');
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`hoist: Dockerfile:2: ${name} ${LEADS_NOWHERE}`);
    }
  });

  test("a git context's .dockerignore that links to a host file reads nothing of it (served by git daemon)", async () => {
    const secret = hostFile();
    const work = writeContext(dir, 'ignore-git', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f\n' });
    symlinkSync(secret, join(work, '.dockerignore'));
    for (const args of [['init', '-q', '-b', 'main'], ['add', '.'], ['commit', '-q', '-m', 'one']]) gitIn(work, ...args);
    const repos = join(dir, 'repos');
    execFileSync('git', ['clone', '-q', '--bare', work, join(repos, 'ctx.git')]);
    const { port, stop } = await startGitDaemon(repos);
    try {
      const run = await hoistAsync(['build', '--root', root, `git://127.0.0.1:${port}/ctx.git#main`]);
      expect(run.stderr).not.toContain('SECRETTOKEN');
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`hoist: Dockerfile:2: .dockerignore ${LEADS_NOWHERE}`);
    } finally {
      stop();
    }
  });
});

describe('OCI layouts', () => {
  test('a Dockerfile that names one in FROM or COPY --from, from a directory or a tar context, is refused at its line', () => {
    const layout = `oci-layout://${busybox}:latest`;
    const cases = [
      { dockerfile: `FROM ${layout}\n`, line: 1 },
      { dockerfile: `FROM scratch\nCOPY --from=${layout} /bin/busybox /b\n`, line: 2 },
      { dockerfile: `ARG BASE=${layout}\nFROM $BASE\n`, line: 2 },
    ];
    for (const [i, { dockerfile, line }] of cases.entries()) {
      const ctx = writeContext(dir, `layout-${i}`, { Dockerfile: dockerfile });
      const tarball = join(dir, `layout-${i}.tar`);
      execFileSync('tar', ['-cf', tarball, '-C', ctx, '.']);
      for (const context of [ctx, tarball]) {
        const run = hoist(['build', '--root', join(dir, 'layout-store'), context]);
        expect(run.code, run.stderr).toBe(1);
        expect(run.stderr).toContain(`hoist: Dockerfile:${line}: ${layout}: a Dockerfile cannot name an OCI layout; give it on the command line, as BuildKit takes it: --build-context NAME=oci-layout://PATH, then FROM NAME or COPY --from=NAME`);
      }
    }
  });

  test('--build-context NAME=oci-layout://PATH still gives FROM NAME and COPY --from=NAME', () => {
    const out = join(dir, 'layout-named-out');
    const ctx = writeContext(dir, 'layout-named', { Dockerfile: 'FROM base\nCOPY --from=base /bin/busybox /copied\nRUN echo ran > /ran\n' });
    const run = hoist(['build', '--root', join(dir, 'layout-store'), '--build-context', `base=oci-layout://${busybox}:latest`, '-o', `type=local,dest=${out}`, ctx]);
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(join(out, 'ran'), 'utf8')).toBe('ran\n');
    expect(readFileSync(join(out, 'copied')).equals(readFileSync(join(out, 'bin', 'busybox')))).toBe(true);
  });
});
