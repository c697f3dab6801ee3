// Issue 12: hoist and rootless buildah build the same Dockerfiles, in the shapes well-known
// projects use, FROM the same local Debian bookworm (mmdebstrap), and must make the same image:
// the same container config and the same flattened filesystem (every layer applied, whiteouts and
// all), path by path: type, mode with the set-id and sticky bits, owner, size, symlink target and
// the sha256 of each file's content. mtimes are not compared: every build stamps its own.
// Where buildah 1.28 (Debian 12's) is known to differ from BuildKit, a named exception gives
// buildah's value for that row only. The Dockerfiles are written for this test, in the shapes of
// official images and of Docker's documentation; at most two run apt-get, the slow part.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { describeRow, flatten, readLayer, type Row } from '../support/flatten.ts';
import { hoistAsync, hoistOk, removeTree, writeContext } from '../support/hoist.ts';
import { Buildah } from '../support/layers.ts';
import { tarballLayout } from '../support/oci-layouts.ts';

const execFileAsync = promisify(execFile);
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

let base: string; // mmdebstrap's tarball and its OCI layout
let hoistDir: string; // hoist's store and the build contexts
let buildah: Buildah;

beforeAll(async () => {
  // buildah names an image pulled from `oci:DIR` after DIR, which must then be lowercase.
  base = join(tmpdir(), `hoist-differential-base-${randomBytes(6).toString('hex')}`);
  mkdirSync(base);
  hoistDir = mkdtempSync(join(tmpdir(), 'hoist-differential-'));
  buildah = await Buildah.start();
  const tarball = join(base, 'bookworm.tar');
  const env = { ...process.env, SOURCE_DATE_EPOCH: '1747699200' };
  await execFileAsync('mmdebstrap', ['--quiet', '--variant=minbase', '--skip=output/dev', 'bookworm', tarball], { env });
  await tarballLayout(tarball, join(base, 'oci'), 'bookworm');
  rmSync(tarball);
  hoistOk(['load', '--root', join(hoistDir, 'store'), '-t', 'debian:bookworm', `${join(base, 'oci')}:bookworm`]);
  const pulled = await buildah.run(['pull', '--quiet', `oci:${join(base, 'oci')}:bookworm`]);
  await buildah.run(['tag', pulled.trim(), 'docker.io/library/debian:bookworm']);
}, 300_000);

afterAll(async () => {
  const removals = await Promise.allSettled([
    (async () => hoistDir && removeTree(hoistDir))(),
    (async () => buildah && buildah.remove())(),
    (async () => base && rmSync(base, { recursive: true, force: true }))(),
  ]);
  for (const removal of removals) if (removal.status === 'rejected') throw removal.reason;
}, 120_000);

// --- the two builders ---------------------------------------------------------------------------

/** The parts of an image config that a Dockerfile decides. */
interface Settings {
  os?: string;
  architecture?: string;
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Shell?: string[];
}
const SETTINGS = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'StopSignal', 'Shell'] as const;

interface Built {
  settings: Settings;
  layers: string[];
}

/** null, "", [] and {} all mean "not set" (buildah writes the empty ones, hoist leaves them out). */
const isEmpty = (value: unknown): boolean => value === null || value === undefined || value === ''
  || (Array.isArray(value) && value.length === 0) || (typeof value === 'object' && Object.keys(value as object).length === 0);

function settingsOf(image: { os?: string; architecture?: string; config?: Record<string, unknown> }): Settings {
  const settings: Record<string, unknown> = { os: image.os, architecture: image.architecture };
  for (const key of SETTINGS) {
    let value = image.config?.[key];
    if (key === 'Labels' && value) value = Object.fromEntries(Object.entries(value).filter(([name]) => name !== 'io.buildah.version'));
    if (!isEmpty(value)) settings[key] = value;
  }
  return settings as Settings;
}

async function buildWithHoist(name: string, context: string): Promise<Built> {
  const store = join(hoistDir, 'store');
  const run = await hoistAsync(['build', '--root', store, '--progress', 'plain', '-t', name, context]);
  if (run.code !== 0) throw new Error(`hoist build ${name} exited ${run.code}:\n${run.stderr.split('\n').slice(-30).join('\n')}`);
  const inspected = JSON.parse(hoistOk(['inspect', '--root', store, name]).stdout);
  return {
    settings: settingsOf(inspected.Config),
    layers: inspected.Manifest.layers.map((layer: { digest: string }) => join(store, 'blobs', 'sha256', layer.digest.slice(7))),
  };
}

async function buildWithBuildah(name: string, context: string, dockerfile: string): Promise<Built> {
  const layers = await buildah.build(name, context, dockerfile, ['--pull=never']);
  const inspected = JSON.parse(await buildah.run(['inspect', '--type', 'image', name]));
  return { settings: settingsOf(inspected.Docker), layers };
}

// --- comparing ----------------------------------------------------------------------------------

/** Layer blobs are read once: the base layer is in every image. */
const layerCache = new Map<string, ReturnType<typeof readLayer>>();
async function filesystemOf(built: Built): Promise<Map<string, Row>> {
  const layers = [];
  for (const layer of built.layers) {
    if (!layerCache.has(layer)) layerCache.set(layer, readLayer(layer));
    layers.push(await layerCache.get(layer)!);
  }
  return flatten(layers);
}

/**
 * Files whose content differs on every build of either builder (their type, mode and owner are
 * still compared). Found by building each Dockerfile twice with each builder: nothing else did.
 */
const VOLATILE: { path: string | RegExp; reason: string }[] = [
  { path: 'var/log/dpkg.log', reason: 'dpkg logs every action with the time' },
  { path: /^var\/log\/apt\/(history|term)\.log$/, reason: 'apt logs each run with its start and end times' },
  { path: 'var/log/alternatives.log', reason: 'update-alternatives logs with the time' },
  { path: /^var\/cache\/apt\/(src)?pkgcache\.bin$/, reason: 'apt\'s binary caches record the mtimes of the package lists, fetched during the build' },
  { path: 'var/cache/ldconfig/aux-cache', reason: 'ldconfig records each library\'s inode number and ctime, which belong to the builder\'s own unpacked copy of the base' },
];

const isVolatile = (path: string): boolean => VOLATILE.some((rule) => (typeof rule.path === 'string' ? rule.path === path : rule.path.test(path)));

/** JSON with objects' keys sorted: the order of labels or ports means nothing, that of Env or Cmd does. */
const canonical = (value: unknown): string => JSON.stringify(value, (_key, v) => (
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v
));

function compareSettings(ours: Settings, theirs: Settings, exceptions: Settings): string[] {
  const differences: string[] = [];
  for (const key of ['os', 'architecture', ...SETTINGS] as const) {
    const [hoistValue, buildahValue] = [canonical(ours[key]), canonical(theirs[key])];
    const expected = key in exceptions ? canonical(exceptions[key]) : hoistValue;
    if (expected !== buildahValue) differences.push(`config ${key}: hoist ${hoistValue}${key in exceptions ? ' (buildah\'s known value: ' + expected + ')' : ''} vs buildah ${buildahValue}`);
  }
  return differences;
}

/**
 * buildah's value for a row where buildah 1.28 is known to differ from BuildKit; `absent` if it
 * has no such path. Keyed by path without the leading `/`; `dir/**` is dir and all below it.
 */
type Exception = Partial<Row> | 'absent';

function exceptionFor(exceptions: Record<string, Exception>, path: string): Exception | undefined {
  if (path in exceptions) return exceptions[path];
  for (const [key, exception] of Object.entries(exceptions)) {
    if (key.endsWith('/**') && (path === key.slice(0, -3) || path.startsWith(key.slice(0, -2)))) return exception;
  }
  return undefined;
}

function compareFilesystems(ours: Map<string, Row>, theirs: Map<string, Row>, exceptions: Record<string, Exception>): string[] {
  const differences: string[] = [];
  const paths = [...new Set([...ours.keys(), ...theirs.keys()])].sort();
  for (const path of paths) {
    const exception = exceptionFor(exceptions, path);
    let expected = ours.get(path);
    if (exception === 'absent') expected = undefined;
    else if (exception) expected = { ...expected, ...exception } as Row;
    let actual = theirs.get(path);
    if (isVolatile(path)) {
      const withoutContent = (row?: Row): Row | undefined => (row ? { ...row, size: 0, sha256: row.type === 'file' ? '(volatile)' : undefined } : row);
      expected = withoutContent(expected);
      actual = withoutContent(actual);
    }
    const [hoistRow, buildahRow] = [describeRow(expected), describeRow(actual)];
    if (hoistRow !== buildahRow) differences.push(`/${path}: hoist ${describeRow(ours.get(path))}${exception ? ' (with buildah\'s known difference applied)' : ''} vs buildah ${buildahRow}`);
  }
  return differences;
}

/**
 * BuildKit's heredoc RUNs for buildah 1.28, which predates them: a plain heredoc is the shell's
 * command (`SHELL ... -c BODY`), one with a `#!` line is run by that interpreter (BuildKit runs it
 * as a file). Written in RUN's JSON form, so the body reaches the shell unchanged.
 */
function withoutHeredocs(dockerfile: string): string {
  const lines = dockerfile.split('\n');
  const out: string[] = [];
  let shell = ['/bin/sh', '-c'];
  for (let i = 0; i < lines.length; i++) {
    const shellForm = /^SHELL\s+(\[.*\])$/.exec(lines[i]!);
    if (shellForm) shell = JSON.parse(shellForm[1]!);
    // A RUN, its flags on continued lines, and `<<NAME` at the end of its last line.
    let end = i;
    while (lines[end]!.endsWith('\\') && end + 1 < lines.length) end++;
    const instruction = lines.slice(i, end + 1).map((line) => line.replace(/\\$/, '').trim()).join(' ');
    const heredoc = /^RUN((?:\s+--\S+)*)\s+<<(\w+)$/.exec(instruction);
    if (!heredoc) {
      out.push(lines[i]!);
      continue;
    }
    const body: string[] = [];
    for (i = end + 1; lines[i] !== heredoc[2]; i++) body.push(lines[i]!);
    const script = `${body.join('\n')}\n`;
    const interpreter = /^#!\s*(.+)/.exec(body[0]!)?.[1]!.trim().split(/\s+/);
    out.push(`RUN${heredoc[1]} ${JSON.stringify(interpreter ? [...interpreter, '-c', script] : [...shell, script])}`);
  }
  return out.join('\n');
}

interface Case {
  name: string;
  dockerfile: string[];
  files?: Record<string, string>;
  /** buildah's rows where buildah 1.28 differs from BuildKit. */
  exceptions?: Record<string, Exception>;
  /** buildah's config values where buildah 1.28 differs from BuildKit. */
  settingsExceptions?: Settings;
}

/** Builds with both and fails with every difference; returns hoist's image, for checks of its own. */
async function buildAndCompare(example: Case): Promise<{ settings: Settings; files: Map<string, Row> }> {
  const dockerfile = `${example.dockerfile.join('\n')}\n`;
  const context = writeContext(hoistDir, example.name, { Dockerfile: dockerfile, ...example.files });
  // Both at once; each is mostly waiting on the mirror or the disk. allSettled, so that neither
  // is still writing when afterAll removes the directories.
  const [hoistResult, buildahResult] = await Promise.allSettled([
    buildWithHoist(example.name, context),
    buildWithBuildah(example.name, context, withoutHeredocs(dockerfile)),
  ]);
  if (hoistResult.status === 'rejected') throw hoistResult.reason;
  if (buildahResult.status === 'rejected') throw buildahResult.reason;
  const [ours, theirs] = [hoistResult.value, buildahResult.value];
  const files = await filesystemOf(ours);
  const differences = [
    ...compareSettings(ours.settings, theirs.settings, example.settingsExceptions ?? {}),
    ...compareFilesystems(files, await filesystemOf(theirs), example.exceptions ?? {}),
  ];
  expect(differences.join('\n')).toBe('');
  return { settings: ours.settings, files };
}

// --- the Dockerfiles ----------------------------------------------------------------------------

/**
 * Mount points a RUN's layer keeps in buildah and not in hoist: the empty file buildah bind-mounts
 * /etc/hosts on (containers/buildah#4242; BuildKit removes such stubs), and /dev, which the base
 * lacks (mmdebstrap --skip=output/dev) and runc makes as a mount point. BuildKit leaves /dev too
 * (its stub cleaner removes only /etc/hosts, /etc/resolv.conf and --mount targets;
 * moby/buildkit#3455), an artifact of its runtime rather than a rule: hoist's mount points live
 * in a lower directory of their own and never reach a layer.
 */
const RUN_MOUNT_STUBS: Record<string, Exception> = {
  'etc/hosts': { type: 'file', mode: 0o755, uid: 0, gid: 0, size: 0, sha256: EMPTY_SHA256 },
  dev: { type: 'directory', mode: 0o755, uid: 0, gid: 0 },
};

describe('hoist and buildah make the same image', () => {
  test('a system account, apt-get install then purge with --auto-remove, old-style ENV, a 3777 run directory', async () => {
    await buildAndCompare({
      name: 'keeper',
      dockerfile: [
        'FROM debian:bookworm',
        '# The account first, as the database images do, so that its ids never depend on what apt adds.',
        'RUN groupadd --system --gid 999 keeper \\',
        ' && useradd --system --gid keeper --home-dir /var/lib/keeper --no-create-home keeper',
        'ENV KEEPER_VERSION 2.4.1',
        'ENV KEEPER_HOME /var/lib/keeper',
        'RUN set -eux; \\',
        '\tsavedAptMark="$(apt-mark showmanual)"; \\',
        '\tapt-get update; \\',
        '\tapt-get install -y --no-install-recommends bzip2 procps netbase; \\',
        '# the build-time tools are used once, as a source build would',
        '\techo "keeper $KEEPER_VERSION" | bzip2 -9 > /usr/local/share/keeper.bz2; \\',
        '\tpgrep --version > /usr/local/share/keeper.pgrep; \\',
        '\t\\',
        '\tapt-mark auto \'.*\' > /dev/null; \\',
        '\tapt-mark manual $savedAptMark netbase > /dev/null; \\',
        '\tapt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \\',
        '\trm -rf /var/lib/apt/lists/*; \\',
        '# (bzip2 stays: tar suggests it, and apt keeps what is suggested)',
        '\t! [ -e /usr/bin/pgrep ]',
        'RUN mkdir -p "$KEEPER_HOME" /var/run/keeper \\',
        '  && chown -R keeper:keeper "$KEEPER_HOME" /var/run/keeper \\',
        '  # the socket directory: anyone may create, only owners may delete',
        '  && chmod 3777 /var/run/keeper',
        'VOLUME /var/lib/keeper',
        'WORKDIR /var/lib/keeper',
        'USER keeper',
        'EXPOSE 6380',
        'STOPSIGNAL SIGINT',
        'CMD ["keeper-server", "--port", "6380"]',
      ],
      exceptions: RUN_MOUNT_STUBS,
    });
  }, 600_000);

  test('cache mounts for apt, heredoc RUNs (plain and #!/bin/bash), SHELL with pipefail', async () => {
    const { settings } = await buildAndCompare({
      name: 'cached',
      dockerfile: [
        'FROM debian:bookworm',
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        'RUN rm -f /etc/apt/apt.conf.d/docker-clean; \\',
        '    echo \'Binary::apt::APT::Keep-Downloaded-Packages "true";\' > /etc/apt/apt.conf.d/keep-cache',
        'RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\',
        '    --mount=type=cache,target=/var/lib/apt,sharing=locked <<EOF',
        'apt-get update',
        'apt-get install -y --no-install-recommends xz-utils',
        'EOF',
        'RUN <<EOF',
        '#!/bin/bash',
        'set -euo pipefail',
        'mkdir -p /srv/report',
        'xz --version | head -n 1 > /srv/report/xz.txt',
        'dpkg-query -W -f \'${Package}\\n\' | sort | sha256sum | cut -d" " -f1 > /srv/report/packages.sum',
        'EOF',
        'RUN dpkg-query -W xz-utils | cut -f1 > /srv/report/installed && ls /usr/bin | grep -c xz > /srv/report/xz-tools',
        'CMD xz --version',
      ],
      exceptions: {
        ...RUN_MOUNT_STUBS,
        // buildah 1.28 deletes a cache mount's target from the image (a whiteout in the RUN's
        // layer); BuildKit leaves the directory the base image has, untouched.
        'var/cache/apt/**': 'absent',
        'var/lib/apt/**': 'absent',
      },
      // imagebuilder (buildah 1.28) makes a shell-form CMD with /bin/sh -c; BuildKit uses SHELL.
      settingsExceptions: { Cmd: ['/bin/sh', '-c', 'xz --version'] },
    });
    expect(settings.Cmd).toEqual(['/bin/bash', '-o', 'pipefail', '-c', 'xz --version']);
  }, 600_000);

  test('a system user and group, setuid and setgid files, a setgid directory that user writes into', async () => {
    await buildAndCompare({
      name: 'setid',
      files: { motd: 'welcome\n' },
      dockerfile: [
        'FROM debian:bookworm',
        'RUN groupadd --system --gid 901 crew \\',
        ' && useradd --system --uid 901 --gid crew --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin crew \\',
        ' && groupadd --system --gid 902 uploads \\',
        ' && usermod --append --groups uploads crew',
        'RUN cp /usr/bin/id /usr/local/bin/id-setuid && chmod 4755 /usr/local/bin/id-setuid \\',
        ' && cp /usr/bin/id /usr/local/bin/id-setgid && chgrp uploads /usr/local/bin/id-setgid && chmod 2755 /usr/local/bin/id-setgid \\',
        ' && mkdir -p /srv/uploads /srv/drop \\',
        ' && chown crew:uploads /srv/uploads && chmod 2775 /srv/uploads \\',
        ' && chmod 1777 /srv/drop \\',
        ' && install -d -m 0750 -o crew -g crew /srv/private',
        'USER crew',
        'RUN mkdir /srv/uploads/batch-1 && echo report > /srv/uploads/batch-1/report.txt \\',
        ' && touch /srv/uploads/top.txt && echo note > /srv/drop/note && echo secret > /srv/private/key',
        'USER root',
        '# A later step as root writes into the setgid directory: the directory keeps its owner and mode.',
        'RUN echo from-root > /srv/uploads/root.txt',
        'COPY --chown=crew motd /srv/uploads/motd',
        'COPY --chown=crew:uploads motd /srv/private/',
        '# Directories COPY makes inside the setgid directory: 0755 0:0 in hoist and buildah. (BuildKit',
        '# mkdirs them without a chown, so they would keep the group, and under buildkitd\'s umask 0 the',
        '# set-gid bit, that mkdir(2) gives them there.)',
        'COPY motd /srv/uploads/incoming/today/',
        'USER crew:uploads',
        'CMD ["/usr/local/bin/id-setuid"]',
      ],
      exceptions: RUN_MOUNT_STUBS,
    });
  }, 600_000);

  test('COPY --from a stage through a symlinked directory, COPY of two files to `.`', async () => {
    await buildAndCompare({
      name: 'symlinked',
      files: { 'tool.sh': '#!/bin/sh\necho "tool $*"\n', VERSION: '1.0.0\n' },
      dockerfile: [
        'FROM debian:bookworm AS build',
        'WORKDIR /src',
        'COPY tool.sh VERSION ./',
        'RUN mkdir -p /opt/v1/bin /opt/v1/share/doc \\',
        ' && install -m 0755 tool.sh /opt/v1/bin/tool \\',
        ' && ln -s tool /opt/v1/bin/tool-alias \\',
        ' && cp VERSION /opt/v1/share/doc/ && chmod 0700 /opt/v1/share \\',
        ' && ln -s v1 /opt/current \\',
        ' && ln -s /opt/v1 /opt/absolute',
        '',
        'FROM debian:bookworm',
        'COPY --from=build /opt/current/ /app/',
        'COPY --from=build /opt/current/bin/tool /usr/local/bin/',
        'COPY --from=build /opt/absolute/bin/tool-alias /usr/local/bin/',
        'COPY --from=build /opt/current /opt/release',
        'WORKDIR /app',
        'COPY VERSION tool.sh ./',
        'ENTRYPOINT ["/usr/local/bin/tool"]',
        'CMD ["--version"]',
      ],
    });
  }, 600_000);

  test('ENV in both forms, LABEL, EXPOSE, WORKDIR, comments in a continued RUN, a shell-form ENTRYPOINT', async () => {
    const { settings } = await buildAndCompare({
      name: 'settings',
      dockerfile: [
        'FROM debian:bookworm',
        'ENV LANG C.UTF-8',
        'ENV TZ Etc/UTC',
        'ENV SITE_HOME=/opt/site SITE_TITLE="two words" EMPTY=',
        'ENV PATH=$SITE_HOME/bin:$PATH',
        'LABEL org.opencontainers.image.title="Site" \\',
        '      org.opencontainers.image.description="a \\"quoted\\" word" \\',
        '      com.example.multi="one two"',
        'LABEL version=1.0',
        'EXPOSE 8080 8443/tcp 5353/udp',
        'WORKDIR $SITE_HOME',
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        'RUN mkdir bin \\',
        '# the title with dashes, for a file name',
        '    && echo "$SITE_TITLE" | tr " " "-" > title.txt \\',
        '    # an indented comment',
        '    && printf \'#!/bin/sh\\necho "$@"\\n\' > bin/echo-args && chmod 0755 bin/echo-args \\',
        '',
        '    && ls /usr/bin | wc -l > bin-count',
        'STOPSIGNAL SIGQUIT',
        '# A shell-form ENTRYPOINT runs through SHELL, and resets the base image\'s CMD.',
        'ENTRYPOINT echo-args start',
      ],
      exceptions: RUN_MOUNT_STUBS,
      settingsExceptions: {
        // BuildKit sets a variable again where it was (PATH stays first); buildah moves it last.
        Env: ['LANG=C.UTF-8', 'TZ=Etc/UTC', 'SITE_HOME=/opt/site', 'SITE_TITLE=two words', 'EMPTY=', 'PATH=/opt/site/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        // imagebuilder makes a shell-form ENTRYPOINT with /bin/sh -c; BuildKit uses SHELL.
        Entrypoint: ['/bin/sh', '-c', 'echo-args start'],
      },
    });
    expect(settings.Env?.[0]).toBe('PATH=/opt/site/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(settings.Entrypoint).toEqual(['/bin/bash', '-o', 'pipefail', '-c', 'echo-args start']);
  }, 600_000);

  test('an app user made from ARGs, WORKDIR and COPY --chown before and after USER, a shell-form CMD', async () => {
    const { files } = await buildAndCompare({
      name: 'webapp',
      files: { 'package.json': '{"name":"web"}\n', 'server.js': 'console.log("up")\n', 'lib/cli.js': '#!/usr/bin/env node\n', '.dockerignore': '*.log\n', 'debug.log': 'x\n' },
      dockerfile: [
        'FROM debian:bookworm',
        'ARG APP_USER=web',
        'ARG APP_UID=1500',
        'RUN groupadd --gid "$APP_UID" "$APP_USER" \\',
        ' && useradd --uid "$APP_UID" --gid "$APP_USER" --shell /bin/bash --create-home "$APP_USER"',
        'ENV HOME=/home/web',
        'ENV NODE_ENV production',
        '# Made by root: root owns it.',
        'WORKDIR /srv/static',
        'USER web',
        '# Made with USER set: BuildKit makes it, and the parents it adds, owned by that user.',
        'WORKDIR /home/web/app/current',
        'WORKDIR /home/web/app',
        'COPY --chown=web:web package.json ./',
        '# (into $HOME, which useradd made: the build needs no write access to the WORKDIR)',
        'RUN echo \'{"lockfileVersion":3}\' > "$HOME/.app-lock.json" \\',
        ' && mkdir -p "$HOME/.cache/app/bin" && ln -s ../../../app/lib/cli.js "$HOME/.cache/app/bin/cli"',
        'COPY --chown=web . .',
        'EXPOSE 3000',
        'CMD node server.js',
      ],
      exceptions: {
        ...RUN_MOUNT_STUBS,
        // buildah 1.28 makes a WORKDIR only when a later RUN or COPY uses it; BuildKit always does.
        'srv/static': 'absent',
        'home/web/app/current': 'absent',
      },
    });
    expect(describeRow(files.get('srv/static'))).toBe('directory 0755 0:0');
    expect(describeRow(files.get('home/web/app/current'))).toBe('directory 0755 1500:1500');
  }, 600_000);
});
