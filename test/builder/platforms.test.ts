// Several platforms in one build, without emulation: a cross-compiling Dockerfile whose build stage
// runs on the build platform once per target, a stage that does not depend on the target built
// once, and a final stage per target. Judged by skopeo (the index, copied whole), umoci (each
// platform's image) and a second store that pulls each platform and builds on it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { importOciLayout, normalizeReference, Store, writeIndex } from '../../layers/index.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { busyboxLayout } from '../support/oci-layouts.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

let dir: string;
let root: string;
let registry: Registry;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-platforms-'));
  root = join(dir, 'store');
  registry = await startRegistry();
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  removeTree(dir);
});

const PLATFORMS = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];
const DOCKERFILE = [
  'FROM --platform=$BUILDPLATFORM busybox AS build',
  'ARG TARGETARCH TARGETVARIANT',
  'RUN echo "built on $(uname -m) for $TARGETARCH$TARGETVARIANT" > /out',
  'FROM --platform=$BUILDPLATFORM busybox AS shared',
  'RUN echo "ran once" && echo shared > /shared',
  'FROM scratch',
  'COPY --from=build /out /out',
  'COPY --from=shared /shared /shared',
].join('\n');
const skopeo = (...args: string[]): string => execFileSync('skopeo', args, { encoding: 'utf8' });

test('--platform with three platforms: one index everywhere, the build stage per target, the shared stage once', () => {
  const ctx = writeContext(dir, 'cross', { Dockerfile: DOCKERFILE });
  const ref = `${registry.host}/multi:1`;
  const built = hoistOk([
    'build', '--root', root, '--progress=plain', '--platform', 'linux/amd64,linux/arm64', '--platform', 'linux/arm/v7', '-t', ref, '--push',
    '--output', `type=local,dest=${join(dir, 'local')}`, '--output', `type=oci,dest=${join(dir, 'multi.tar')}`,
    '--metadata-file', join(dir, 'metadata.json'), '--iidfile', join(dir, 'iid'), ctx,
  ], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  expect(built.stderr.split('\n').filter((line) => / ran once$/.test(line))).toHaveLength(1);
  expect(built.stderr).toMatch(/\[linux\/arm64 build \d+\/\d+\] RUN/);

  const index = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref}`));
  expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  // Each platform's image, then (the push's default provenance) an attestation manifest for each.
  expect(index.manifests.map((manifest: { platform: { os: string; architecture: string; variant?: string } }) => [manifest.platform.os, manifest.platform.architecture, manifest.platform.variant].filter(Boolean).join('/')))
    .toEqual([...PLATFORMS, 'unknown/unknown', 'unknown/unknown', 'unknown/unknown']);
  expect(index.manifests.slice(3).map((manifest: { annotations: Record<string, string> }) => manifest.annotations['vnd.docker.reference.digest']))
    .toEqual(index.manifests.slice(0, 3).map((manifest: { digest: string }) => manifest.digest));
  const digest = `sha256:${execFileSync('sha256sum', { input: skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref}`), encoding: 'utf8' }).split(' ')[0]}`;
  expect(JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8'))['containerimage.digest']).toBe(digest);
  expect(readFileSync(join(dir, 'iid'), 'utf8').trim()).toBe(digest);
  expect(built.stdout).toContain(`built ${digest} (linux/amd64, linux/arm64, linux/arm/v7)`);

  // The whole index copies; each platform's image unpacks with umoci and holds what its target got.
  skopeo('copy', '--all', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(dir, 'copied')}:all`);
  for (const [i, platform] of PLATFORMS.entries()) {
    const [, arch, variant] = platform.split('/');
    const layout = join(dir, `one-${i}`);
    skopeo('copy', '--src-tls-verify=false', '--override-os', 'linux', '--override-arch', arch!, ...(variant ? ['--override-variant', variant] : []), `docker://${ref}`, `oci:${layout}:one`);
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:one`, join(dir, `bundle-${i}`)]);
    expect(readFileSync(join(dir, `bundle-${i}`, 'rootfs', 'out'), 'utf8')).toBe(`built on x86_64 for ${arch}${variant ?? ''}\n`);
    expect(readFileSync(join(dir, 'local', platform.replaceAll('/', '_'), 'out'), 'utf8')).toBe(`built on x86_64 for ${arch}${variant ?? ''}\n`);
  }
  // The OCI tarball holds the index.
  expect(skopeo('inspect', '--raw', `oci-archive:${join(dir, 'multi.tar')}:1`)).toContain('linux');
}, 300_000);

test('a second store pulls each platform of the index and builds on it', () => {
  const other = join(dir, 'other-store');
  const ref = `${registry.host}/multi:1`;
  for (const platform of PLATFORMS) {
    hoistOk(['pull', '--root', other, '--platform', platform, ref]);
    const ctx = writeContext(dir, `on-${platform.replaceAll('/', '-')}`, { Dockerfile: `FROM ${ref}\nCOPY Dockerfile /again\n` });
    hoistOk(['build', '--root', other, '--platform', platform, '-t', 'on-top', ctx]);
    const config = JSON.parse(hoistOk(['inspect', '--root', other, 'on-top']).stdout).Config;
    expect([config.os, config.architecture, config.variant].filter(Boolean).join('/')).toBe(platform);
  }
}, 300_000);

test('the same index digest again from an empty store with SOURCE_DATE_EPOCH; type=docker is refused', () => {
  const ctx = writeContext(dir, 'again', { Dockerfile: DOCKERFILE });
  const digests = ['first', 'second'].map((name) => {
    hoistOk([
      'build', '--root', join(dir, `fresh-${name}`), '--build-context', `busybox=oci-layout://${join(dir, 'busybox')}:latest`, '--platform', PLATFORMS.join(','),
      '--metadata-file', join(dir, `${name}.json`), ctx,
    ], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    return JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'))['containerimage.digest'];
  });
  expect(digests[1]).toBe(digests[0]);
  const refused = hoist(['build', '--root', root, '--platform', PLATFORMS.join(','), '--output', `type=docker,dest=${join(dir, 'x.tar')}`, ctx]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('--output type=docker holds one image, and --platform asks for 3');
}, 300_000);

test('a base without the platform asked for is a clear error that names what it has', () => {
  const ref = `${registry.host}/multi:1`;
  const fromIndex = hoist(['build', '--root', root, '--platform', 'linux/s390x', writeContext(dir, 'no-s390x', { Dockerfile: `FROM ${ref}\n` })]);
  expect(fromIndex.code).toBe(1);
  expect(fromIndex.stderr).toMatch(/has no image for linux\/s390x \(it has linux\/amd64, linux\/arm64, linux\/arm\/v7\)/);
  const single = hoist(['build', '--root', root, '--platform', 'linux/arm64', writeContext(dir, 'single-arch', { Dockerfile: 'FROM busybox\n' })]);
  expect(single.code).toBe(1);
  expect(single.stderr).toContain('busybox is an image for linux/amd64 only, and this stage is for linux/arm64');
}, 120_000);

describe('RUN for another platform', () => {
  // QEMU user emulation, where binfmt_misc has an aarch64 handler (scripts/setup.sh installs
  // qemu-user-static and enables it) and Debian's arm64 busybox can be downloaded.
  let skipped: string | undefined;
  beforeAll(async () => {
    const handler = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
    if (!existsSync(handler) || !readFileSync(handler, 'utf8').startsWith('enabled')) {
      skipped = `no enabled aarch64 handler in binfmt_misc (${handler}): apt-get install qemu-user-static binfmt-support`;
      return;
    }
    // Debian's arm64 busybox, fetched and unpacked by mmdebstrap without touching this machine's dpkg.
    const extracted = join(dir, 'arm64');
    mkdirSync(extracted);
    const fetched = spawnSync('mmdebstrap', ['--quiet', '--arch=arm64', '--variant=extract', '--include=busybox-static', 'bookworm', join(extracted, 'root.tar')], { encoding: 'utf8' });
    if (fetched.status !== 0) {
      skipped = `mmdebstrap could not fetch Debian's arm64 busybox-static: ${fetched.stderr.trim().split('\n').at(-1)}`;
      return;
    }
    execFileSync('tar', ['-xf', join(extracted, 'root.tar'), '-C', extracted, './bin/busybox']);
    const arm64 = await busyboxLayout(join(dir, 'busybox-arm64'), { binary: join(extracted, 'bin', 'busybox'), architecture: 'arm64' });
    const store = await Store.open(root);
    const [native] = await importOciLayout(store, join(dir, 'busybox'), 'latest');
    const [foreign] = await importOciLayout(store, arm64, 'latest');
    const index = await writeIndex(store, [
      { descriptor: native!.image.descriptor, platform: { os: 'linux', architecture: 'amd64' } },
      { descriptor: foreign!.image.descriptor, platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    await store.tag(normalizeReference('multibusybox'), index);
  }, 120_000);

  test('runs under QEMU: uname -m says aarch64 in the arm64 image, x86_64 in the amd64 one', ({ skip }) => {
    skip(skipped !== undefined, skipped);
    const ctx = writeContext(dir, 'emulated', { Dockerfile: 'FROM multibusybox\nARG TARGETARCH\nRUN echo "$(uname -m) $TARGETARCH" > /arch\n' });
    hoistOk(['build', '--root', root, '--platform', 'linux/amd64,linux/arm64', '--output', `type=local,dest=${join(dir, 'emulated-out')}`, ctx]);
    expect(readFileSync(join(dir, 'emulated-out', 'linux_amd64', 'arch'), 'utf8')).toBe('x86_64 amd64\n');
    expect(readFileSync(join(dir, 'emulated-out', 'linux_arm64', 'arch'), 'utf8')).toBe('aarch64 arm64\n');
  }, 300_000);
});

test('with no binfmt_misc handler, a RUN for another platform stops before the first step, naming the platform and the fix', () => {
  // A binfmt_misc of its own, empty: what a machine without qemu-user-static has.
  const ctx = writeContext(dir, 'no-emulator', { Dockerfile: 'FROM busybox\nRUN true\n' });
  const script = `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec "$@"`;
  const result = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script, 'sh', join(repoRoot, 'bin', 'hoist'), 'build', '--root', root, '--platform', 'linux/arm64', ctx], { encoding: 'utf8' });
  expect(result.status).toBe(1);
  expect(result.stderr).toContain('RUN for linux/arm64 needs an emulator, and binfmt_misc has no handler for arm64 programs');
  expect(result.stderr).toContain('apt-get install qemu-user-static binfmt-support');
  expect(result.stderr).toContain('docker/setup-qemu-action');
  expect(result.stderr).not.toContain('[stage-0 1/');
}, 120_000);

test('one platform failing stops the others and is reported, once they have ended', async () => {
  const ctx = writeContext(dir, 'one-fails', {
    Dockerfile: 'FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN if [ "$TARGETARCH" = arm64 ]; then exit 3; else sleep 1000; fi\n',
  });
  // The amd64 step sleeps far longer than this test may run: that hoist ends at all shows the step
  // was stopped, not waited for (were it waited for, the test would time out, and this kill end it).
  const failed = spawn(join(repoRoot, 'bin', 'hoist'), ['build', '--root', root, '--platform', 'linux/amd64,linux/arm64', ctx], { stdio: ['ignore', 'ignore', 'pipe'] });
  onTestFinished(() => void failed.kill('SIGKILL'));
  let stderr = '';
  failed.stderr.on('data', (chunk) => (stderr += chunk));
  expect(await new Promise((resolve) => failed.once('exit', resolve))).toBe(1);
  expect(stderr).toContain('RUN exited with code 3');
}, 120_000);
