// The GitHub Action's entry script, run as the runner runs it: its inputs as INPUT_* variables and
// the runner's variables (GITHUB_ACTIONS, GITHUB_OUTPUT, RUNNER_TEMP...), against a real registry
// with Basic auth, judged by skopeo.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

let dir: string;
let registry: Registry;
const user = { username: 'ci-bot', password: 'gh-token-0123456789' };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-action-'));
  registry = await startRegistry({ basicAuth: user });
  const busybox = makeBusyboxLayout(join(dir, 'busybox'));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `${user.username}:${user.password}`,
    `oci:${busybox}:latest`, `docker://${registry.host}/base/busybox:1`]);
});
afterAll(async () => {
  await registry.stop();
  removeTree(dir);
});

/** Runs action/entrypoint.sh in a workspace with the runner's variables and these inputs. */
function runAction(name: string, inputs: Record<string, string>) {
  const home = join(dir, `${name}-home`);
  const runnerTemp = join(dir, `${name}-runner-temp`);
  mkdirSync(home, { recursive: true });
  mkdirSync(runnerTemp, { recursive: true });
  const output = join(runnerTemp, 'github-output');
  writeFileSync(output, '');
  const env = {
    PATH: process.env.PATH!, HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), CI: 'true',
    GITHUB_ACTIONS: 'true', GITHUB_OUTPUT: output, GITHUB_WORKSPACE: join(dir, name), RUNNER_TEMP: runnerTemp,
    GITHUB_ACTION_PATH: repoRoot, GITHUB_REPOSITORY: 'org/app', GITHUB_SHA: '0123456789abcdef', RUNNER_OS: 'Linux',
    ...Object.fromEntries(Object.entries(inputs).map(([key, value]) => [`INPUT_${key.toUpperCase().replace(/-/g, '_')}`, value])),
  };
  const result = spawnSync('bash', [join(repoRoot, 'action', 'entrypoint.sh')], { cwd: join(dir, name), env, encoding: 'utf8' });
  return { ...result, outputs: parseOutputs(readFileSync(output, 'utf8')) };
}

/** $GITHUB_OUTPUT's `name=value` and `name<<DELIMITER` forms. */
function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]!);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2]!, i + 1);
      outputs[heredoc[1]!] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (lines[i]!.includes('=')) outputs[lines[i]!.slice(0, lines[i]!.indexOf('='))] = lines[i]!.slice(lines[i]!.indexOf('=') + 1);
  }
  return outputs;
}

describe('GitHub Action', () => {
  test('the entry script logs in, builds, pushes with a registry cache and writes imageid, digest and metadata', () => {
    writeContext(dir, 'ok', {
      'docker/Dockerfile': [
        `FROM ${registry.host}/base/busybox:1`,
        'ARG VERSION',
        'RUN --mount=type=secret,id=token test -s /run/secrets/token && echo "v$VERSION" > /version',
        'COPY app.txt /app.txt',
      ].join('\n'),
      'app.txt': 'app\n',
    });
    const run = runAction('ok', {
      context: '.', file: 'docker/Dockerfile', tags: `${registry.host}/team/app:1, ${registry.host}/team/app:latest`, push: 'true',
      'build-args': 'VERSION=7\n', labels: 'org.opencontainers.image.source=https://github.com/org/app',
      'cache-to': `type=registry,ref=${registry.host}/team/app:buildcache,mode=max`, secrets: 'token=a-secret-value-42',
      registry: registry.host, username: user.username, password: user.password, provenance: 'false',
    });
    expect(run.status, run.stderr).toBe(0);
    const log = run.stdout + run.stderr;
    expect(log).toContain('::group::stage-0');
    expect(log).toContain('::endgroup::');
    for (const secret of [user.password, 'a-secret-value-42']) expect(log).not.toContain(secret);

    expect(run.outputs.imageid).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(run.outputs.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const metadata = JSON.parse(run.outputs.metadata!);
    expect(metadata['containerimage.digest']).toBe(run.outputs.digest);
    expect(metadata['containerimage.config.digest']).toBe(run.outputs.imageid);

    const creds = ['--tls-verify=false', '--creds', `${user.username}:${user.password}`];
    for (const tag of ['1', 'latest']) {
      const inspected = JSON.parse(execFileSync('skopeo', ['inspect', ...creds, `docker://${registry.host}/team/app:${tag}`], { encoding: 'utf8' }));
      expect(inspected.Digest).toBe(run.outputs.digest);
      expect(inspected.Labels['org.opencontainers.image.source']).toBe('https://github.com/org/app');
    }
    const cache = JSON.parse(execFileSync('skopeo', ['inspect', ...creds, '--raw', `docker://${registry.host}/team/app:buildcache`], { encoding: 'utf8' }));
    expect(cache.config.mediaType).toBe('application/vnd.hoist.build-cache.config.v1+json');

    // A second runner (fresh store and home) with the registry cache rebuilds nothing.
    writeContext(dir, 'ok2', { 'docker/Dockerfile': readFileSync(join(dir, 'ok', 'docker', 'Dockerfile'), 'utf8'), 'app.txt': 'app\n' });
    const again = runAction('ok2', {
      file: 'docker/Dockerfile', tags: `${registry.host}/team/app:2`, push: 'true', 'build-args': 'VERSION=7', secrets: 'token=a-secret-value-42',
      labels: 'org.opencontainers.image.source=https://github.com/org/app',
      'cache-from': `type=registry,ref=${registry.host}/team/app:buildcache`, registry: registry.host, username: user.username, password: user.password,
    });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr.match(/CACHED/g)).toHaveLength(2);
    expect(again.outputs.digest).toBe(run.outputs.digest);
  });

  test('a failing step is reported as an ::error annotation on its Dockerfile line', () => {
    writeContext(dir, 'fails', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nRUN echo fine\nRUN echo broken && exit 3\n` });
    const run = runAction('fails', { registry: registry.host, username: user.username, password: user.password });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('::error file=Dockerfile,line=3::RUN exited with code 3');
    expect(readFileSync(join(dir, 'fails-runner-temp', 'github-output'), 'utf8')).toBe('');
  });

  test('platforms: a list makes one index of them', () => {
    writeContext(dir, 'two-platforms', { Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /\n' });
    const run = runAction('two-platforms', { platforms: 'linux/amd64,linux/arm64' });
    expect(run.status, run.stderr).toBe(0);
    const metadata = JSON.parse(run.outputs.metadata!);
    expect(metadata['containerimage.descriptor'].mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(run.outputs.digest).toBe(metadata['containerimage.digest']);
    expect(run.outputs.imageid).toBe(metadata['containerimage.digest']);
  });
});
