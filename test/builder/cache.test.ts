// The build cache: what a rebuild reuses, why a step misses, RUN --mount, and reproducible images.
// Builds run as the unprivileged test user through bin/hoist.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistAsync, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { startRegistry } from '../support/registry.ts';

let dir: string;
let busyboxLayout: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-cache-'));
  busyboxLayout = makeBusyboxLayout(join(dir, 'busybox'));
});
afterAll(() => removeTree(dir));

/** A new store with busybox loaded. */
function newStore(name: string): string {
  const root = join(dir, name);
  hoistOk(['load', '--root', root, '-t', 'busybox', `${busyboxLayout}:latest`]);
  return root;
}

/** Builds and returns the image digest and the log. */
function build(root: string, context: string, args: string[] = [], env: Record<string, string> = {}): { digest: string; log: string } {
  const metadata = join(dir, `metadata-${Math.random().toString(36).slice(2)}.json`);
  const run = hoistOk(['build', '--root', root, '--metadata-file', metadata, ...args, context], { env });
  const digest = (JSON.parse(readFileSync(metadata, 'utf8')) as Record<string, string>)['containerimage.digest']!;
  return { digest, log: run.stderr };
}

/** The lines saying how the step of `instruction` went (CACHED, or a miss reason then DONE). */
const outcome = (log: string, instruction: string): string[] => {
  const lines = log.split('\n');
  const at = lines.findIndex((line) => /^\[[^\]]+ \d+\/\d+\] /.test(line) && line.includes(`] ${instruction}`));
  const step = lines[at]?.match(/^\[[^\]]+\]/)?.[0];
  return step ? lines.slice(at + 1).filter((line) => line.startsWith(`${step} `)).map((line) => line.slice(step.length + 1)) : [];
};

/** Whether a RUN printed `text` (its output lines start with the stage's name alone). */
const printed = (log: string, text: string): boolean => log.split('\n').some((line) => /^\[[\w-]+\] /.test(line) && line.includes(text));

const appDockerfile = [
  'FROM busybox',
  'ARG VERSION=1',
  'RUN echo "ran first $VERSION" && echo $VERSION > /version',
  'WORKDIR /srv',
  'COPY app/ /srv/app/',
  'RUN echo ran second && cat /srv/app/main.py > /copied',
  'ENV MODE=prod',
  'CMD ["sh"]',
].join('\n');

describe('build cache', () => {
  test('a rebuild with nothing changed runs no RUN and gives the same image digest', () => {
    const root = newStore('nochange');
    const context = writeContext(dir, 'nochange-ctx', { Dockerfile: appDockerfile, 'app/main.py': 'v1\n', 'app/util.py': 'u\n' });
    const first = build(root, context);
    expect(printed(first.log, 'ran first 1')).toBe(true);
    const second = build(root, context);
    expect(printed(second.log, 'ran first')).toBe(false);
    expect(printed(second.log, 'ran second')).toBe(false);
    for (const step of ['RUN echo "ran first', 'WORKDIR /srv', 'COPY app/', 'RUN echo ran second']) expect(outcome(second.log, step)).toEqual(['CACHED']);
    expect(second.digest).toBe(first.digest);
    // Touching files (new mtimes, same content) is no change either: keys hold content, not times.
    for (const file of ['main.py', 'util.py']) utimesSync(join(context, 'app', file), new Date(), new Date(2030, 0, 1));
    expect(build(root, context).digest).toBe(first.digest);
  });

  test('changing one copied file re-runs only the steps after that COPY, and says why', () => {
    const root = newStore('onefile');
    const context = writeContext(dir, 'onefile-ctx', { Dockerfile: appDockerfile, 'app/main.py': 'v1\n', 'app/util.py': 'u\n' });
    const first = build(root, context);
    writeFileSync(join(context, 'app', 'main.py'), 'v2\n');
    writeFileSync(join(context, 'app', 'extra.py'), 'new\n');
    const second = build(root, context);
    expect(outcome(second.log, 'RUN echo "ran first')).toEqual(['CACHED']);
    expect(outcome(second.log, 'COPY app/')[0]).toBe('COPY app/: app/extra.py added; app/main.py changed');
    expect(outcome(second.log, 'RUN echo ran second')[0]).toBe('RUN: parent layer changed');
    expect(outcome(second.log, 'RUN echo ran second')[1]).toMatch(/^DONE \d+\.\d\ds$/);
    expect(printed(second.log, 'ran second')).toBe(true);
    expect(printed(second.log, 'ran first')).toBe(false);
    expect(second.digest).not.toBe(first.digest);
    const out = join(dir, 'onefile-out');
    hoistOk(['build', '--root', root, '-q', '-o', `type=local,dest=${out}`, context]);
    expect(readFileSync(join(out, 'copied'), 'utf8')).toBe('v2\n');
  });

  test('a changed build arg, ENV or command is named; --no-cache and --no-cache-filter run steps again', () => {
    const root = newStore('reasons');
    const context = writeContext(dir, 'reasons-ctx', { Dockerfile: appDockerfile, 'app/main.py': 'v1\n' });
    build(root, context);
    const changedArg = build(root, context, ['--build-arg', 'VERSION=2']);
    expect(outcome(changedArg.log, 'RUN echo "ran first')[0]).toBe('RUN: build arg VERSION changed');
    expect(outcome(changedArg.log, 'WORKDIR /srv')[0]).toBe('WORKDIR: parent layer changed');

    const withEnv = join(context, 'Dockerfile.env');
    writeFileSync(withEnv, appDockerfile.replace('ARG VERSION=1', 'ENV LEVEL=1\nARG VERSION=1'));
    build(root, context, ['-f', withEnv]);
    writeFileSync(withEnv, appDockerfile.replace('ARG VERSION=1', 'ENV LEVEL=2\nARG VERSION=1'));
    expect(outcome(build(root, context, ['-f', withEnv]).log, 'RUN echo "ran first')[0]).toBe('RUN: ENV LEVEL changed');
    writeFileSync(withEnv, appDockerfile.replace('ARG VERSION=1', 'ENV LEVEL=2\nARG VERSION=1').replace('ran first', 'ran 1st'));
    expect(outcome(build(root, context, ['-f', withEnv]).log, 'RUN echo "ran 1st')[0]).toBe('RUN: command changed');

    const noCache = build(root, context, ['--no-cache']);
    expect(outcome(noCache.log, 'RUN echo "ran first')[0]).toBe('RUN: cache disabled');
    const twoStages = writeContext(dir, 'filter-ctx', {
      Dockerfile: 'FROM busybox AS deps\nRUN echo ran deps > /deps\nFROM busybox AS app\nCOPY --from=deps /deps /deps\nRUN echo ran app\n',
    });
    build(root, twoStages);
    const filtered = build(root, twoStages, ['--no-cache-filter', 'app']);
    expect(printed(filtered.log, 'ran deps')).toBe(false);
    expect(printed(filtered.log, 'ran app')).toBe(true);
  });

  test('stat data is only a hint: a same-size change with the old mtime put back is still seen', () => {
    const root = newStore('hint');
    const context = writeContext(dir, 'hint-ctx', { Dockerfile: 'FROM busybox\nCOPY f /f\n', f: 'aaaa\n' });
    const old = new Date(2020, 0, 1);
    utimesSync(join(context, 'f'), old, old);
    const first = build(root, context);
    writeFileSync(join(context, 'f'), 'bbbb\n');
    utimesSync(join(context, 'f'), old, old);
    const second = build(root, context);
    expect(outcome(second.log, 'COPY f')[0]).toBe('COPY f: f changed');
    expect(second.digest).not.toBe(first.digest);
  });

  test('the cache is keyed by content: the same content built elsewhere in the store is reused', () => {
    const root = newStore('content');
    const one = writeContext(dir, 'content-one', { Dockerfile: 'FROM busybox\nCOPY f /f\nRUN echo ran && cat /f > /g\n', f: 'same\n' });
    const two = join(dir, 'content-two');
    cpSync(one, two, { recursive: true });
    const first = build(root, one);
    const second = build(root, two);
    expect(printed(first.log, 'ran')).toBe(true);
    expect(printed(second.log, 'ran')).toBe(false);
    expect(second.digest).toBe(first.digest);
  });
});

describe('shared cache', () => {
  const sharedDockerfile = [
    'FROM busybox AS deps',
    'RUN --mount=type=cache,target=/cache sh -c \'echo "cache had: $(cat /cache/seen 2>/dev/null)"; echo from-first-runner > /cache/seen; echo ran deps; echo deps > /deps\'',
    'FROM busybox',
    'RUN --mount=type=secret,id=token echo ran main && wc -c < /run/secrets/token > /len',
    'COPY --from=deps /deps /deps',
    'COPY app.txt /app.txt',
  ].join('\n');
  const secret = 'cache-secret-0123456789';

  test('a fresh store with --cache-from a registry ref filled by another store reuses every layer', async () => {
    const registry = await startRegistry();
    try {
      const context = writeContext(dir, 'shared-ctx', { Dockerfile: sharedDockerfile, 'app.txt': 'app\n' });
      const ref = `${registry.host}/team/app:buildcache`;
      const env = { TOKEN: secret };
      const first = build(newStore('shared-a'), context, ['--secret', 'id=token,env=TOKEN', '--cache-to', `type=registry,ref=${ref},mode=max,mounts=true`], env);
      // Four layers: three of records (COPY --from makes the same layer as the RUN it copies from)
      // and the cache mount's contents.
      expect(first.log).toMatch(/cache: 4 records, 4 layers \(1 cache mounts\) written to/);

      const fresh = newStore('shared-b');
      const second = build(fresh, context, ['--secret', 'id=token,env=TOKEN', '--cache-from', `type=registry,ref=${ref}`], env);
      expect(second.log).toContain('cache: 4 records from');
      for (const step of ['RUN --mount=type=cache', 'RUN --mount=type=secret', 'COPY --from=deps', 'COPY app.txt']) expect(outcome(second.log, step)).toEqual(['CACHED']);
      expect(second.digest).toBe(first.digest);

      // The cache mount's contents came along: a step that runs again finds them.
      const again = build(fresh, context, ['--secret', 'id=token,env=TOKEN', '--cache-from', ref, '--no-cache-filter', 'deps'], env);
      expect(printed(again.log, 'cache had: from-first-runner')).toBe(true);

      // The cache manifest and its config hold no secret; skopeo copies the whole cache, checking every blob.
      const raw = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], { encoding: 'utf8' });
      const config = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', '--config', `docker://${ref}`], { encoding: 'utf8' });
      expect(raw + config).not.toContain(secret);
      expect(JSON.parse(raw).config.mediaType).toBe('application/vnd.hoist.build-cache.config.v1+json');
      execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(dir, 'cache-copy')}:c`]);
      for (const name of readdirSync(join(dir, 'cache-copy', 'blobs', 'sha256'))) {
        const bytes = readFileSync(join(dir, 'cache-copy', 'blobs', 'sha256', name));
        expect((bytes[0] === 0x1f ? gunzipSync(bytes) : bytes).includes(secret)).toBe(false);
      }

      // A first CI run, with nothing at the ref yet, builds without the cache.
      const none = build(newStore('shared-c'), context, ['--secret', 'id=token,env=TOKEN', '--cache-from', `${registry.host}/team/none:cache`], env);
      expect(none.log).toContain('cache: nothing at');
      expect(none.digest).not.toBe('');
    } finally {
      await registry.stop();
    }
  });

  test('parallel runners writing one cache ref (registry and local) leave a whole, usable cache', async () => {
    const registry = await startRegistry();
    try {
      const contexts = ['one', 'two'].map((name) => writeContext(dir, `parallel-${name}`, { Dockerfile: sharedDockerfile, 'app.txt': `${name}\n` }));
      const ref = `${registry.host}/team/parallel:cache`;
      const local = join(dir, 'parallel-local-cache');
      const roots = ['parallel-a', 'parallel-b'].map(newStore);
      const runs = await Promise.all(contexts.map((context, i) => hoistAsync([
        'build', '--root', roots[i]!, '--secret', 'id=token,env=TOKEN', '--cache-to', `type=registry,ref=${ref},mode=max`,
        '--cache-to', `type=local,dest=${local},mode=max`, context,
      ], { env: { TOKEN: secret } })));
      for (const run of runs) expect(run.code, run.stderr).toBe(0);
      for (const from of [`type=registry,ref=${ref}`, `type=local,src=${local}`]) {
        const reader = build(newStore(`parallel-reader-${from.slice(5, 10)}`), contexts[0]!, ['--secret', 'id=token,env=TOKEN', '--cache-from', from], { TOKEN: secret });
        expect(outcome(reader.log, 'RUN --mount=type=cache')).toEqual(['CACHED']);
        expect(outcome(reader.log, 'COPY --from=deps')).toEqual(['CACHED']);
      }
      expect(readdirSync(local).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    } finally {
      await registry.stop();
    }
  });
});

describe('RUN --mount', () => {
  const mountsDockerfile = [
    'FROM busybox',
    'RUN --mount=type=cache,target=/var/cache/pkg sh -c \'n=$(cat /var/cache/pkg/count 2>/dev/null || echo 0); echo $((n+1)) > /var/cache/pkg/count; echo "count=$((n+1))"\'',
    'RUN --mount=type=secret,id=token sh -c \'wc -c < /run/secrets/token > /secret-length; stat -c %a /run/secrets/token > /secret-mode\'',
    'RUN --mount=type=secret,id=token,env=TOKEN sh -c \'echo ${#TOKEN} > /secret-env-length\'',
    'RUN --mount=type=bind,source=input,target=/input sh -c \'cat /input/a > /bound; touch /input/new 2>/dev/null || echo read-only > /bind-ro\'',
    'RUN --mount=type=bind,source=input,target=/input,rw sh -c \'touch /input/new && echo written > /bind-rw\'',
    'RUN --mount=type=tmpfs,target=/scratch sh -c \'echo x > /scratch/file && grep " /scratch tmpfs" /proc/mounts | cut -d" " -f3 > /tmpfs-type\'',
  ].join('\n');
  const secret = 'hunter2-very-secret-value';

  test('cache, secret, bind and tmpfs mounts work, and none of them reaches a layer', () => {
    const root = newStore('mounts');
    const context = writeContext(dir, 'mounts-ctx', { Dockerfile: mountsDockerfile, 'input/a': 'bound content\n' });
    const secretFile = join(dir, 'token.txt');
    writeFileSync(secretFile, secret);
    const out = join(dir, 'mounts-out');
    const first = hoistOk(['build', '--root', root, '--secret', `id=token,src=${secretFile}`, '-o', `type=local,dest=${out}`, '-t', 'mounts', context]);
    expect(first.stderr).toContain('count=1');
    const read = (name: string): string => readFileSync(join(out, name), 'utf8').trim();
    expect([read('secret-length'), read('secret-mode'), read('secret-env-length')]).toEqual([String(secret.length), '400', String(secret.length)]);
    expect([read('bound'), read('bind-ro'), read('bind-rw'), read('tmpfs-type')]).toEqual(['bound content', 'read-only', 'written', 'tmpfs']);
    // Mount points and mounted contents stay out of the image.
    expect(readdirSync(out).sort()).toEqual(['bin', 'bind-ro', 'bind-rw', 'bound', 'secret-env-length', 'secret-length', 'secret-mode', 'tmpfs-type']);
    expect(readdirSync(join(context, 'input'))).toEqual(['a']);

    // The cache mount persists across builds (here forced to run again), outside every layer.
    const again = hoistOk(['build', '--root', root, '--no-cache', '--secret', `id=token,env=TOKEN_VAR`, '-t', 'mounts', context], { env: { TOKEN_VAR: secret } });
    expect(again.stderr).toContain('count=2');

    // The secret is in no blob (layers decompressed), no cache record and no history.
    const blobs = join(root, 'blobs', 'sha256');
    for (const name of readdirSync(blobs)) {
      const bytes = readFileSync(join(blobs, name));
      const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
      expect(plain.includes(secret), `blob ${name}`).toBe(false);
    }
    const grep = spawnSync('grep', ['-rl', secret, join(root, 'cache'), join(root, 'index.json')], { encoding: 'utf8' });
    expect(grep.stdout).toBe('');
    expect(grep.status).toBe(1);
    expect(hoistOk(['inspect', '--root', root, 'mounts']).stdout).not.toContain(secret);
  });

  test('a changed secret does not change the key; a changed bind source does', () => {
    const root = newStore('mount-keys');
    const context = writeContext(dir, 'mount-keys-ctx', {
      Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=s echo ran secret step\nRUN --mount=type=bind,source=input,target=/input cat /input/a\n',
      'input/a': 'one\n',
    });
    build(root, context, ['--secret', 'id=s,env=S'], { S: 'first' });
    writeFileSync(join(context, 'input', 'a'), 'two\n');
    const second = build(root, context, ['--secret', 'id=s,env=S'], { S: 'second' });
    expect(outcome(second.log, 'RUN --mount=type=secret')).toEqual(['CACHED']);
    expect(outcome(second.log, 'RUN --mount=type=bind')[0]).toBe('RUN: mount /input/a changed');
  });

  test('a required secret that is missing fails with the line; an ssh mount without --ssh runs with a warning', () => {
    const root = newStore('mount-errors');
    const context = writeContext(dir, 'mount-errors-ctx', { Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=npmrc,required true\n' });
    const missing = hoist(['build', '--root', root, context]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Dockerfile:2: secret npmrc is required');
    writeFileSync(join(context, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=ssh true\n');
    expect(hoist(['build', '--root', root, context]).stderr).toContain('warning: RUN --mount=type=ssh,id=default: no --ssh default given, so the step has no agent');
  });
});

describe('reproducible builds', () => {
  test('SOURCE_DATE_EPOCH builds in two store roots, from two copies of the context, give the same digest', () => {
    const dockerfile = 'FROM busybox\nRUN mkdir -p /out && echo built > /out/file && touch /out/now\nWORKDIR /srv/app\nCOPY . /srv/app/\nLABEL a=b\n';
    const one = writeContext(dir, 'repro-one', { Dockerfile: dockerfile, 'src/main.c': 'int main(){}\n' });
    const two = join(dir, 'repro-two');
    cpSync(one, two, { recursive: true });
    utimesSync(join(two, 'src', 'main.c'), new Date(), new Date(2031, 5, 1));
    const epoch = '1700000000';
    const first = build(newStore('repro-a'), one, [], { SOURCE_DATE_EPOCH: epoch });
    const second = build(newStore('repro-b'), two, ['--timestamp', epoch]);
    expect(second.digest).toBe(first.digest);

    const layout = join(dir, 'repro-layout');
    hoistOk(['build', '--root', join(dir, 'repro-a'), '-q', '-o', `type=oci,dest=${layout},tar=false`, one], { env: { SOURCE_DATE_EPOCH: epoch } });
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${layout}`], { encoding: 'utf8' }));
    const created = new Date(Number(epoch) * 1000).toISOString().replace('.000Z', 'Z');
    expect(inspected.created).toBe(created);
    const history = inspected.history as { created: string }[];
    expect(history.slice(1).map((entry) => entry.created)).toEqual(history.slice(1).map(() => created));
    // No file in the new layers is newer than the epoch.
    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}`], { encoding: 'utf8' }));
    for (const digest of (manifest.Layers as string[]).slice(1)) {
      const lines = execFileSync('tar', ['--full-time', '-tvzf', join(layout, 'blobs', 'sha256', digest.slice(7))], { encoding: 'utf8' }).trim().split('\n');
      for (const line of lines) expect(Date.parse(`${line.split(/\s+/)[3]}T${line.split(/\s+/)[4]}Z`) / 1000, line).toBeLessThanOrEqual(Number(epoch));
    }
  });
});
