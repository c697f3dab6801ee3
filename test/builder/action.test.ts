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
function runAction(name: string, inputs: Record<string, string>, extraEnv: Record<string, string> = {}) {
  const home = join(dir, `${name}-home`);
  const runnerTemp = join(dir, `${name}-runner-temp`);
  mkdirSync(home, { recursive: true });
  mkdirSync(runnerTemp, { recursive: true });
  const output = join(runnerTemp, 'github-output');
  writeFileSync(output, '');
  const env = {
    PATH: process.env.PATH!, HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), CI: 'true',
    GITHUB_ACTIONS: 'true', GITHUB_OUTPUT: output, GITHUB_WORKSPACE: join(dir, name), RUNNER_TEMP: runnerTemp,
    GITHUB_ACTION_PATH: repoRoot, GITHUB_REPOSITORY: 'org/app', GITHUB_SERVER_URL: 'https://github.com', GITHUB_RUN_ID: '4242', GITHUB_SHA: '0123456789abcdef', RUNNER_OS: 'Linux',
    ...Object.fromEntries(Object.entries(inputs).map(([key, value]) => [`INPUT_${key.toUpperCase().replace(/-/g, '_')}`, value])),
    ...extraEnv,
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

    // A second runner (fresh store and home) with the registry cache rebuilds nothing. Its push has
    // mode=min provenance by default, as build-push-action's: the digest is the index's, whose image
    // is the first runner's; the builder is the workflow run.
    writeContext(dir, 'ok2', { 'docker/Dockerfile': readFileSync(join(dir, 'ok', 'docker', 'Dockerfile'), 'utf8'), 'app.txt': 'app\n' });
    const again = runAction('ok2', {
      file: 'docker/Dockerfile', tags: `${registry.host}/team/app:2`, push: 'true', 'build-args': 'VERSION=7', secrets: 'token=a-secret-value-42',
      labels: 'org.opencontainers.image.source=https://github.com/org/app',
      'cache-from': `type=registry,ref=${registry.host}/team/app:buildcache`, registry: registry.host, username: user.username, password: user.password, sbom: 'true',
    });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr.match(/CACHED/g)).toHaveLength(2);
    const index = JSON.parse(execFileSync('skopeo', ['inspect', ...creds, '--raw', `docker://${registry.host}/team/app:2`], { encoding: 'utf8' }));
    expect(index.manifests[0].digest).toBe(run.outputs.digest);
    expect(index.manifests[1].annotations['vnd.docker.reference.digest']).toBe(run.outputs.digest);
    expect(again.outputs.digest).toBe(JSON.parse(again.outputs.metadata!)['containerimage.digest']);
    const layout = join(dir, 'ok2-copied');
    execFileSync('skopeo', ['copy', '--all', ...creds.map((each) => each.replace('--tls-verify', '--src-tls-verify').replace('--creds', '--src-creds')), `docker://${registry.host}/team/app:2`, `oci:${layout}:x`]);
    const attestation = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', index.manifests[1].digest.slice(7)), 'utf8'));
    expect(attestation.layers.map((layer: { annotations: Record<string, string> }) => layer.annotations['in-toto.io/predicate-type'])).toEqual(['https://slsa.dev/provenance/v1', 'https://spdx.dev/Document']);
    const provenance = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', attestation.layers[0].digest.slice(7)), 'utf8'));
    expect(provenance.predicate.runDetails.builder.id).toBe('https://github.com/org/app/actions/runs/4242');
    expect(provenance.predicate.buildDefinition.externalParameters.request.args).toEqual({});
  });

  test('in a public repository a push gets mode=max provenance, as build-push-action gives it; attests take --attest lines', () => {
    writeContext(dir, 'public', { Dockerfile: `FROM ${registry.host}/base/busybox:1\nARG FLAVOUR\nRUN echo "$FLAVOUR" > /flavour\n` });
    const ref = `${registry.host}/team/public:1`;
    const run = runAction('public', {
      tags: ref, push: 'true', 'build-args': 'FLAVOUR=mint', attests: 'type=sbom,format=cyclonedx', registry: registry.host, username: user.username, password: user.password,
    }, { HOIST_REPOSITORY_PRIVATE: 'false', GITHUB_RUN_ATTEMPT: '2' });
    expect(run.status, run.stderr).toBe(0);
    const creds = ['--src-tls-verify=false', '--src-creds', `${user.username}:${user.password}`];
    const layout = join(dir, 'public-copied');
    execFileSync('skopeo', ['copy', '--all', ...creds, `docker://${ref}`, `oci:${layout}:x`]);
    const blob = (digest: string) => JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
    const index = blob(JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0].digest);
    const [provenance, sbom] = blob(index.manifests[1].digest).layers.map((layer: { digest: string }) => blob(layer.digest));
    expect(provenance.predicate.buildDefinition.externalParameters.request.args).toEqual({ 'build-arg:FLAVOUR': 'mint' });
    expect(provenance.predicate.runDetails.builder.id).toBe('https://github.com/org/app/actions/runs/4242/attempts/2');
    expect(sbom.predicateType).toBe('https://cyclonedx.org/bom');
  });

  test('the other inputs of build-push-action v6 reach the build: a PEM secret on several lines, secret files and envs, network, hosts, ulimits', () => {
    const pem = '-----BEGIN TEST KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASCAUEwggE9AgEAAkEAq, with a comma\nand a "quote"\n-----END TEST KEY-----';
    writeContext(dir, 'inputs', {
      Dockerfile: [
        'FROM base/busybox:1',
        'RUN --mount=type=secret,id=pem sha256sum /run/secrets/pem | cut -c1-64 > /pem-sum',
        'RUN --mount=type=secret,id=fromfile --mount=type=secret,id=fromenv cat /run/secrets/fromfile /run/secrets/fromenv > /secret-sizes && wc -c < /secret-sizes > /secret-bytes && rm /secret-sizes',
        'RUN grep -c : /proc/net/dev > /interfaces; grep cache.internal /etc/hosts > /hosts; ulimit -n > /nofile',
      ].join('\n'),
      'file-secret.txt': 'from a file\n',
    });
    const inputs = /^inputs:\n([\s\S]*?)^outputs:/m.exec(readFileSync(join(repoRoot, 'action.yml'), 'utf8'))![1]!;
    const declared = [...inputs.matchAll(/^  ([a-z-]+): \{/gm)].map((match) => match[1]!);
    const out = join(dir, 'inputs-out');
    const run = runAction('inputs', {
      secrets: `"pem=${pem.replaceAll('"', '""')}"\nplain=x`, 'secret-files': 'fromfile=file-secret.txt', 'secret-envs': 'fromenv=FROM_ENV',
      network: 'none', 'add-hosts': 'cache.internal:10.9.8.7', ulimit: 'nofile=256:512', outputs: `type=local,dest=${out}`,
      'build-contexts': `base/busybox:1=oci-layout://${join(dir, 'busybox')}:latest`,
    }, { FROM_ENV: 'from the environment', HOIST_ACTION_INPUTS: JSON.stringify(Object.fromEntries(declared.map((name) => [name, '']))) });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    const file = (name: string): string => readFileSync(join(out, name), 'utf8');
    expect(file('pem-sum')).toBe(`${execFileSync('sha256sum', { input: pem, encoding: 'utf8' }).slice(0, 64)}\n`);
    expect(file('secret-bytes').trim()).toBe(String('from a file\n'.length + 'from the environment'.length));
    expect(file('interfaces')).toBe('1\n');
    expect(file('hosts')).toBe('10.9.8.7\tcache.internal\n');
    expect(file('nofile')).toBe('256\n');
    for (const secret of [pem, 'from the environment']) expect(run.stdout + run.stderr).not.toContain(secret);
  });

  test('allow grants network.host, which RUN --network=host needs; a secret-files path may hold commas', () => {
    writeContext(dir, 'allow', {
      Dockerfile: 'FROM base/busybox:1\nRUN --network=host --mount=type=secret,id=fromfile,required cat /run/secrets/fromfile > /got\n',
      'dir,with,commas/secret.txt': 'from a file with commas in its path\n',
    });
    const inputs = { 'build-contexts': `base/busybox:1=oci-layout://${join(dir, 'busybox')}:latest`, 'secret-files': 'fromfile=dir,with,commas/secret.txt' };
    const refused = runAction('allow', inputs);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('::error file=Dockerfile,line=2::RUN --network=host needs the network.host entitlement: add --allow network.host to the command line');
    const out = join(dir, 'allow-out');
    const allowed = runAction('allow', { ...inputs, allow: 'network.host', outputs: `type=local,dest=${out}` });
    expect(allowed.status, allowed.stdout + allowed.stderr).toBe(0);
    expect(readFileSync(join(out, 'got'), 'utf8')).toBe('from a file with commas in its path\n');
  });

  test('a secrets item without ID=, or whose ID would add keys to --secret, is refused by its position and never echoed', () => {
    writeContext(dir, 'secret-items', { Dockerfile: 'FROM scratch\n' });
    const cases: [input: string, value: string, error: string][] = [
      ['secrets', 'token=fine-value\nno-id-value-7f3a', 'secrets item 2 has no ID=: write it as ID=VALUE'],
      ['secrets', '=empty-id-value-2b8d', 'secrets item 1 has no ID='],
      ['secrets', 'a,env=HOME=comma-id-value-9c1e', "secrets item 1: its ID may hold only letters, digits, '_', '.' and '-'"],
      ['secret-files', 'path-without-id-4d2e', 'secret-files item 1 has no ID='],
      ['secret-envs', 'x,src=/etc/shadow=VARIABLE_5a7b', 'secret-envs item 1: its ID may hold only'],
    ];
    for (const [name, value, error] of cases) {
      const run = runAction('secret-items', { [name]: value });
      expect(run.status, value).toBe(2);
      expect(run.stdout).toContain(`::error::${error}`);
      for (const part of value.split(/[\n=,]/).filter((each) => each.length > 8)) expect(run.stdout + run.stderr).not.toContain(part);
    }
  });

  test('an input the action does not declare is an ::error, and a non-Linux runner stops at setup', () => {
    writeContext(dir, 'unknown', { Dockerfile: 'FROM scratch\n' });
    const run = runAction('unknown', {}, { HOIST_ACTION_INPUTS: JSON.stringify({ context: '.', 'cache-form': 'typo' }) });
    expect(run.status).toBe(2);
    expect(run.stdout).toMatch(/^::error::hoist's action does not take "cache-form": its inputs are context, file, /);
    const setup = spawnSync('bash', [join(repoRoot, 'action', 'setup.sh')], { env: { PATH: process.env.PATH!, RUNNER_OS: 'macOS' }, encoding: 'utf8' });
    expect(setup.status).toBe(1);
    expect(setup.stdout).toContain('::error::hoist builds on Linux runners only, and this one runs macOS');
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
