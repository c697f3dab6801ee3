// Pull and push against a real registry (Debian's docker-registry) on a free loopback port, with
// skopeo as the independent judge of what hoist pushed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistAsync, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { startFaultyProxy } from '../support/proxy.ts';
import { startRegistry, startTokenIssuer, type Registry } from '../support/registry.ts';

let dir: string;
let registry: Registry;
let busybox: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-registry-test-'));
  registry = await startRegistry();
  busybox = makeBusyboxLayout(join(dir, 'busybox'));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${busybox}:latest`, `docker://${registry.host}/base/busybox:1`]);
});
afterAll(async () => {
  await registry.stop();
  removeTree(dir);
});

const skopeoInspect = (ref: string, ...flags: string[]) =>
  JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', ...flags, `docker://${ref}`], { encoding: 'utf8' }));

describe('registry', () => {
  test('FROM pulls the base, --push sends the image, and skopeo reads back the same digest', () => {
    const root = join(dir, 'store-a');
    const ctx = writeContext(dir, 'app', {
      Dockerfile: `FROM ${registry.host}/base/busybox:1\nRUN echo built > /built.txt\nCOPY app.txt /app.txt\nCMD ["cat", "/app.txt"]\n`,
      'app.txt': 'hello registry\n',
    });
    const meta = join(dir, 'meta.json');
    // The image alone, without the provenance a push has by default: its blobs are counted below.
    const built = hoistOk(['build', '--root', root, '-t', `${registry.host}/team/app:1`, '-t', `${registry.host}/team/app:latest`, '--push', '--provenance=false', '--metadata-file', meta, ctx]);
    expect(built.stderr).toContain(`pulling ${registry.host}/base/busybox:1`);
    // The base layer came from base/busybox on this registry: it is mounted, not uploaded.
    expect(built.stderr).toMatch(new RegExp(`pushed ${registry.host}/team/app:1@sha256:[a-f0-9]{64} \\(3 of 4 blobs uploaded, 1 mounted from another repository\\)`));
    expect(built.stderr).toMatch(/pushed .*app:latest@sha256:[a-f0-9]{64} \(0 of 4 blobs uploaded\)/);
    const digest = JSON.parse(readFileSync(meta, 'utf8'))['containerimage.digest'];
    expect(skopeoInspect(`${registry.host}/team/app:1`).Digest).toBe(digest);
    expect(skopeoInspect(`${registry.host}/team/app:latest`, '--config').config.Cmd).toEqual(['cat', '/app.txt']);

    // --output type=registry is --push. Every step comes from the cache, so the image is the same
    // and no blob is sent again.
    expect(hoistOk(['build', '--root', root, '-t', `${registry.host}/team/app:again`, '--output', 'type=registry', '--provenance=false', ctx]).stderr)
      .toMatch(new RegExp(`pushed .*team/app:again@${digest} \\(0 of 4 blobs uploaded\\)`));
    // Pushing again sends no blob; another store pulls it back whole.
    expect(hoistOk(['push', '--root', root, `${registry.host}/team/app:1`]).stderr).toContain('(0 of 4 blobs uploaded)');
    const other = join(dir, 'store-b');
    expect(hoistOk(['pull', '--root', other, `${registry.host}/team/app:1`]).stdout.trim()).toBe(digest);
    hoistOk(['build', '--root', other, '--output', `type=local,dest=${dir}/pulled-fs`, writeContext(dir, 'child', { Dockerfile: `FROM ${registry.host}/team/app:1\n` })]);
    expect(readFileSync(join(dir, 'pulled-fs', 'built.txt'), 'utf8')).toBe('built\n');
    expect(hoistOk(['pull', '--root', other, `${registry.host}/team/app@${digest}`]).stdout.trim()).toBe(digest);
  });

  test('a missing image and a missing repository are clear errors', () => {
    const failed = hoist(['pull', '--root', join(dir, 'store-c'), `${registry.host}/nothing/here:1`]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`^hoist: image not found: ${registry.host}/nothing/here:1 \\(the registry said: (MANIFEST|NAME)_UNKNOWN: [^)]+\\)\n$`));
    const missingTag = hoist(['build', '--root', join(dir, 'store-c'), writeContext(dir, 'missing-tag', { Dockerfile: `FROM ${registry.host}/base/busybox:nope\n` })]);
    expect(missingTag.code).toBe(1);
    expect(missingTag.stderr).toContain(`hoist: Dockerfile:1: image not found: ${registry.host}/base/busybox:nope (the registry said: MANIFEST_UNKNOWN`);
  });

  test('Basic auth: hoist login checks and saves the credentials, push uses them, logout removes them', async () => {
    const secured = await startRegistry({ basicAuth: { username: 'ci', password: 's3cret-pass' } });
    try {
      const root = join(dir, 'store-auth');
      hoistOk(['load', '--root', root, '-t', `${secured.host}/base/busybox:1`, `${busybox}:latest`]);
      const denied = hoist(['push', '--root', root, `${secured.host}/base/busybox:1`]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain(`401 no credentials for ${secured.host}`);
      // hoist login checks the password first, and saves it as docker login does.
      const dockerConfig = join(dir, 'docker-config');
      const env = { DOCKER_CONFIG: dockerConfig };
      const wrong = hoist(['login', '-u', 'ci', '--password-stdin', secured.host], { input: 'wrong\n', env });
      expect(wrong.code).toBe(1);
      expect(existsSync(join(dockerConfig, 'config.json'))).toBe(false);
      const login = hoistOk(['login', '-u', 'ci', '--password-stdin', secured.host], { input: 's3cret-pass\n', env });
      expect(login.stdout).toContain(`Login Succeeded (credentials for ${secured.host} saved in ${join(dockerConfig, 'config.json')})`);
      expect(statSync(join(dockerConfig, 'config.json')).mode & 0o777).toBe(0o600);
      expect(login.stdout + login.stderr).not.toContain('s3cret-pass');
      const pushed = hoistOk(['push', '--root', root, `${secured.host}/base/busybox:1`], { env });
      expect(pushed.stderr).toContain('(2 of 2 blobs uploaded)');
      expect(pushed.stderr + pushed.stdout).not.toContain('s3cret-pass');
      const copied = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--creds', 'ci:s3cret-pass', `docker://${secured.host}/base/busybox:1`], { encoding: 'utf8' });
      expect(JSON.parse(copied).Digest).toBe(pushed.stdout.trim());
      expect(hoistOk(['logout', secured.host], { env }).stdout).toBe(`Removing login credentials for ${secured.host}\n`);
      expect(hoist(['push', '--root', root, `${secured.host}/base/busybox:1`], { env }).code).toBe(1);

      // Docker's credential-helper protocol: credHelpers for one host, credsStore for all.
      const helperBin = join(dir, 'helper-bin');
      execFileSync('mkdir', ['-p', helperBin]);
      writeFileSync(join(helperBin, 'docker-credential-hoisttest'), [
        '#!/bin/sh', '[ "$1" = get ] || exit 1', 'read -r server',
        `[ "$server" = "${secured.host}" ] && echo '{"ServerURL":"${secured.host}","Username":"ci","Secret":"s3cret-pass"}' && exit 0`,
        'echo "credentials not found in native keychain"; exit 1', '',
      ].join('\n'), { mode: 0o755 });
      const helperEnv = { ...env, PATH: `${helperBin}:${process.env.PATH}` };
      for (const config of [{ credHelpers: { [secured.host]: 'hoisttest' } }, { credsStore: 'hoisttest' }]) {
        writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify(config));
        expect(hoistOk(['push', '--root', root, `${secured.host}/base/busybox:1`], { env: helperEnv }).stderr).toContain('(0 of 2 blobs uploaded)');
      }
    } finally {
      await secured.stop();
    }
  });

  test('token auth: the Bearer flow with the issuer the registry trusts, scoped per repository', async () => {
    const user = { username: 'builder', password: 'tok3n-pass' };
    const issuer = await startTokenIssuer(user);
    const secured = await startRegistry({ tokenAuth: issuer });
    try {
      const root = join(dir, 'store-token');
      hoistOk(['load', '--root', root, '-t', `${secured.host}/team/busybox:1`, `${busybox}:latest`]);
      // The issuer answers from this process: hoist must run without blocking it.
      const denied = await hoistAsync(['push', '--root', root, `${secured.host}/team/busybox:1`]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('401');
      const dockerConfig = join(dir, 'docker-config-token');
      execFileSync('mkdir', ['-p', dockerConfig]);
      writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [secured.host]: { username: user.username, password: user.password } } }));
      const env = { DOCKER_CONFIG: dockerConfig };
      const pushed = await hoistAsync(['push', '--root', root, `${secured.host}/team/busybox:1`], { env });
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(pushed.stderr).toContain('(2 of 2 blobs uploaded)');
      expect(issuer.requests).toContain('repository:team/busybox:pull,push');
      const pulled = await hoistAsync(['pull', '--root', join(dir, 'store-token-2'), `${secured.host}/team/busybox:1`], { env });
      expect(pulled.stdout).toBe(pushed.stdout);
    } finally {
      await secured.stop();
      await issuer.stop();
    }
  });

  test('TLS with a CA made by the test: refused without --tls-ca, verified with it', async () => {
    const secured = await startRegistry({ tls: true });
    try {
      const root = join(dir, 'store-tls');
      hoistOk(['load', '--root', root, '-t', `${secured.host}/tls/busybox:1`, `${busybox}:latest`]);
      // HTTPS comes first; without the CA the chain does not verify, and the plain-HTTP fallback
      // allowed for loopback hosts meets a TLS-only server.
      const untrusted = hoist(['push', '--root', root, `${secured.host}/tls/busybox:1`]);
      expect(untrusted.code).toBe(1);
      const pushed = hoistOk(['push', '--root', root, '--tls-ca', secured.ca!, `${secured.host}/tls/busybox:1`]);
      expect(pushed.stderr).toContain('(2 of 2 blobs uploaded)');
      // skopeo reads CAs as *.crt from a directory of their own.
      const certDir = join(dir, 'skopeo-certs');
      execFileSync('mkdir', ['-p', certDir]);
      execFileSync('cp', [secured.ca!, join(certDir, 'ca.crt')]);
      const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--cert-dir', certDir, `docker://${secured.host}/tls/busybox:1`], { encoding: 'utf8' }));
      expect(inspected.Digest).toBe(pushed.stdout.trim());
    } finally {
      await secured.stop();
    }
  });

  test('through a proxy that drops connections and answers 500, a push still completes and verifies', async () => {
    const proxy = await startFaultyProxy(registry.host, { dropEvery: 3, failEvery: 4 });
    try {
      const root = join(dir, 'store-faulty');
      hoistOk(['build', '--root', root, '-t', `${proxy.host}/faulty/app:1`, writeContext(dir, 'faulty', {
        Dockerfile: 'FROM scratch\nCOPY a b c /data/\n', a: 'a'.repeat(100_000), b: 'b', c: 'c',
      })]);
      const pushed = await hoistAsync(['push', '--root', root, `${proxy.host}/faulty/app:1`]);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(proxy.faults).toBeGreaterThan(2);
      expect(skopeoInspect(`${registry.host}/faulty/app:1`).Digest).toBe(pushed.stdout.trim());
      const pulled = await hoistAsync(['pull', '--root', join(dir, 'store-faulty-2'), `${proxy.host}/faulty/app:1`]);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.stdout).toBe(pushed.stdout);
    } finally {
      await proxy.stop();
    }
  });

  test('a blob whose bytes do not match its digest is refused, and nothing of it is kept', async () => {
    const proxy = await startFaultyProxy(registry.host, { corruptBlobs: true });
    try {
      const root = join(dir, 'store-corrupt');
      const pulled = await hoistAsync(['pull', '--root', root, `${proxy.host}/base/busybox:1`]);
      expect(pulled.code).toBe(1);
      expect(pulled.stderr).toContain('content does not match its digest');
      const blobs = readdirSync(join(root, 'blobs', 'sha256'));
      for (const blob of blobs) expect(createHash('sha256').update(readFileSync(join(root, 'blobs', 'sha256', blob))).digest('hex')).toBe(blob);
      expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  test('an index with two platforms resolves to the one asked for', async () => {
    const root = join(dir, 'store-multi');
    const ctx = writeContext(dir, 'multi', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'same file' });
    const digests: Record<string, { digest: string; size: number }> = {};
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const tag = `${registry.host}/multi/app:${platform.replace('/', '-')}`;
      hoistOk(['build', '--root', root, '--platform', platform, '-t', tag, '--push', '--provenance=false', ctx]);
      const raw = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${tag}`]);
      digests[platform] = { digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`, size: raw.length };
    }
    const index = {
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: Object.entries(digests).map(([platform, { digest, size }]) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size,
        platform: { os: platform.split('/')[0], architecture: platform.split('/')[1] },
      })),
    };
    const put = await fetch(`http://${registry.host}/v2/multi/app/manifests/both`, {
      method: 'PUT', headers: { 'content-type': index.mediaType }, body: JSON.stringify(index),
    });
    expect(put.status).toBe(201);
    for (const platform of ['linux/arm64', 'linux/amd64']) {
      const pulled = await hoistAsync(['pull', '--root', join(dir, `store-multi-${platform.replace('/', '-')}`), '--platform', platform, `${registry.host}/multi/app:both`]);
      expect(pulled.stdout.trim()).toBe(digests[platform]!.digest);
    }
    const missing = await hoistAsync(['pull', '--root', join(dir, 'store-multi-x'), '--platform', 'linux/s390x', `${registry.host}/multi/app:both`]);
    expect(missing.stderr).toContain('has no image for linux/s390x (it has linux/amd64, linux/arm64)');
  });

  test('a blob over 64 MiB goes up in PATCH chunks and lands whole', async () => {
    const root = join(dir, 'store-big');
    const ctx = writeContext(dir, 'big', { Dockerfile: 'FROM scratch\nCOPY big.bin /big.bin\n' });
    execFileSync('head', ['-c', String(70 * 1024 * 1024), '/dev/urandom'], { stdio: ['ignore', openSync(join(ctx, 'big.bin'), 'w'), 'ignore'] });
    const proxy = await startFaultyProxy(registry.host, {});
    try {
      hoistOk(['build', '--root', root, '-t', `${proxy.host}/big/app:1`, ctx]);
      const pushed = await hoistAsync(['push', '--root', root, `${proxy.host}/big/app:1`]);
      expect(pushed.code, pushed.stderr).toBe(0);
      // The 70 MiB layer (stored, it is random) goes up as two PATCHes and a closing PUT.
      expect(proxy.log.filter((line) => line.startsWith('PATCH '))).toHaveLength(2);
      const manifest = skopeoInspect(`${registry.host}/big/app:1`);
      expect(manifest.Digest).toBe(pushed.stdout.trim());
      const copied = join(dir, 'big-copy');
      execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/big/app:1`, `oci:${copied}:1`]);
      const layer = manifest.Layers[0] as string;
      expect(createHash('sha256').update(readFileSync(join(copied, 'blobs', 'sha256', layer.slice(7)))).digest('hex')).toBe(layer.slice(7));
    } finally {
      await proxy.stop();
    }
  });

  test('HTTP_PROXY carries the requests, NO_PROXY skips it', async () => {
    const forward = await startFaultyProxy(registry.host, {});
    try {
      const env = { HTTP_PROXY: `http://${forward.host}`, NO_PROXY: '' };
      const pulled = await hoistAsync(['pull', '--root', join(dir, 'store-proxied'), `${registry.host}/base/busybox:1`], { env });
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(forward.log.some((line) => line.startsWith(`GET http://${registry.host}/v2/base/busybox/manifests/1`))).toBe(true);
      const seen = forward.log.length;
      const direct = await hoistAsync(['pull', '--root', join(dir, 'store-unproxied'), `${registry.host}/base/busybox:1`], { env: { ...env, NO_PROXY: '127.0.0.1' } });
      expect(direct.code, direct.stderr).toBe(0);
      expect(forward.log.length).toBe(seen);
    } finally {
      await forward.stop();
    }
  });

  test('a redirect to another host (a CDN) gets no credentials', async () => {
    const cdn = await startFaultyProxy(registry.host, {});
    const user = { username: 'ci', password: 'front-pass' };
    const front = await startFaultyProxy(registry.host, { requireBasic: user, redirectBlobsTo: cdn.host });
    try {
      const dockerConfig = join(dir, 'docker-config-cdn');
      execFileSync('mkdir', ['-p', dockerConfig]);
      writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [front.host]: { username: user.username, password: user.password } } }));
      const pulled = await hoistAsync(['pull', '--root', join(dir, 'store-cdn'), `${front.host}/base/busybox:1`], { env: { DOCKER_CONFIG: dockerConfig } });
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(front.log.some((line) => line.includes('/manifests/') && line.endsWith('[authorization]'))).toBe(true);
      const blobFetches = cdn.log.filter((line) => line.includes('/blobs/'));
      expect(blobFetches.length).toBe(2);
      expect(blobFetches.filter((line) => line.endsWith('[authorization]'))).toEqual([]);
    } finally {
      await front.stop();
      await cdn.stop();
    }
  });
});
