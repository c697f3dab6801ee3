// Air-gapped delivery: several images in one OCI tarball, loaded into another store and built on
// with no registry at all; --build-context NAME=oci-layout:// in FROM and COPY --from; a push from
// a tarball into a site's own registry.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry } from '../support/registry.ts';

let dir: string;
let busyboxLayout: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-airgap-'));
  busyboxLayout = makeBusyboxLayout(join(dir, 'busybox'));
});
afterAll(() => removeTree(dir));

/** The manifests index.json lists in an OCI tarball. */
function tarIndex(tarball: string): { digest: string; annotations: Record<string, string> }[] {
  return JSON.parse(execFileSync('tar', ['-xOf', tarball, 'index.json'], { encoding: 'utf8' })).manifests;
}

describe('air-gapped delivery', () => {
  test('several images saved in one tarball on one store load into another and build with no registry', () => {
    const connected = join(dir, 'connected');
    hoistOk(['load', '--root', connected, '-t', 'busybox', `${busyboxLayout}:latest`]);
    hoistOk(['build', '--root', connected, '-t', 'site/base:1', writeContext(dir, 'base-ctx', { Dockerfile: 'FROM busybox\nRUN echo base > /base.txt\n' })]);
    hoistOk(['build', '--root', connected, '-t', 'site/tool:2', writeContext(dir, 'tool-ctx', { Dockerfile: 'FROM scratch\nCOPY tool /tool\n', tool: 'tool v2\n' })]);
    const bundle = join(dir, 'bundle.tar');
    hoistOk(['save', '--root', connected, '-o', bundle, 'site/base:1', 'site/tool:2']);
    expect(tarIndex(bundle).map((m) => m.annotations['io.containerd.image.name']).sort()).toEqual(['docker.io/site/base:1', 'docker.io/site/tool:2']);

    const isolated = join(dir, 'isolated');
    const loaded = hoistOk(['load', '--root', isolated, bundle]).stdout;
    expect(loaded).toContain('Loaded image: site/base:1');
    expect(loaded).toContain('Loaded image: site/tool:2');
    const out = join(dir, 'isolated-out');
    hoistOk(['build', '--root', isolated, '-o', `type=local,dest=${out}`, writeContext(dir, 'app-ctx', {
      Dockerfile: 'FROM site/base:1\nCOPY --from=site/tool:2 /tool /usr/bin/tool\nRUN cat /base.txt /usr/bin/tool > /both.txt\n',
    })]);
    expect(readFileSync(join(out, 'both.txt'), 'utf8')).toBe('base\ntool v2\n');

    // From a pipe, which cannot be read at offsets as a file can.
    const piped = execFileSync('sh', ['-c', 'cat "$1" | "$2" load --root "$3" /dev/stdin', 'sh', bundle, join(repoRoot, 'bin', 'hoist'), join(dir, 'piped')], { encoding: 'utf8' });
    expect(piped).toContain('Loaded image: site/tool:2');
    // From a socket, as a parent program's stdio often is: read as a descriptor, not reopened by its path.
    expect(hoistOk(['load', '--root', join(dir, 'socket'), '/dev/stdin'], { input: readFileSync(bundle) }).stdout).toContain('Loaded image: site/base:1');
  });

  test('--build-context with a layout, a tarball digest and a directory, in FROM and COPY --from', () => {
    const root = join(dir, 'layouts');
    const connected = join(dir, 'layouts-src');
    hoistOk(['load', '--root', connected, '-t', 'busybox', `${busyboxLayout}:latest`]);
    hoistOk(['build', '--root', connected, '-t', 'lib:1', writeContext(dir, 'lib-ctx', { Dockerfile: 'FROM scratch\nCOPY lib.txt /lib.txt\n', 'lib.txt': 'from the tarball\n' })]);
    const tarball = join(dir, 'lib.tar');
    hoistOk(['save', '--root', connected, '-o', tarball, 'lib:1']);
    const { digest } = tarIndex(tarball)[0]!;
    const sources = writeContext(dir, 'named-dir', { 'notes.txt': 'from a directory\n' });

    const out = join(dir, 'layouts-out');
    const built = hoistOk(['build', '--root', root, '-o', `type=local,dest=${out}`,
      '--build-context', `base=oci-layout://${busyboxLayout}:latest`,
      '--build-context', `lib=oci-layout://${tarball}@${digest}`,
      '--build-context', `notes=${sources}`,
      writeContext(dir, 'named-ctx', {
        Dockerfile: [
          'FROM base',
          'COPY --from=lib /lib.txt /lib.txt',
          'COPY --from=notes notes.txt /notes.txt',
          'COPY --from=base /bin/busybox /copied-busybox',
          'RUN cat /lib.txt /notes.txt > /all.txt',
        ].join('\n'),
      }),
    ]);
    expect(built.stderr).not.toContain('pulling');
    expect(readFileSync(join(out, 'all.txt'), 'utf8')).toBe('from the tarball\nfrom a directory\n');
    expect(readFileSync(join(out, 'copied-busybox')).equals(readFileSync(join(out, 'bin', 'busybox')))).toBe(true);

    const direct = join(dir, 'direct-out');
    hoistOk(['build', '--root', root, '-o', `type=local,dest=${direct}`, '--build-context', `busybox=oci-layout://${busyboxLayout}:latest`, writeContext(dir, 'direct-ctx', {
      Dockerfile: 'FROM busybox\nRUN echo direct > /direct.txt\n',
    })]);
    expect(readFileSync(join(direct, 'direct.txt'), 'utf8')).toBe('direct\n');

    const missing = hoist(['build', '--root', root, '--build-context', `base=oci-layout://${busyboxLayout}:nope`, writeContext(dir, 'missing-ctx', { Dockerfile: 'FROM base\n' })]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('has no image tagged "nope"');
  });

  test('an image of two platforms: pulled whole, saved, loaded, built for either platform and pushed whole', async () => {
    const registry = await startRegistry();
    try {
      const context = writeContext(dir, 'multi-ctx', { Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY f-$TARGETARCH /f\n', 'f-amd64': 'amd64\n', 'f-arm64': 'arm64\n' });
      const manifests = [];
      for (const platform of ['linux/amd64', 'linux/arm64']) {
        const tag = `${registry.host}/multi/app:${platform.replace('/', '-')}`;
        // Each tag an image manifest (no provenance), for the index made of them below.
        hoistOk(['build', '--root', join(dir, 'multi-build'), '--platform', platform, '-t', tag, '--push', '--provenance=false', context]);
        const raw = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${tag}`]);
        manifests.push({
          mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`, size: raw.length,
          platform: { os: 'linux', architecture: platform.split('/')[1] },
        });
      }
      const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
      const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
      const put = await fetch(`http://${registry.host}/v2/multi/app/manifests/both`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
      expect(put.status).toBe(201);

      const connected = join(dir, 'multi-connected');
      expect(hoistOk(['pull', '--root', connected, '--all-platforms', `${registry.host}/multi/app:both`]).stdout.trim()).toBe(indexDigest);
      const tarball = join(dir, 'multi.tar');
      hoistOk(['save', '--root', connected, '-o', tarball, `${registry.host}/multi/app:both`]);
      expect(tarIndex(tarball).map((m) => m.digest)).toEqual([indexDigest]);
      // skopeo copies every platform out of the tarball, checking every blob.
      execFileSync('skopeo', ['copy', '--quiet', '--all', `oci-archive:${tarball}:both`, `oci:${join(dir, 'multi-copy')}:both`]);
      expect(JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${join(dir, 'multi-copy')}:both`], { encoding: 'utf8' })).manifests).toHaveLength(2);

      const isolated = join(dir, 'multi-isolated');
      hoistOk(['load', '--root', isolated, tarball]);
      for (const arch of ['amd64', 'arm64']) {
        const out = join(dir, `multi-out-${arch}`);
        hoistOk(['build', '--root', isolated, '--platform', `linux/${arch}`, '-o', `type=local,dest=${out}`,
          writeContext(dir, `multi-child-${arch}`, { Dockerfile: `FROM ${registry.host}/multi/app:both\n` })]);
        expect(readFileSync(join(out, 'f'), 'utf8')).toBe(`${arch}\n`);
      }
      const pushed = hoistOk(['push', '--root', isolated, `${registry.host}/multi/app:both`, `${registry.host}/site/app:both`]);
      expect(pushed.stdout.trim()).toBe(indexDigest);
      const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/site/app:both`], { encoding: 'utf8' }));
      expect(raw.manifests.map((m: { digest: string }) => m.digest)).toEqual(manifests.map((m) => m.digest));
    } finally {
      await registry.stop();
    }
  });

  test('hoist push copies an image from a tarball into a registry, checked by skopeo', async () => {
    const registry = await startRegistry();
    try {
      const connected = join(dir, 'push-src');
      hoistOk(['build', '--root', connected, '-t', 'app:3', writeContext(dir, 'push-ctx', { Dockerfile: 'FROM scratch\nCOPY a /a\n', a: 'a\n' })]);
      const tarball = join(dir, 'app.tar');
      hoistOk(['save', '--root', connected, '-o', tarball, 'app:3']);
      const { digest } = tarIndex(tarball)[0]!;
      const pushed = hoistOk(['push', '--root', join(dir, 'push-site'), `oci-layout://${tarball}:3`, `${registry.host}/site/app:3`]);
      expect(pushed.stdout.trim()).toBe(digest);
      const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/site/app:3`], { encoding: 'utf8' }));
      expect(inspected.Digest).toBe(digest);
      expect(hoist(['push', '--root', join(dir, 'push-site'), `oci-layout://${tarball}`]).code).toBe(2);
    } finally {
      await registry.stop();
    }
  });
});
