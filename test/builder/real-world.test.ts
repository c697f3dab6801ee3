// Shapes from real Dockerfiles where hoist once differed from BuildKit: parents that keep their
// owner and mode in later steps, several sources into `.`, --chown by name, RUN --mount details.
// Each layer is judged against rootless buildah where buildah follows BuildKit.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { Buildah, layerRows, layoutLayers, type Row } from '../support/layers.ts';

let dir: string;
let busybox: string;
beforeAll(() => {
  // Lowercase: buildah names an image it reads from `oci:PATH` after the path.
  dir = join(tmpdir(), `hoist-real-world-${randomUUID()}`);
  mkdirSync(dir);
  busybox = makeBusyboxLayout(join(dir, 'busybox'));
});
afterAll(() => removeTree(dir));

/** The rows of each layer above the base, built by hoist and by buildah from the same Dockerfile (`FROM $BASE`). */
async function bothBuilders(name: string, files: Record<string, string>): Promise<{ hoist: Row[][]; buildah: Row[][]; log: string }> {
  const context = writeContext(dir, name, files);
  const out = join(dir, `${name}-hoist`);
  const built = hoistOk(['build', '--root', join(dir, 'store'), '--build-arg', 'BASE=base', '--build-context', `base=oci-layout://${busybox}:latest`, '-o', `type=oci,dest=${out},tar=false`, context]);
  const buildah = await Buildah.start();
  try {
    const rows = (layers: string[]): Promise<Row[][]> => Promise.all(layers.slice(1).map(layerRows));
    const judged = await buildah.build(name, context, files.Dockerfile!, ['--build-arg', `BASE=oci:${busybox}:latest`]);
    return { hoist: await rows(await layoutLayers(out)), buildah: withoutMountPoints(await rows(judged)), log: built.stderr };
  } finally {
    await buildah.remove();
  }
}

// buildah keeps rows in the order it walks; hoist sorts. Rows are compared as sets per layer.
const sorted = (layers: Row[][]): Row[][] => layers.map((rows) => [...rows].sort());

/**
 * buildah 1.28 leaves the mount points of its RUN steps in their layers (empty /dev, /proc, /sys,
 * /run and /etc/hostname, hosts, resolv.conf, and /etc for them); BuildKit's layers hold none.
 */
const MOUNT_POINT = /^(dev|proc|sys|run) directory |^etc\/(hostname|hosts|resolv\.conf) file /;
function withoutMountPoints(layers: Row[][]): Row[][] {
  return layers.map((rows) => {
    const kept = rows.filter((row) => !MOUNT_POINT.test(row));
    return kept.length < rows.length && !kept.some((row) => row.startsWith('etc/')) ? kept.filter((row) => !row.startsWith('etc directory ')) : kept;
  });
}

describe('as BuildKit, judged by buildah', () => {
  test('a parent directory keeps the owner and mode an earlier step gave it, in later steps and their layers (jupyter shape)', async () => {
    const { hoist: ours, buildah } = await bothBuilders('parents', {
      Dockerfile: [
        'ARG BASE', 'FROM $BASE',
        'RUN mkdir -p /opt/conda && chown 1000:100 /opt/conda && chmod 6775 /opt/conda',
        'COPY --chown=1000:100 initial-condarc /opt/conda/.condarc',
        'USER 1000',
        'RUN mkdir /opt/conda/bin && touch /opt/conda/bin/tool',
        'USER 0',
        'RUN touch /opt/conda/by-root',
      ].join('\n'),
      'initial-condarc': 'channels: [conda-forge]\n',
    });
    expect(ours[2]).toContain('opt/conda directory 6775 1000:100');
    expect(ours[3]).toContain('opt/conda directory 6775 1000:100');
    expect(sorted(ours)).toEqual(sorted(buildah));
  });

  test('several sources into `.`, into an existing directory, and a glob of several', async () => {
    const { hoist: ours, buildah } = await bothBuilders('sources', {
      Dockerfile: [
        // BuildKit's WORKDIR makes a layer with a directory it creates; buildah makes none.
        'ARG BASE', 'FROM $BASE', 'RUN mkdir /app', 'WORKDIR /app',
        'COPY Cargo.toml Cargo.lock .',
        'COPY Cargo.toml Cargo.lock /app',
        'COPY *.toml *.lock ./',
      ].join('\n'),
      'Cargo.toml': '[package]\n', 'Cargo.lock': '# lock\n',
    });
    expect(ours[1]).toEqual(expect.arrayContaining(['app/Cargo.toml file 644 0:0', 'app/Cargo.lock file 644 0:0']));
    expect(sorted(ours)).toEqual(sorted(buildah));
  });

  test('--chown with a user name alone takes the primary group from the image\'s /etc/passwd; a number alone keeps gid = uid', async () => {
    const { hoist: ours, buildah } = await bothBuilders('chown', {
      Dockerfile: [
        'ARG BASE', 'FROM $BASE',
        'RUN echo "app:x:1234:4321::/home/app:/bin/sh" >> /etc/passwd && echo "apps:x:4321:" >> /etc/group && echo "team:x:777:" >> /etc/group',
        'COPY --chown=app f /by-name',
        'COPY --chown=55 f /by-number',
        'COPY --chown=app:team f /by-names',
        'ADD --chown=app f /added',
      ].join('\n'),
      f: 'x\n',
    });
    expect(ours.slice(1).map((rows) => rows.at(-1))).toEqual(['by-name file 644 1234:4321', 'by-number file 644 55:55', 'by-names file 644 1234:777', 'added file 644 1234:4321']);
    expect(sorted(ours)).toEqual(sorted(buildah));
  });
});

test('WORKDIR into a directory an earlier step owns: its layer keeps the parents as they are, and a later step of that user writes there', async () => {
  const context = writeContext(dir, 'workdir', {
    Dockerfile: [
      'FROM base',
      'RUN mkdir -p /opt/conda && chown 1000:100 /opt/conda && chmod 2775 /opt/conda',
      'WORKDIR /opt/conda/envs',
      'USER 1000',
      'RUN touch /opt/conda/by-user',
    ].join('\n'),
  });
  const out = join(dir, 'workdir-hoist');
  hoistOk(['build', '--root', join(dir, 'store'), '--build-context', `base=oci-layout://${busybox}:latest`, '-o', `type=oci,dest=${out},tar=false`, context]);
  const layers = await Promise.all((await layoutLayers(out)).slice(1).map(layerRows));
  // BuildKit's WORKDIR makes the directory in a layer of its own, an overlay's copy-up of its parents with it.
  expect(layers[1]).toEqual(['opt directory 755 0:0', 'opt/conda directory 2775 1000:100', 'opt/conda/envs directory 755 0:0']);
  expect(layers[2]).toEqual(['opt directory 755 0:0', 'opt/conda directory 2775 1000:100', 'opt/conda/by-user file 644 1000:100']);
});

describe('RUN --mount as in uv\'s Dockerfile', () => {
  test('a relative target is under the working directory; options are expanded; one cache id serves two targets', () => {
    const context = writeContext(dir, 'mounts', {
      Dockerfile: [
        'FROM base', 'ENV CARGO_HOME=/cargo', 'ARG CACHE=registry', 'WORKDIR /src',
        'RUN --mount=type=cache,target=${CARGO_HOME}/${CACHE},id=cargo-${CACHE} echo one > ${CARGO_HOME}/registry/first',
        'RUN --mount=type=cache,target=/elsewhere,id=cargo-registry cat /elsewhere/first > /seen-by-second',
        'RUN --mount=type=cache,target=rel,sharing=locked test -d /src/rel && touch /src/rel/mark && ! test -e /src/rel-is-not-a-layer',
        'RUN test ! -e /src/rel/mark && test ! -e /cargo/registry/first && cat /seen-by-second',
      ].join('\n'),
    });
    const run = hoistOk(['build', '--root', join(dir, 'mounts-store'), '--build-context', `base=oci-layout://${busybox}:latest`, '--no-cache', context]);
    expect(run.stderr).toMatch(/\] one\n/);
  });

  test('sharing=locked makes two parallel stages take turns with one cache; shared lets them in together', () => {
    const other = { a: 'b', b: 'a' };
    const body = {
      // mkdir is atomic: a second step inside the mount at the same time finds the directory there.
      locked: (stage: 'a' | 'b'): string => `if mkdir /c/busy; then sleep 2; rmdir /c/busy; echo ${stage} alone; else echo ${stage} together; fi`,
      // Each step marks its arrival, then waits for the other's mark (a minute at most, so that one
      // left alone ends): they meet only if the mount lets them in together, however slow the machine.
      shared: (stage: 'a' | 'b'): string => `touch /c/${stage}; i=0; while [ ! -e /c/${other[stage]} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; `
        + `if [ -e /c/${other[stage]} ]; then echo ${stage} together; else echo ${stage} alone; fi`,
    };
    const step = (sharing: 'locked' | 'shared', stage: 'a' | 'b'): string => [
      `FROM base AS ${stage}`,
      `RUN --mount=type=cache,id=turns-${sharing},target=/c,sharing=${sharing} ${body[sharing](stage)}; touch /done`,
    ].join('\n');
    const dockerfile = (sharing: 'locked' | 'shared'): string => [
      step(sharing, 'a'), step(sharing, 'b'), 'FROM base', 'COPY --from=a /done /a', 'COPY --from=b /done /b',
    ].join('\n');
    const locked = hoistOk(['build', '--root', join(dir, 'locked-store'), '--build-context', `base=oci-layout://${busybox}:latest`, '--no-cache', writeContext(dir, 'locked', { Dockerfile: dockerfile('locked') })]);
    expect(locked.stderr).toMatch(/a alone/);
    expect(locked.stderr).toMatch(/b alone/);
    const shared = hoist(['build', '--root', join(dir, 'shared-store'), '--build-context', `base=oci-layout://${busybox}:latest`, '--no-cache', writeContext(dir, 'shared', { Dockerfile: dockerfile('shared') })]);
    expect(shared.code, shared.stderr).toBe(0);
    expect(shared.stderr).toMatch(/a together/);
    expect(shared.stderr).toMatch(/b together/);
  });
});
