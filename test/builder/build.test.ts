// `hoist build` end to end, without RUN: the real command, a real store, and skopeo and umoci as
// independent judges of what it writes.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { waitUntil } from '../support/load.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;
const example = join(repoRoot, 'examples', 'hello');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-build-'));
  root = join(dir, 'store');
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('localhost:5000/busybox:latest'), busybox!.image.descriptor);
});
afterAll(() => removeTree(dir));

const context = (name: string, files: Record<string, string>): string => writeContext(dir, name, files);

const skopeo = (...args: string[]): any => JSON.parse(execFileSync('skopeo', args, { encoding: 'utf8' }));

function unpack(layoutDir: string, tag: string): string {
  const bundle = join(dir, `bundle-${Math.random().toString(36).slice(2)}`);
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${layoutDir}:${tag}`, bundle], { stdio: 'pipe' });
  return join(bundle, 'rootfs');
}

describe('the README example', () => {
  test('builds FROM scratch into the store; images, inspect, save and rmi see it', () => {
    const built = hoistOk(['build', '--root', root, '-t', 'hello', example]);
    expect(built.stdout).toMatch(/^built sha256:[a-f0-9]{64} as hello:latest\n$/);
    expect(built.stderr).toContain('[stage-0 2/8] ARG GREETING="hello from hoist"');

    const images = hoistOk(['images', '--root', root]).stdout.split('\n');
    expect(images[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(images.some((line) => /^hello\s+latest\s+[a-f0-9]{12}\s/.test(line))).toBe(true);

    const inspected = JSON.parse(hoistOk(['inspect', '--root', root, 'hello']).stdout);
    expect(inspected.Config.config).toMatchObject({
      Cmd: ['/srv/site/index.html'], WorkingDir: '/srv',
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'GREETING=hello from hoist'],
      Labels: { 'org.opencontainers.image.title': 'hoist hello example' },
    });
    expect(inspected.Config.history.map((h: { created_by: string }) => h.created_by)).toEqual([
      'COPY hello.txt / # buildkit', 'COPY site/ /srv/site/ # buildkit', 'WORKDIR /srv', 'ENV GREETING=hello from hoist',
      'LABEL org.opencontainers.image.title=hoist hello example', 'CMD ["/srv/site/index.html"]',
    ]);

    const saved = join(dir, 'hello.oci.tar');
    hoistOk(['save', '--root', root, 'hello', '-o', saved]);
    expect(skopeo('inspect', `oci-archive:${saved}:latest`).Digest).toBe(inspected.Digest);
    const dockerSaved = join(dir, 'hello.docker.tar');
    hoistOk(['save', '--root', root, '--format', 'docker', 'hello', '-o', dockerSaved]);
    expect(skopeo('inspect', '--config', `docker-archive:${dockerSaved}`).config.WorkingDir).toBe('/srv');

    expect(hoistOk(['rmi', '--root', root, 'hello']).stdout).toBe('Untagged: hello\n');
    expect(hoist(['rmi', '--root', root, 'hello']).code).toBe(1);
  });

  test('building twice gives the same layer digests', () => {
    const digests = [1, 2].map(() => {
      const meta = join(dir, `meta-${Math.random()}.json`);
      hoistOk(['build', '--root', root, '-q', '--metadata-file', meta, example]);
      const manifest = skopeoManifest(JSON.parse(readFileSync(meta, 'utf8'))['containerimage.digest']);
      return manifest.layers.map((layer: { digest: string }) => layer.digest);
    });
    expect(digests[0]).toHaveLength(2); // WORKDIR /srv adds no layer: COPY site/ /srv/site/ made it
    expect(digests[1]).toEqual(digests[0]);
  });
});

function skopeoManifest(digest: string): { layers: { digest: string }[] } {
  return JSON.parse(readFileSync(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
}

describe('load', () => {
  test('an image saved from one store loads into another, which builds on it with no registry', () => {
    hoistOk(['build', '--root', root, '-t', 'carried:1', example]);
    const tarball = join(dir, 'carried.tar');
    hoistOk(['save', '--root', root, 'carried:1', '-o', tarball]);
    const other = join(dir, 'other-store');
    expect(hoistOk(['load', '--root', other, tarball]).stdout).toBe('Loaded image: carried:1\n');
    const busyboxLayout = join(dir, 'busybox');
    expect(hoist(['load', '--root', other, `${busyboxLayout}:latest`]).stderr).toContain('has no name: give one with -t NAME');
    expect(hoistOk(['load', '--root', other, '-t', 'bb', `${busyboxLayout}:latest`]).stdout).toBe('Loaded image: bb:latest\n');
    const child = context('carried-child', { Dockerfile: 'FROM carried:1\nCOPY extra.txt /srv/\n', 'extra.txt': 'extra' });
    hoistOk(['build', '--root', other, '--output', `type=local,dest=${dir}/carried-fs`, child]);
    expect(readdirSync(join(dir, 'carried-fs', 'srv')).sort()).toEqual(['extra.txt', 'site']);
  });
});

describe('outputs', () => {
  test('type=oci tarball and directory, type=docker, type=local, with iidfile and metadata', () => {
    const ctx = context('outputs', {
      // /etc/app is made first: BuildKit gives --chmod's mode to parents it creates, which would
      // leave them unsearchable for umoci's rootless unpack.
      Dockerfile: 'FROM scratch\nCOPY bin/ /usr/local/bin/\nWORKDIR /etc/app\nCOPY --chmod=0600 secret.txt /etc/app/\nENTRYPOINT ["/usr/local/bin/tool"]\n',
      'bin/tool': '#!/bin/sh\necho tool\n',
      'secret.txt': 'not really\n',
    });
    execFileSync('chmod', ['0755', join(ctx, 'bin/tool')]);
    const out = join(dir, 'out');
    hoistOk([
      'build', '--root', root, '-t', 'registry.example/app:1', '--output', 'type=image', '--iidfile', join(out, 'iid'), '--metadata-file', join(out, 'meta.json'),
      '--output', `type=oci,dest=${out}/app.tar`, '--output', `type=oci,dest=${out}/layout,tar=false`,
      '--output', `type=docker,dest=${out}/app.docker.tar`, '--output', `type=local,dest=${out}/rootfs`, ctx,
    ]);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
    expect(readFileSync(join(out, 'iid'), 'utf8')).toBe(meta['containerimage.config.digest']);
    expect(meta['image.name']).toBe('registry.example/app:1');

    for (const transport of [`oci-archive:${out}/app.tar:1`, `oci:${out}/layout:1`, `docker-archive:${out}/app.docker.tar`]) {
      const config = skopeo('inspect', '--config', transport);
      expect(config.config.Entrypoint).toEqual(['/usr/local/bin/tool']);
      expect(config.rootfs.diff_ids).toHaveLength(3);
    }
    expect(skopeo('inspect', `oci:${out}/layout:1`).Digest).toBe(meta['containerimage.digest']);

    const rootfs = unpack(join(out, 'layout'), '1');
    expect(readFileSync(join(rootfs, 'usr/local/bin/tool'), 'utf8')).toBe('#!/bin/sh\necho tool\n');
    expect(statSync(join(rootfs, 'usr/local/bin/tool')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(rootfs, 'etc/app/secret.txt')).mode & 0o7777).toBe(0o600);
    const layerListing = execFileSync('tar', ['--numeric-owner', '-tvzf', join(out, 'layout', 'blobs', 'sha256', skopeo('inspect', `oci:${out}/layout:1`).Layers[2].slice(7))], { encoding: 'utf8' });
    expect(layerListing).toMatch(/-rw------- 0\/0 .* etc\/app\/secret.txt/);

    expect(readFileSync(join(out, 'rootfs', 'etc/app/secret.txt'), 'utf8')).toBe('not really\n');
    expect(lstatSync(join(out, 'rootfs', 'usr/local/bin')).isDirectory()).toBe(true);
    expect(hoistOk(['images', '--root', root]).stdout).toMatch(/registry\.example\/app\s+1\s/);
  });
});

describe('Docker semantics', () => {
  test('FROM a local image, COPY --chown by name, ENTRYPOINT resets the inherited CMD, ONBUILD runs in the child', () => {
    const base = context('base', {
      Dockerfile: 'FROM localhost:5000/busybox:latest\nCOPY passwd group /etc/\nCMD ["sh"]\nONBUILD COPY trigger.txt /from-onbuild.txt\n',
      passwd: 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/app:/bin/sh\n',
      group: 'root:x:0:\nstaff:x:4321:\n',
    });
    hoistOk(['build', '--root', root, '-t', 'base:1', base]);
    const child = context('child', {
      Dockerfile: 'FROM base:1\nCOPY --chown=app:staff a.txt /app/\nCOPY --chown=app b.txt /app/\nCOPY --chown=7:8 c.txt /app/\nENTRYPOINT ["/bin/sh", "-c"]\n',
      'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c', 'trigger.txt': 'onbuild ran',
    });
    hoistOk(['build', '--root', root, '-t', 'child', '--output', `type=oci,dest=${dir}/child,tar=false`, child]);
    const config = skopeo('inspect', '--config', `oci:${dir}/child:latest`);
    expect(config.config.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(config.config.Cmd).toBeUndefined();
    expect(config.config.OnBuild ?? null).toBeNull();
    const layers = skopeo('inspect', `oci:${dir}/child:latest`).Layers as string[];
    const owners = layers.slice(-3).map((digest) =>
      execFileSync('tar', ['--numeric-owner', '-tvzf', join(dir, 'child', 'blobs', 'sha256', digest.slice(7))], { encoding: 'utf8' }));
    expect(owners[0]).toMatch(/1234\/4321 .* app\/a.txt/);
    // A user named without a group gets its primary group from /etc/passwd, as in BuildKit.
    expect(owners[1]).toMatch(/1234\/2345 .* app\/b.txt/);
    expect(owners[2]).toMatch(/7\/8 .* app\/c.txt/);
    const onbuildLayer = execFileSync('tar', ['-tzf', join(dir, 'child', 'blobs', 'sha256', layers[layers.length - 4]!.slice(7))], { encoding: 'utf8' });
    expect(onbuildLayer).toContain('from-onbuild.txt');
    expect(hoist(['build', '--root', root, context('badchown', { Dockerfile: 'FROM base:1\nCOPY --chown=nobody x /\n', x: '', 'trigger.txt': '' })]).stderr)
      .toContain('--chown=nobody: no user named "nobody" in the image\'s /etc/passwd');
  });

  test('multi-stage: COPY --from by name and index, --target, and stages the target does not need are not built', () => {
    const ctx = context('multi', {
      Dockerfile: [
        'FROM scratch AS one', 'COPY one.txt /out/one.txt',
        'FROM scratch AS broken', 'RUN this stage is never needed',
        'FROM scratch AS two', 'COPY --from=one /out/one.txt /two/', 'COPY two.txt /two/',
        'FROM scratch', 'COPY --from=TWO /two /final', 'COPY --from=0 /out/one.txt /direct.txt',
      ].join('\n'),
      'one.txt': '1', 'two.txt': '2',
    });
    const built = hoistOk(['build', '--root', root, '--output', `type=local,dest=${dir}/multi`, ctx]);
    expect(built.stderr).not.toContain('never needed');
    expect(readdirSync(join(dir, 'multi', 'final')).sort()).toEqual(['one.txt', 'two.txt']);
    expect(readFileSync(join(dir, 'multi', 'direct.txt'), 'utf8')).toBe('1');
    hoistOk(['build', '--root', root, '--target', 'one', '--output', `type=local,dest=${dir}/target`, ctx]);
    expect(readdirSync(join(dir, 'target'))).toEqual(['out']);
  });

  test('WORKDIR makes its directory once; .dockerignore applies; EXPOSE, VOLUME, USER, STOPSIGNAL, HEALTHCHECK reach the config', () => {
    const ctx = context('config', {
      Dockerfile: 'FROM scratch\nWORKDIR /app\nWORKDIR sub\nWORKDIR /app\nCOPY . .\nEXPOSE 80 53/udp\nVOLUME /data\nUSER 1000:1000\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s CMD ["/check"]\n',
      '.dockerignore': '*.log\n!keep.log\n',
      'app.txt': 'x', 'debug.log': 'no', 'keep.log': 'yes',
    });
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${dir}/config,tar=false`, '--output', `type=local,dest=${dir}/config-fs`, ctx]);
    // --raw: skopeo's parsed config has no Healthcheck field (the OCI spec lacks it; Docker's has it).
    const config = skopeo('inspect', '--config', '--raw', `oci:${dir}/config`);
    expect(config.config).toMatchObject({
      WorkingDir: '/app', ExposedPorts: { '80/tcp': {}, '53/udp': {} }, Volumes: { '/data': {} }, User: '1000:1000', StopSignal: 'SIGINT',
      Healthcheck: { Test: ['CMD', '/check'], Interval: 5e9 },
    });
    expect(config.history.map((h: { created_by: string; empty_layer?: boolean }) => [h.created_by, h.empty_layer ?? false]).slice(0, 4)).toEqual([
      ['WORKDIR /app', false], ['WORKDIR /app/sub', false], ['WORKDIR /app', true], ['COPY . . # buildkit', false],
    ]);
    // As in Docker, the Dockerfile and .dockerignore are copied unless .dockerignore lists them.
    expect(readdirSync(join(dir, 'config-fs', 'app')).sort()).toEqual(['.dockerignore', 'Dockerfile', 'app.txt', 'keep.log', 'sub']);
    expect(existsSync(join(dir, 'config-fs', 'app', 'debug.log'))).toBe(false);
  });
});

describe('destinations through symlinks, ADD', () => {
  test('COPY and WORKDIR follow a symlinked directory in the image instead of replacing it (merged /usr)', () => {
    const ctx = context('symlinks', { Dockerfile: 'FROM scratch\nCOPY root/ /\nCOPY x.so /lib/\nWORKDIR /lib/app\nCOPY y.so lib/z.so\n', 'root/usr/lib/libc.so': 'c', 'x.so': 'x', 'y.so': 'y' });
    execFileSync('ln', ['-s', 'usr/lib', join(ctx, 'root/lib')]);
    hoistOk(['build', '--root', root, '--output', `type=oci,dest=${dir}/symlinks,tar=false`, '--output', `type=local,dest=${dir}/symlinks-fs`, ctx]);
    expect(lstatSync(join(dir, 'symlinks-fs', 'lib')).isSymbolicLink()).toBe(true);
    expect(readdirSync(join(dir, 'symlinks-fs', 'usr/lib')).sort()).toEqual(['app', 'libc.so', 'x.so']);
    expect(readdirSync(join(dir, 'symlinks-fs', 'usr/lib/app/lib'))).toEqual(['z.so']);
    const config = skopeo('inspect', '--config', `oci:${dir}/symlinks`);
    expect(config.config.WorkingDir).toBe('/lib/app');
  });

  test('ADD unpacks a local tar.gz and copies other files as they are', () => {
    const ctx = context('add', { Dockerfile: 'FROM scratch\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/\n', 'plain.txt': 'plain', 'src/tool/run': 'run' });
    execFileSync('tar', ['-czf', join(ctx, 'bundle.tar.gz'), '-C', join(ctx, 'src'), 'tool']);
    hoistOk(['build', '--root', root, '--output', `type=local,dest=${dir}/add-fs`, ctx]);
    expect(readFileSync(join(dir, 'add-fs', 'opt/tool/run'), 'utf8')).toBe('run');
    expect(readdirSync(join(dir, 'add-fs', 'opt')).sort()).toEqual(['plain.txt', 'tool']);
  });
});

describe('a shared store', () => {
  test('two builds at once into one store both land, with their tags', async () => {
    const ctx = context('parallel', { Dockerfile: 'FROM scratch\nARG N\nCOPY f /f\nLABEL n=$N\n', f: 'same file' });
    const runs = ['1', '2'].map((n) => new Promise<number>((resolve) => {
      spawn(join(repoRoot, 'bin', 'hoist'), ['build', '--root', root, '-q', '--build-arg', `N=${n}`, '-t', `parallel:${n}`, ctx], { stdio: 'ignore' })
        .on('exit', (code) => resolve(code ?? -1));
    }));
    expect(await Promise.all(runs)).toEqual([0, 0]);
    const labels = ['1', '2'].map((n) => JSON.parse(hoistOk(['inspect', '--root', root, `parallel:${n}`]).stdout).Config.config.Labels.n);
    expect(labels).toEqual(['1', '2']);
  });

  test('a build killed mid-layer leaves no half blob, and its temp files go at the next start', async () => {
    const ctx = join(dir, 'killed');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY big /big\n');
    execFileSync('head', ['-c', '400000000', '/dev/urandom'], { stdio: ['ignore', openSync(join(ctx, 'big'), 'w'), 'ignore'] });
    const killedRoot = join(dir, 'killed-store');
    const child = spawn(join(repoRoot, 'bin', 'hoist'), ['build', '--root', killedRoot, '-t', 'killed', ctx], { stdio: 'ignore' });
    // Wait until the layer blob is being written, then kill without warning.
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error('the build ended before its layer blob was seen being written');
      return readdirSafe(join(killedRoot, 'tmp')).some((name) => name.startsWith('blob-'));
    }, 'the layer blob being written');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    for (const blob of readdirSafe(join(killedRoot, 'blobs', 'sha256'))) {
      const hash = createHash('sha256').update(readFileSync(join(killedRoot, 'blobs', 'sha256', blob))).digest('hex');
      expect(hash).toBe(blob);
    }
    expect(hoist(['images', '--root', killedRoot]).stdout).not.toContain('killed');
    expect(readdirSafe(join(killedRoot, 'tmp'))).toEqual([]);
  });
});

const readdirSafe = (path: string): string[] => (existsSync(path) ? readdirSync(path) : []);

describe('errors', () => {
  test('bad flags, a missing context and a bad Dockerfile give one clear line and the right exit code', () => {
    const badFlag = hoist(['build', '--nope', example]);
    expect([badFlag.code, badFlag.stderr]).toEqual([2, "hoist: Unknown option '--nope' (see 'hoist build --help')\n"]);
    const missing = hoist(['build', join(dir, 'does-not-exist')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^hoist: context ".*does-not-exist" is not a directory, a tarball, a URL or -\n$/);
    expect(hoist(['frobnicate']).code).toBe(2);
    const bad = hoist(['build', '--root', root, '-f', '-', example], { input: 'FROM scratch\n  RUNN x\n' });
    expect([bad.code, bad.stderr]).toEqual([1, 'Dockerfile:2:3: unknown instruction: RUNN (did you mean RUN?)\n 2 |   RUNN x\n   |   ^\n']);
    expect(bad.stderr).not.toContain('    at ');
    expect(hoistOk(['--version']).stdout).toMatch(/^hoist \d+\.\d+\.\d+\n$/);
    expect(hoistOk(['build', '--help']).stdout).toContain('Usage: hoist build [OPTIONS] CONTEXT');
  });
});
