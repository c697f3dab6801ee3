// Base images for tests and benchmarks as one-layer OCI image layouts, made with hoist's own
// layers/ code: busybox from the host's busybox-static, and a root file system tarball (such as
// mmdebstrap's Debian) wrapped as it is.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Readable } from 'node:stream';
import { DEFAULT_GZIP_LEVEL, gzipParallel } from '../../layers/compression.ts';
import { MediaTypes, Store, writeImage, writeLayer, type Layer, type LayerEntry } from '../../layers/index.ts';

/** Every date in these images: the epoch, so the same input always gives the same digests. */
const EPOCH = '1970-01-01T00:00:00Z';

/** The busybox applets the tests and benchmark Dockerfiles call, as symlinks in /bin. */
const APPLETS = [
  'sh', 'ls', 'cat', 'echo', 'mkdir', 'rm', 'cp', 'mv', 'id', 'touch', 'chmod', 'chown', 'ln', 'sleep', 'env', 'true', 'false',
  'wc', 'head', 'sha256sum', 'date',
];

/** The host's architecture by its OCI name: the binaries in these images are the host's. */
function ociArchitecture(): string {
  const names: Record<string, string> = { x64: 'amd64', ia32: '386', ppc64: 'ppc64le' };
  return names[process.arch] ?? process.arch;
}

function findOnPath(command: string, hint: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  throw new Error(`${command} is not on PATH (${hint})`);
}

/**
 * Writes an image of one layer to `dest` as an OCI image layout whose index.json names it by
 * `tag` alone (no repository, as `skopeo copy oci:DIR:TAG` expects).
 */
async function writeLayout(dest: string, tag: string, cmd: string[], createdBy: string, makeLayer: (store: Store) => Promise<Layer>, architecture = ociArchitecture()): Promise<string> {
  // hoist's store is itself an OCI image layout, plus a work directory removed at the end.
  const store = await Store.open(dest);
  const layer = await makeLayer(store);
  const image = await writeImage(store, {
    created: EPOCH,
    architecture,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: cmd },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [{ created: EPOCH, created_by: createdBy }],
  }, [layer]);
  await store.tag(tag, image.descriptor);
  await rm(join(dest, 'tmp'), { recursive: true, force: true });
  return dest;
}

/**
 * busybox as a one-layer image tagged `latest`: Debian's static busybox at /bin/busybox, the
 * applets as symlinks beside it, owned by root, dated the epoch; Cmd /bin/sh. The host's, or
 * `foreign`: another architecture's busybox binary (from `apt-get download busybox-static:ARCH`).
 */
export async function busyboxLayout(dest: string, foreign?: { binary: string; architecture: string }): Promise<string> {
  // It must be the static build: the image has no C library.
  const busybox = foreign?.binary ?? findOnPath('busybox', 'on Debian: apt-get install busybox-static');
  const { mode, size } = statSync(busybox);
  const owner = { uid: 0, gid: 0, mtime: 0 };
  const entries: LayerEntry[] = [
    { ...owner, path: 'bin', type: 'directory', mode: 0o755 },
    { ...owner, path: 'bin/busybox', type: 'file', mode: mode & 0o7777, size, source: busybox },
    ...APPLETS.map((applet): LayerEntry => ({ ...owner, path: `bin/${applet}`, type: 'symlink', mode: 0o777, linkname: 'busybox' })),
  ];
  return writeLayout(dest, 'latest', ['/bin/sh'], 'busybox-static, applets as symlinks in /bin', (store) => writeLayer(store, entries), foreign?.architecture);
}

/**
 * A root file system tarball as a one-layer image tagged `tag`. The tar goes into the layer byte
 * for byte (only gzipped), so nothing in it (xattrs, hardlinks, owners) is reinterpreted.
 */
export async function tarballLayout(tarball: string, dest: string, tag: string, cmd: string[] = ['bash']): Promise<string> {
  return writeLayout(dest, tag, cmd, 'root file system tarball (test/support/oci-layouts.ts)', async (store) => {
    const diffId = createHash('sha256');
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const chunk of createReadStream(tarball)) {
        diffId.update(chunk as Buffer);
        yield chunk as Buffer;
      }
    }
    const { digest, size } = await store.writeBlob(Readable.from(gzipParallel(hashed(), DEFAULT_GZIP_LEVEL)));
    return { mediaType: MediaTypes.ociLayerGzip, digest, size, diffId: `sha256:${diffId.digest('hex')}` };
  });
}

/**
 * Debian bookworm minbase, made by mmdebstrap from Debian's mirror, as a one-layer image tagged
 * `bookworm`; its tarball is kept beside `dest`.
 */
export async function debianLayout(dest: string): Promise<string> {
  const tarball = `${dest}.tar`;
  execFileSync('mmdebstrap', ['--quiet', '--variant=minbase', '--skip=output/dev', 'bookworm', tarball], { stdio: 'pipe', env: { ...process.env, SOURCE_DATE_EPOCH: '1747699200' } });
  return tarballLayout(tarball, dest, 'bookworm');
}
