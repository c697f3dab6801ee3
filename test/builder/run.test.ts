// RUN in the rootless sandbox: run as the unprivileged test user with a subuid range, judged by
// GNU tar listings of the layers and by rootless buildah building the same RUN.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store, writeImage, writeLayer } from '../../layers/index.ts';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarHeader } from '../../layers/tar.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { Buildah } from '../support/layers.ts';
import { waitUntil } from '../support/load.ts';
import { repoRoot } from '../support/paths.ts';
import { descendantsOf, waitUntilGone, type OwnProcess } from '../support/processes.ts';
import { freePort, startRegistry } from '../support/registry.ts';

let dir: string;
let root: string;
let busyboxLayout: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-run-'));
  root = join(dir, 'store');
  const store = await Store.open(root);
  busyboxLayout = makeBusyboxLayout(join(dir, 'busybox'));
  const [busybox] = await importOciLayout(store, busyboxLayout, 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
});
afterAll(() => removeTree(dir));

const context = (name: string, dockerfile: string): string => writeContext(dir, name, { Dockerfile: dockerfile });

/** The entries of one layer blob, as GNU tar lists them: type+mode, owner, path (and link). */
function listing(blob: string): string[] {
  return execFileSync('tar', ['--numeric-owner', '-tvf', blob], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
    .map((line) => {
      const fields = line.split(/\s+/);
      return [fields[0], fields[1], ...fields.slice(5)].join(' ');
    });
}

function ociLayers(layout: string): string[] {
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}`], { encoding: 'utf8' }));
  return (inspected.Layers as string[]).map((digest) => join(layout, 'blobs', 'sha256', digest.slice(7)));
}

const changes = [
  'FROM busybox',
  'RUN mkdir -p /app/old/sub /keep && echo old > /app/old/sub/f && echo base > /etc/base.txt && echo gone > /gone.txt',
  [
    'RUN set -e; echo new > /created.txt; echo changed >> /etc/base.txt; rm /gone.txt',
    'mkdir -p /owned && touch /owned/a /owned/b /owned/c && chown 1000:1000 /owned/a && chown 65534:65534 /owned/b && chown 40000:40001 /owned/c',
    'touch /suid && chmod 4755 /suid && mkdir /sticky && chmod 1777 /sticky',
    'rm -rf /app/old && mkdir -p /app/old && echo replaced > /app/old/new',
    'ln -s /created.txt /link && ln /created.txt /hard && ln /bin/busybox /bin/bb',
  ].join(' && '),
].join('\n');

describe('RUN', () => {
  test('creates, changes, chowns, chmods, deletes, replaces a directory and links: the layer holds exactly that', () => {
    const out = join(dir, 'changes-oci');
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${out},tar=false`, context('changes', changes)]);
    const layers = ociLayers(out);
    expect(layers).toHaveLength(3);
    expect(listing(layers[2]!)).toEqual([
      '---------- 0/0 .wh.gone.txt',
      'drwxr-xr-x 0/0 app/',
      'drwxr-xr-x 0/0 app/old/',
      '---------- 0/0 app/old/.wh..wh..opq',
      '-rw-r--r-- 0/0 app/old/new',
      'drwxr-xr-x 0/0 bin/',
      '-rwxr-xr-x 0/0 bin/bb',
      'hrwxr-xr-x 0/0 bin/busybox link to bin/bb',
      '-rw-r--r-- 0/0 created.txt',
      'drwxr-xr-x 0/0 etc/',
      '-rw-r--r-- 0/0 etc/base.txt',
      'hrw-r--r-- 0/0 hard link to created.txt',
      'lrwxrwxrwx 0/0 link -> /created.txt',
      'drwxr-xr-x 0/0 owned/',
      '-rw-r--r-- 1000/1000 owned/a',
      '-rw-r--r-- 65534/65534 owned/b',
      '-rw-r--r-- 40000/40001 owned/c',
      'drwxrwxrwt 0/0 sticky/',
      '-rwsr-xr-x 0/0 suid',
    ]);
    // Nothing of the sandbox leaks into any layer.
    for (const layer of layers.slice(1)) expect(listing(layer).join('\n')).not.toMatch(/etc\/(hosts|resolv\.conf|hostname)|^d\S+ \S+ (proc|dev|sys)\//m);
  });

  test('rootless buildah makes the same layer from the same RUN', async () => {
    const ctx = context('judge', changes);
    const ours = join(dir, 'judge-ours');
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${ours},tar=false`, ctx]);
    const buildah = await Buildah.start();
    // buildah names an image pulled from an oci: path after the path, which may not be a valid
    // name here; a local registry gives it a plain one.
    const registry = await startRegistry();
    try {
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${busyboxLayout}:latest`, `docker://${registry.host}/busybox:latest`]);
      await buildah.run(['pull', '--quiet', '--tls-verify=false', `docker://${registry.host}/busybox:latest`]);
      await buildah.run(['tag', `${registry.host}/busybox:latest`, 'busybox']);
    } finally {
      await registry.stop();
    }
    try {
      const theirs = await buildah.build('judge', ctx, readFileSync(join(ctx, 'Dockerfile'), 'utf8'), ['--pull-never']);
      // Compared as sets of rows: the order of entries in a layer carries no meaning, nor does a
      // whiteout file's mode. buildah adds a run/ directory of its own sandbox, which hoist keeps out.
      const rows = (blob: string) => listing(blob).map((row) => row.replace(/^\S+( \S+ (.*\/)?\.wh\.)/, 'whiteout$1')).sort();
      const judged = rows(theirs[2]!).filter((row) => row !== 'drwxr-xr-x 0/0 run/');
      expect(rows(ociLayers(ours)[2]!)).toEqual(judged);
    } finally {
      await buildah.remove();
    }
  });

  test('where overlay is unavailable, a copied root and a snapshot give the same layer', () => {
    const ctx = context('copied', changes);
    const layerRows = (env: Record<string, string>, name: string): string[] => {
      const out = join(dir, name);
      const built = hoistOk(['build', '--root', root, '--output', `type=oci,dest=${out},tar=false`, ctx], { env });
      if (env.HOIST_NO_OVERLAY) expect(built.stderr).not.toContain('[stage-0] hoist-sandbox');
      return listing(ociLayers(out)[2]!).sort();
    };
    expect(layerRows({ HOIST_NO_OVERLAY: '1' }, 'copied-oci')).toEqual(layerRows({}, 'overlay-oci'));
  });

  test('COPY --from keeps the owners a stage gave its files, as BuildKit does', () => {
    const out = join(dir, 'from-owners');
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${out},tar=false`, context('from-owners', [
      'FROM busybox AS made', 'RUN mkdir /out && touch /out/f && chown 1234:4321 /out/f', 'FROM scratch', 'COPY --from=made /out/f /f',
    ].join('\n'))]);
    expect(listing(ociLayers(out)[0]!)).toEqual(['-rw-r--r-- 1234/4321 f']);
  });

  test('a RUN that changes nothing adds history but no layer', () => {
    const out = join(dir, 'nothing');
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${out},tar=false`, context('nothing', 'FROM busybox\nRUN true\nRUN ["/bin/sh", "-c", "exit 0"]\n')]);
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${out}`], { encoding: 'utf8' }));
    expect(config.rootfs.diff_ids).toHaveLength(1);
    expect(config.history.slice(1)).toMatchObject([
      { created_by: 'RUN /bin/sh -c true # buildkit', empty_layer: true },
      { created_by: 'RUN /bin/sh -c exit 0 # buildkit', empty_layer: true },
    ]);
  });

  test('USER, WORKDIR, ENV, ARG, SHELL and heredocs reach the step', () => {
    const ctx = context('env', [
      'FROM busybox', 'ARG VERSION=1.2', 'ENV GREETING=hi', 'WORKDIR /work', 'USER 1000:2000',
      'RUN echo "$(id -u):$(id -g) $(pwd) $GREETING $VERSION" > /tmp/out 2>/dev/null || echo "$(id -u):$(id -g) $(pwd) $GREETING $VERSION"',
      'USER 0', 'SHELL ["/bin/sh", "-ec"]', 'RUN <<EOF', 'echo "heredoc as $(id -u)" > /heredoc.txt', 'EOF',
      'RUN cat <<A > /two.txt && cat <<B >> /two.txt', 'one', 'A', 'two', 'B',
      'RUN <<EOF', '#!/bin/sh -e', 'echo "script $0" > /script.txt', 'EOF',
    ].join('\n'));
    const built = hoistOk(['build', '--root', root, '--output', `type=local,dest=${dir}/env-fs`, ctx]);
    expect(built.stderr).toContain('1000:2000 /work hi 1.2');
    expect(readFileSync(join(dir, 'env-fs', 'heredoc.txt'), 'utf8')).toBe('heredoc as 0\n');
    expect(readFileSync(join(dir, 'env-fs', 'two.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(readFileSync(join(dir, 'env-fs', 'script.txt'), 'utf8')).toBe('script /dev/pipes/EOF\n');
  });

  test('--network=none leaves only loopback; the default is the host network', () => {
    const ctx = context('network', 'FROM busybox\nRUN --network=none ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1\n');
    const built = hoistOk(['build', '--root', root, ctx]);
    expect(built.stderr).toMatch(/\[stage-0 2\/2\][^\n]*\n\[stage-0\] \s*lo\s*\n/);
    const host = hoistOk(['build', '--root', root, context('host', 'FROM busybox\nRUN cat /proc/net/dev | tail -n +3 | wc -l\n')]);
    expect(host.stderr).toMatch(/\n\[stage-0\] \s*[1-9]\d*\s*\n/);
  });

  test('stages that do not depend on each other run at the same time, their output kept apart', async () => {
    // Each of the first two stages waits for the other over the (shared) host network: built one
    // after the other, the first would time out. Each waits a minute, which no load delays the other's
    // start by.
    const port = await freePort();
    const ctx = context('parallel', [
      // The listener reads through -e: a plain `nc -l` also reads the step's empty stdin, and may
      // end the connection on that end of file before the talker's bytes arrive.
      'FROM busybox AS listener', `RUN busybox timeout 60 busybox nc -l -p ${port} -e sh -c 'cat > /got' && echo "listener got $(cat /got)"`,
      'FROM busybox AS talker', `RUN for i in $(busybox seq 1 600); do echo hello | busybox nc 127.0.0.1 ${port} && break; sleep 0.1; done; echo talker done`,
      'FROM busybox', 'COPY --from=listener /got /got', 'COPY --from=talker /bin/sh /talker-sh',
    ].join('\n'));
    const built = hoistOk(['build', '--root', root, '--jobs', '2', '--output', `type=local,dest=${dir}/parallel-fs`, ctx]);
    expect(built.stderr).toContain('[listener] listener got hello');
    expect(built.stderr).toContain('[talker] talker done');
    expect(readFileSync(join(dir, 'parallel-fs', 'got'), 'utf8')).toBe('hello\n');
  });

  test('a failing RUN fails the build with its exit code and last output lines', () => {
    const failed = hoist(['build', '--root', root, context('fails', 'FROM busybox\nRUN echo first line; echo about to fail >&2; exit 7\n')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('Dockerfile:2: RUN exited with code 7: /bin/sh -c echo first line; echo about to fail >&2; exit 7');
    expect(failed.stderr).toMatch(/last output:\n  first line\n  about to fail/);
  });

  test('a step has only stdin, stdout and stderr: it cannot write a status of its own', () => {
    const faked = hoist(['build', '--root', root, context('fake-status', 'FROM busybox\nRUN ls /proc/self/fd; echo "exit 0" >&3; exit 5\n')]);
    expect(faked.code).toBe(1);
    expect(faked.stderr).toContain('RUN exited with code 5');
    expect(faked.stderr).toMatch(/last output:\n  0\n  1\n  2\n  3\n.*Bad file descriptor/);
  });

  test('output is streamed whole, not clipped', () => {
    const built = hoistOk(['build', '--root', root, context('output', 'FROM busybox\nRUN i=0; while [ $i -lt 40000 ]; do echo "line $i of a long step output"; i=$((i+1)); done\n')]);
    expect(built.stderr).toContain('line 0 of a long step output');
    expect(built.stderr).toContain('line 39999 of a long step output');
    expect(built.stderr.length).toBeGreaterThan(1 << 20);
  });

  test('a hostile base layer is refused and writes nothing outside', async () => {
    const store = await Store.open(root);
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    const layer = await writeLayer(store, [
      { path: 'escape', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, linkname: outside },
      { path: 'escape/pwned', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 },
    ]);
    const image = await writeImage(store, { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }, [layer]);
    await store.tag(normalizeReference('hostile'), image.descriptor);
    const failed = hoist(['build', '--root', root, context('hostile', 'FROM hostile\nRUN true\n')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('refusing layer entry "escape/pwned": its path goes through the symlink /escape');
    expect(readdirSync(outside)).toEqual([]);
  });

  test('ADD of an archive with an entry beneath its own symlink: resolved inside the root, a layer RUN and type=local accept', () => {
    const hostTarget = join(dir, 'host-outside');
    const entry = (path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}, content = ''): Buffer[] => [
      encodeHeader({ path, type, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: Buffer.byteLength(content), ...extra }),
      Buffer.from(content), padding(Buffer.byteLength(content)),
    ];
    const archive = Buffer.concat([
      ...entry('evil', 'symlink', { linkname: hostTarget }), ...entry('evil/pwned', 'file', {}, 'pwned\n'), ...entry('fifo', 'fifo'), END_OF_ARCHIVE,
    ]);
    const ctx = writeContext(dir, 'add-symlink', { Dockerfile: `FROM busybox\nADD evil.tar /\nRUN cat ${hostTarget}/pwned && test -L /evil\n` });
    writeFileSync(join(ctx, 'evil.tar'), archive);
    const out = join(dir, 'add-symlink-out');
    const run = hoistOk(['build', '--root', root, '-o', `type=local,dest=${out}`, ctx]);
    expect(run.stderr).toContain('evil.tar: skipping fifo entries (such as fifo): a rootless build cannot make them');
    expect(readFileSync(join(out, hostTarget, 'pwned'), 'utf8')).toBe('pwned\n');
    expect(existsSync(hostTarget)).toBe(false);
  });

  test('a killed build leaves no process, mount or temp dir', async () => {
    const ctx = context('killed-run', 'FROM busybox\nRUN sleep 1000\n');
    const child = spawn(join(repoRoot, 'bin', 'hoist'), ['build', '--root', root, ctx], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    // This build's own processes, from hoist down: the sandbox helper running the step, and the step's sleep.
    let tree: OwnProcess[] = [];
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error(`the build ended before its step ran:\n${stderr}`);
      tree = descendantsOf(child.pid!);
      return tree.some((each) => each.cmdline === 'sleep 1000');
    }, 'the step\'s sleep under hoist');
    expect(tree.map((each) => each.cmdline)).toContainEqual(expect.stringMatching(/\/hoist-sandbox run /));
    child.kill('SIGKILL');
    await exited;
    expect(await waitUntilGone(tree)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(root);
    hoistOk(['images', '--root', root]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});
