// What users of `docker buildx build` bring with them: its flags, and messages that say what went
// wrong and what to do. Each is tried through the CLI, as a new user would.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { gitIn, startGitDaemon } from '../support/git.ts';
import { hoist, hoistAsync, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry } from '../support/registry.ts';

let dir: string;
let root: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-parity-'));
  root = join(dir, 'store');
  const store = await Store.open(root);
  const [busybox] = await importOciLayout(store, makeBusyboxLayout(join(dir, 'busybox')), 'latest');
  await store.tag(normalizeReference('busybox'), busybox!.image.descriptor);
}, 120_000);
afterAll(() => removeTree(dir));

/** `hoist build` with these arguments exits 2 and says why. */
function expectRefused(args: readonly string[], why: string): void {
  const run = hoist(['build', '--root', root, ...args]);
  expect(run.code, args.join(' ')).toBe(2);
  expect(run.stderr).toContain(why);
}

describe('messages', () => {
  test('a failing RUN shows the Dockerfile around its line, the instruction marked, as BuildKit does', () => {
    const ctx = writeContext(dir, 'fails', { Dockerfile: 'FROM busybox\n# the next step works\nRUN echo fine\nRUN echo broken && \\\n    exit 3\nRUN echo never\n' });
    const run = hoist(['build', '--root', root, ctx]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain([
      ' --------------------',
      ' 2 |     # the next step works',
      ' 3 |     RUN echo fine',
      ' 4 | >>> RUN echo broken && \\',
      ' 5 | >>>     exit 3',
      ' --------------------',
      'hoist: Dockerfile:4: RUN exited with code 3: /bin/sh -c echo broken &&     exit 3',
      'last output:',
      '  broken',
    ].join('\n'));
  });

  test('a missing Dockerfile says where it looked and what to do', () => {
    const empty = writeContext(dir, 'no-dockerfile', { 'app.txt': 'x' });
    const missing = hoist(['build', '--root', root, empty]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`hoist: no Dockerfile in the context: looked for ${join(empty, 'Dockerfile')}; name another file with -f PATH\n`);
    const named = hoist(['build', '--root', root, '-f', 'docker/Dockerfile', empty], { cwd: dir });
    expect(named.code).toBe(2);
    expect(named.stderr).toContain(`cannot read the Dockerfile ${join(dir, 'docker', 'Dockerfile')}: there is no such file`);
  });

  test('COPY --from a near miss of a stage name suggests the stage, and pulls nothing', () => {
    const ctx = writeContext(dir, 'typo', { Dockerfile: 'FROM busybox AS builder\nRUN echo built > /out\nFROM busybox\nCOPY --from=buider /out /out\n' });
    const run = hoist(['build', '--root', root, ctx]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('undefined stage "buider" in --from (did you mean builder?)');
    expect(run.stderr).not.toContain('pulling');
  });
});

describe('RUN settings for the whole build', () => {
  test('--network=none, --add-host, --shm-size and --ulimit reach every RUN; the hosts file never reaches the image', () => {
    const ctx = writeContext(dir, 'run-settings', {
      Dockerfile: [
        'FROM busybox',
        // Only the loopback interface in a network namespace of the step's own.
        'RUN grep -c : /proc/net/dev > /interfaces',
        'RUN grep registry.internal /etc/hosts > /hosts-line; grep gateway.internal /etc/hosts >> /hosts-line',
        "RUN df -k /dev/shm | awk 'NR==2 { print $2 }' > /shm-kb",
        'RUN ulimit -n > /nofile',
      ].join('\n'),
    });
    const out = join(dir, 'run-settings-out');
    const run = hoist(['build', '--root', root, '--network=none', '--add-host', 'registry.internal:10.1.2.3', '--add-host=gateway.internal=host-gateway',
      '--shm-size', '128m', '--ulimit', 'nofile=512:1024', '-o', `type=local,dest=${out}`, ctx]);
    expect(run.code, run.stderr).toBe(0);
    const file = (name: string): string => readFileSync(join(out, name), 'utf8');
    expect(file('interfaces')).toBe('1\n');
    expect(file('hosts-line')).toBe('10.1.2.3\tregistry.internal\n127.0.0.1\tgateway.internal\n');
    expect(file('shm-kb')).toBe(`${128 * 1024}\n`);
    expect(file('nofile')).toBe('512\n');
    expect(existsSync(join(out, 'etc', 'hosts'))).toBe(false);
  });

  test('each setting is checked, and a bad one is refused by name', () => {
    const ctx = writeContext(dir, 'bad-settings', { Dockerfile: 'FROM busybox\nRUN true\n' });
    for (const [flag, why] of [
      [['--network=bridge'], '--network bridge: use default, host or none'],
      [['--add-host', 'nohost'], '--add-host nohost: expected NAME:IP'],
      [['--add-host', 'x:999.1.1.1'], '--add-host x:999.1.1.1: expected NAME:IP'],
      [['--shm-size', 'lots'], '--shm-size lots: expected a size'],
      [['--ulimit', 'files=10'], '--ulimit files=10: expected NAME=SOFT[:HARD]'],
      [['--ulimit', 'nofile=2048:1024'], '--ulimit nofile=2048:1024: the soft limit is above the hard one'],
    ] as const) {
      expectRefused([...flag, ctx], why);
    }
  });
});

describe('annotations', () => {
  test('--annotation and the output\'s annotation keys reach the manifests, the index, its entries and index.json, as buildx puts them', () => {
    const ctx = writeContext(dir, 'annotated', { Dockerfile: 'FROM scratch\nCOPY Dockerfile /\n' });
    const tarball = join(dir, 'annotated.tar');
    const run = hoist(['build', '--root', root, '--platform', 'linux/amd64,linux/arm64',
      '--annotation', 'org.opencontainers.image.title=demo', '--annotation', 'manifest[linux/arm64]:org.example.arch=arm',
      '--annotation', 'index,manifest-descriptor:org.example.Both=yes', '--annotation', 'com.example:colon=kept',
      '-o', `type=oci,dest=${tarball},annotation-index.org.example.index=1,annotation-index-descriptor.org.example.entry=2`, ctx]);
    expect(run.code, run.stderr).toBe(0);
    const layout = join(dir, 'annotated-layout');
    mkdirSync(layout);
    execFileSync('tar', ['-xf', tarball, '-C', layout]);
    const blob = (digest: string) => JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
    const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0];
    expect(top.annotations['org.example.entry']).toBe('2');
    const index = blob(top.digest);
    expect(index.annotations).toEqual({ 'org.example.Both': 'yes', 'org.example.index': '1' });
    const [amd64, arm64] = index.manifests;
    expect([amd64.annotations, arm64.annotations]).toEqual([{ 'org.example.Both': 'yes' }, { 'org.example.Both': 'yes' }]);
    expect(blob(amd64.digest).annotations).toEqual({ 'org.opencontainers.image.title': 'demo', 'com.example:colon': 'kept' });
    expect(blob(arm64.digest).annotations).toEqual({ 'org.opencontainers.image.title': 'demo', 'com.example:colon': 'kept', 'org.example.arch': 'arm' });
    // skopeo reads the layout with its annotations.
    expect(JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${tarball}`], { encoding: 'utf8' })).annotations['org.example.index']).toBe('1');
  });

  test('annotations with nowhere to go are refused by name', () => {
    const ctx = writeContext(dir, 'annotated-bad', { Dockerfile: 'FROM scratch\nCOPY Dockerfile /\n' });
    for (const [args, why] of [
      [['--annotation', 'index:x=y', '-t', 'one'], 'annotation index:x: this build makes one image manifest and no index'],
      [['-o', `type=local,dest=${join(dir, 'x')},annotation.a=b`], 'type=local holds files, not an image: it takes no annotations'],
      [['--annotation', 'index-descriptor:x=y', '--platform', 'linux/amd64,linux/arm64', '-t', 'two'], 'only an OCI layout (--output type=oci) has an index.json'],
      [['--annotation', 'nonsense:x=y', '-t', 'three'], '--annotation nonsense:x=y: expected [TYPE[,TYPE][PLATFORM]:]KEY=VALUE'],
    ] as const) {
      expectRefused([...args, ctx], why);
    }
  });
});

describe('contexts', () => {
  const dockerfile = 'FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n';

  test('- reads a tar context, or a Dockerfile alone, from standard input', () => {
    const source = writeContext(dir, 'tar-source', { Dockerfile: dockerfile, 'a.txt': 'a\n', 'sub/b.txt': 'b\n', 'run.sh': '#!/bin/sh\n' });
    chmodSync(join(source, 'run.sh'), 0o755);
    linkSync(join(source, 'a.txt'), join(source, 'sub', 'hard.txt'));
    const tarball = join(dir, 'context.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', source, '.']);
    const out = join(dir, 'stdin-tar-out');
    const fromTar = hoist(['build', '--root', root, '-o', `type=local,dest=${out}`, '-'], { input: readFileSync(tarball) });
    expect(fromTar.code, fromTar.stderr).toBe(0);
    expect(readFileSync(join(out, 'listing'), 'utf8')).toBe('Dockerfile\na.txt\nrun.sh\nsub\n');
    expect(readFileSync(join(out, 'ctx', 'sub', 'b.txt'), 'utf8')).toBe('b\n');
    expect(readFileSync(join(out, 'ctx', 'sub', 'hard.txt'), 'utf8')).toBe('a\n');
    expect(statSync(join(out, 'ctx', 'run.sh')).mode & 0o777).toBe(0o755);

    const alone = join(dir, 'stdin-dockerfile-out');
    const fromDockerfile = hoist(['build', '--root', root, '-o', `type=local,dest=${alone}`, '-'], { input: 'FROM busybox\nRUN echo alone > /alone\n' });
    expect(fromDockerfile.code, fromDockerfile.stderr).toBe(0);
    expect(readFileSync(join(alone, 'alone'), 'utf8')).toBe('alone\n');
    expect(hoist(['build', '--root', root, '-f', '-', '-'], { input: '' }).stderr).toContain('cannot both come from standard input');
  });

  test('a tarball file or URL is a context, and -f names a file in it', async () => {
    const source = writeContext(dir, 'url-source', { 'docker/Dockerfile': dockerfile, 'a.txt': 'a\n' });
    const tarball = join(dir, 'url-context.tar');
    execFileSync('tar', ['-cf', tarball, '-C', source, '.']);
    const fromFile = join(dir, 'tar-file-out');
    const built = hoist(['build', '--root', root, '-f', 'docker/Dockerfile', '-o', `type=local,dest=${fromFile}`, tarball]);
    expect(built.code, built.stderr).toBe(0);
    expect(readFileSync(join(fromFile, 'listing'), 'utf8')).toBe('a.txt\ndocker\n');

    const server = createServer((request, response) => response.end(request.url === '/context.tar' ? readFileSync(tarball) : ''));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/context.tar`;
      const fromUrl = join(dir, 'tar-url-out');
      const downloaded = await hoistAsync(['build', '--root', root, '-f', 'docker/Dockerfile', '-o', `type=local,dest=${fromUrl}`, url]);
      expect(downloaded.code, downloaded.stderr).toBe(0);
      expect(readFileSync(join(fromUrl, 'listing'), 'utf8')).toBe('a.txt\ndocker\n');
    } finally {
      server.close();
    }
  });

  test('a git repository is a context at a ref and subdirectory, without its .git, and an ADD source; served by git daemon', async () => {
    const repos = join(dir, 'repos');
    const repo = join(repos, 'app.git');
    const work = writeContext(dir, 'git-work', { 'app/Dockerfile': dockerfile, 'app/v.txt': 'one\n' });
    symlinkSync('/etc', join(work, 'escape'));
    const git = (...args: string[]): string => gitIn(work, ...args);
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-q', '-m', 'one');
    git('tag', 'v1');
    writeFileSync(join(work, 'app', 'v.txt'), 'two\n');
    git('commit', '-q', '-am', 'two');
    execFileSync('git', ['clone', '-q', '--bare', work, repo]);
    const { port, stop } = await startGitDaemon(repos);
    try {
      for (const [ref, expected] of [['main', 'two'], ['v1', 'one']] as const) {
        const out = join(dir, `git-${ref}-out`);
        const built = await hoistAsync(['build', '--root', root, '-o', `type=local,dest=${out}`, `git://127.0.0.1:${port}/app.git#${ref}:app`]);
        expect(built.code, built.stderr).toBe(0);
        expect(readFileSync(join(out, 'ctx', 'v.txt'), 'utf8')).toBe(`${expected}\n`);
        expect(readFileSync(join(out, 'listing'), 'utf8')).toBe('Dockerfile\nv.txt\n');
      }
      // ADD of a git repository: its files at the ref, .git only with --keep-git-dir.
      const add = writeContext(dir, 'git-add', { Dockerfile: `FROM busybox\nADD git://127.0.0.1:${port}/app.git#v1 /src\nADD --keep-git-dir=true git://127.0.0.1:${port}/app.git#main /withgit\n` });
      const added = join(dir, 'git-add-out');
      const addBuilt = await hoistAsync(['build', '--root', root, '-o', `type=local,dest=${added}`, add]);
      expect(addBuilt.code, addBuilt.stderr).toBe(0);
      expect(readFileSync(join(added, 'src', 'app', 'v.txt'), 'utf8')).toBe('one\n');
      expect(existsSync(join(added, 'src', '.git'))).toBe(false);
      expect(readFileSync(join(added, 'withgit', 'app', 'v.txt'), 'utf8')).toBe('two\n');
      expect(existsSync(join(added, 'withgit', '.git', 'HEAD'))).toBe(true);
      const missing = await hoistAsync(['build', '--root', root, `git://127.0.0.1:${port}/app.git#nope`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("couldn't find remote ref nope");
      // A subdirectory that is a symlink out of the checkout, and a ref that would be a git option, are refused.
      const escape = await hoistAsync(['build', '--root', root, `git://127.0.0.1:${port}/app.git#main:escape`]);
      expect(escape.stderr).toContain('the repository has no directory escape (inside it)');
      const option = await hoistAsync(['build', '--root', root, `git://127.0.0.1:${port}/app.git#--upload-pack=touch`]);
      expect(option.stderr).toContain('"--upload-pack=touch" is no git ref');
    } finally {
      stop();
    }
  });
});

describe('named contexts and mounts', () => {
  test('a named context takes the place of the stage of its name; a directory context is a FROM image and a RUN bind and cache source', () => {
    const ctx = writeContext(dir, 'named', {
      Dockerfile: [
        'FROM busybox AS tools',
        'RUN echo from-the-stage > /tool',
        // FROM a directory context: an image of its files.
        'FROM tools AS checked',
        'COPY note.txt /note.txt',
        'FROM busybox',
        'COPY --from=tools /tool /copied-tool',
        'COPY --from=checked /tool /checked-tool',
        'COPY --from=assets /logo.txt /logo.txt',
        'RUN --mount=type=bind,from=assets,target=/mnt cat /mnt/logo.txt > /bound',
        'RUN --mount=type=cache,target=/cache,from=assets,source=seed cat /cache/seed.txt > /seeded',
      ].join('\n'),
      'note.txt': 'note\n',
    });
    const tools = writeContext(dir, 'tools-context', { tool: 'from-the-context\n' });
    const assets = writeContext(dir, 'assets-context', { 'logo.txt': 'logo\n', 'seed/seed.txt': 'seeded\n' });
    const out = join(dir, 'named-out');
    const built = hoist(['build', '--root', root, '--build-context', `tools=${tools}`, '--build-context', `assets=${assets}`, '-o', `type=local,dest=${out}`, ctx]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).not.toContain('RUN echo from-the-stage');
    const file = (name: string): string => readFileSync(join(out, name), 'utf8');
    expect(file('copied-tool')).toBe('from-the-context\n');
    expect(file('checked-tool')).toBe('from-the-context\n');
    expect(file('logo.txt')).toBe('logo\n');
    expect(file('bound')).toBe('logo\n');
    expect(file('seeded')).toBe('seeded\n');
  });

  test('COPY keeps the extended attributes of the context\'s files', () => {
    const ctx = writeContext(dir, 'xattrs', { Dockerfile: 'FROM scratch\nCOPY tagged.txt /\n', 'tagged.txt': 'x\n' });
    // Set with the helper's own setxattrs (path, name, hex value): Node has no call for it.
    execFileSync(join(repoRoot, 'userns-native', 'build', 'hoist-sandbox'), ['setxattrs'], { input: `${join(ctx, 'tagged.txt')}\0user.origin\0${Buffer.from('context').toString('hex')}\0` });
    const layout = join(dir, 'xattrs-layout');
    const run = hoist(['build', '--root', root, '-o', `type=oci,dest=${layout},tar=false`, ctx]);
    expect(run.code, run.stderr).toBe(0);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    const listing = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvzf', join(layout, 'blobs', 'sha256', manifest.layers[0].digest.slice(7))], { encoding: 'utf8' });
    expect(listing).toMatch(/tagged\.txt\n\s+x: 7 user\.origin/);
  });
});

describe('--load', () => {
  test('streams a docker archive into the docker CLI on PATH, and says so in one line when there is none', () => {
    // The docker CLI is a stand-in that keeps what `docker load` reads; skopeo judges the archive.
    const bin = join(dir, 'fake-docker-bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'docker'), '#!/bin/sh\n[ "$1" = load ] || exit 64\ncat > "$LOAD_RECORD"\necho "Loaded image: loaded:1"\n', { mode: 0o755 });
    const ctx = writeContext(dir, 'load', { Dockerfile: 'FROM busybox\nRUN echo loaded > /loaded\n' });
    const record = join(dir, 'loaded.tar');
    const run = hoist(['build', '--root', root, '--load', '-t', 'loaded:1', ctx], { env: { PATH: `${bin}:${process.env.PATH}`, LOAD_RECORD: record } });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('docker: Loaded image: loaded:1');
    expect(JSON.parse(execFileSync('tar', ['-xOf', record, 'manifest.json'], { encoding: 'utf8' }))[0].RepoTags).toEqual(['loaded:1']);
    expect(JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${record}`], { encoding: 'utf8' })).Layers).toHaveLength(2);

    const without = hoist(['build', '--root', root, '--load', ctx], { env: { PATH: '/usr/bin:/bin' } });
    expect(without.code).toBe(2);
    expect(without.stderr).toBe('hoist: --load: there is no docker or podman on PATH to load the image into (hoist has no daemon of its own): write it with --output type=docker,dest=FILE\n');
  });
});

describe('--progress', () => {
  const dockerfile = 'FROM busybox\nRUN echo first-line && sleep 1 && echo second-line\nRUN echo done > /done\n';

  test('rawjson gives BuildKit\'s SolveStatus events: vertexes started and completed, and each step\'s output as its logs', () => {
    const ctx = writeContext(dir, 'rawjson', { Dockerfile: dockerfile });
    const run = hoist(['build', '--root', root, '--no-cache', '--progress=rawjson', ctx]);
    expect(run.code, run.stderr).toBe(0);
    const events = run.stderr.trim().split('\n').map((line) => JSON.parse(line) as { vertexes?: { digest: string; name: string; started?: string; completed?: string }[]; logs?: { vertex: string; data: string }[] });
    const vertex = events.flatMap((event) => event.vertexes ?? []).filter((each) => each.name.includes('RUN echo first-line'));
    expect(vertex.map((each) => Boolean(each.completed))).toEqual([false, true]);
    expect(new Date(vertex[1]!.completed!).getTime()).toBeGreaterThanOrEqual(new Date(vertex[0]!.started!).getTime() + 900);
    const output = events.flatMap((event) => event.logs ?? []).filter((log) => log.vertex === vertex[0]!.digest).map((log) => Buffer.from(log.data, 'base64').toString());
    expect(output).toEqual(expect.arrayContaining(['first-line\n', 'second-line\n']));
  });

  test('tty on a terminal (script gives one) draws running steps with timers and output, then prints each step once; without a terminal it is plain', () => {
    const ctx = writeContext(dir, 'tty', { Dockerfile: dockerfile });
    const command = [join(repoRoot, 'bin', 'hoist'), 'build', '--root', root, '--no-cache', '--progress=tty', ctx].map((arg) => `'${arg}'`).join(' ');
    const screen = execFileSync('script', ['-qfec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '120' } });
    expect(screen).toContain('\x1b[J');
    expect(screen).toMatch(/\[stage-0 2\/3\] RUN echo first-line && sleep 1 && echo second-line \d\.\ds/);
    expect(screen).toMatch(/\n {2}first-line\r?\n/);
    expect(screen).toMatch(/\[stage-0 2\/3\] RUN echo first-line && sleep 1 && echo second-line DONE \d+\.\d\ds/);
    const plain = hoist(['build', '--root', root, '--progress=tty', ctx]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).not.toContain('\x1b[');
    expect(plain.stderr).toContain('[stage-0 2/3] CACHED');
  });
});

describe('build checks', () => {
  const dockerfile = [
    'FROM busybox as Builder',
    'ARG API_TOKEN',
    'ENV GREETING hello',
    'WORKDIR app',
    'COPY $NOT_DEFINED /x',
    'from builder',
    'CMD echo hi',
  ].join('\n');

  test('--check reports BuildKit\'s rules at their lines with their pages, and exits 1; a build prints them as warnings', () => {
    const ctx = writeContext(dir, 'checks', { Dockerfile: dockerfile });
    const run = hoist(['build', '--root', root, '--check', ctx]);
    expect(run.code).toBe(1);
    const found = [...run.stdout.matchAll(/^WARNING: (\w+) - (\S+)\n(.*)\nDockerfile:(\d+)$/gm)].map((match) => [match[1], match[4], match[3]]);
    expect(found).toEqual([
      ['FromAsCasing', '1', "'as' and 'FROM' keywords' casing do not match"],
      ['StageNameCasing', '1', "Stage name 'Builder' should be lowercase"],
      ['SecretsUsedInArgOrEnv', '2', 'Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN")'],
      ['LegacyKeyValueFormat', '3', '"ENV key=value" should be used instead of legacy "ENV key value" format'],
      ['WorkdirRelativePath', '4', 'Relative workdir "app" can have unexpected results if the base image changes'],
      ['UndefinedVar', '5', "Usage of undefined variable '$NOT_DEFINED'"],
      ['ConsistentInstructionCasing', '6', "Command 'from' should match the case of the command majority (uppercase)"],
      ['JSONArgsRecommended', '7', 'JSON arguments recommended for CMD to prevent unintended behavior related to OS signals'],
    ]);
    expect(run.stdout).toContain('https://docs.docker.com/go/dockerfile/rule/from-as-casing/');
    expect(run.stdout).toContain(' 7 | >>> CMD echo hi');
    expect(run.stdout).toContain('Check complete, 8 warnings have been found!');
    expect(hoist(['build', '--root', root, '--call', 'outline', ctx]).code).toBe(2);

    // A build goes on, and says what the checks found.
    const clean = writeContext(dir, 'checks-build', { Dockerfile: 'FROM busybox AS base\nCMD echo hi\n' });
    const built = hoist(['build', '--root', root, clean]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toContain('warning: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (Dockerfile:2) https://docs.docker.com/go/dockerfile/rule/json-args-recommended/');
  });

  test('a build says what the checks found once its base is pulled: a variable its ENV defines is no warning', async () => {
    const registry = await startRegistry();
    try {
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${join(dir, 'busybox')}:latest`, `docker://${registry.host}/base/busybox:1`]);
      const ctx = writeContext(dir, 'checks-pulled', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nENV SEEN=$PATH NOT_SEEN=$NOWHERE\n` });
      const built = await hoistAsync(['build', '--root', join(dir, 'checks-pulled-store'), ctx]);
      expect(built.code, built.stderr).toBe(0);
      expect(built.stderr.split('\n').filter((line) => line.startsWith('warning: UndefinedVar'))).toEqual([
        `warning: UndefinedVar: Usage of undefined variable '$NOWHERE' (Dockerfile:2) https://docs.docker.com/go/dockerfile/rule/undefined-var/`,
      ]);
    } finally {
      await registry.stop();
    }
  });

  test('# check=skip= leaves rules out, and # check=error=true makes them fail the build', () => {
    const skipped = writeContext(dir, 'checks-skip', { Dockerfile: `# check=skip=FromAsCasing,StageNameCasing,SecretsUsedInArgOrEnv,LegacyKeyValueFormat,WorkdirRelativePath,UndefinedVar,ConsistentInstructionCasing,JSONArgsRecommended\n${dockerfile}` });
    const run = hoist(['build', '--root', root, '--check', skipped]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toBe('Check complete, no warnings found.\n');
    const strict = writeContext(dir, 'checks-error', { Dockerfile: '# check=error=true\nFROM busybox\nCMD echo hi\n' });
    const failed = hoist(['build', '--root', root, strict]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('WARNING: JSONArgsRecommended');
    expect(failed.stderr).toContain('the build checks found 1 warning, and the Dockerfile says check=error=true');
  });
});
