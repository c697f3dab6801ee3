// The action's build step: its inputs (INPUT_* variables, which action.yml sets) made into `hoist
// login` and `hoist build` as docker/build-push-action makes them into buildx's, and the results
// written to $GITHUB_OUTPUT as imageid, digest and metadata. Run by hoist's own Node (setup.sh).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const hoist = join(import.meta.dirname, '..', 'bin', 'hoist');

/** The inputs action.yml declares: any other is refused, where build-push-action's runner only warns. */
const INPUTS = [
  'context', 'file', 'tags', 'push', 'load', 'build-args', 'labels', 'annotations', 'target', 'platforms', 'cache-from', 'cache-to',
  'outputs', 'secrets', 'secret-files', 'secret-envs', 'ssh', 'build-contexts', 'no-cache', 'no-cache-filters', 'pull', 'network', 'shm-size', 'ulimit',
  'add-hosts', 'allow', 'provenance', 'sbom', 'attests', 'github-token', 'registry', 'username', 'password',
];

/** The inputs' values, read before the environment is cleared of them. */
const values = new Map(Object.entries(process.env).filter(([name]) => name.startsWith('INPUT_')).map(([name, value]) => [name, value ?? '']));
const input = (name: string): string => (values.get(`INPUT_${name.toUpperCase().replaceAll('-', '_')}`) ?? '').trim();
const isTrue = (name: string): boolean => input(name).toLowerCase() === 'true';

/**
 * A list input as build-push-action reads one: items a line (and a comma, with `commas`), trimmed,
 * blank ones dropped; an item in double quotes keeps its commas and newlines (a PEM key), and `""`
 * in it is a quote.
 */
function listInput(text: string, options: { commas: boolean }): string[] {
  const items: string[] = [];
  let item = '';
  let quoted = false;
  let wasQuoted = false;
  const end = (): void => {
    if (wasQuoted || item.trim() !== '') items.push(wasQuoted ? item : item.trim());
    [item, wasQuoted] = ['', false];
  };
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') item += text[++i];
      else if (char === '"') quoted = false;
      else item += char;
    } else if (char === '"' && item.trim() === '') [quoted, wasQuoted, item] = [true, true, ''];
    else if (char === '\n' || (options.commas && char === ',')) end();
    else if (!(wasQuoted && /\s/.test(char))) item += char;
  }
  end();
  return items;
}

/** What a secret's ID may hold: no comma, quote or '=' that would end it early in `--secret id=ID,...`. */
const SECRET_ID = /^[\w.-]+$/;

/**
 * What is wrong with the `ID=VALUE` items of a secrets input (secrets, secret-files, secret-envs),
 * if anything. An item with no ID=, or an ID that would change the --secret it makes, is named by
 * its position, never its content: a value pasted without its ID would otherwise become the ID,
 * which is on hoist's command line and in mode=max provenance.
 */
function secretItemsProblem(name: string, items: string[]): string | undefined {
  for (const [i, item] of items.entries()) {
    const equals = item.indexOf('=');
    if (equals <= 0) return `${name} item ${i + 1} has no ID=: write it as ID=VALUE`;
    if (!SECRET_ID.test(item.slice(0, equals))) return `${name} item ${i + 1}: its ID may hold only letters, digits, '_', '.' and '-'`;
  }
  return undefined;
}

/** A checked secrets item (see secretItemsProblem) as [ID, VALUE]. */
const splitSecret = (item: string): [id: string, value: string] => [item.slice(0, item.indexOf('=')), item.slice(item.indexOf('=') + 1)];

/** A --secret field whose value may hold commas and quotes: quoted as CSV, which --secret reads. */
const csvField = (key: string, value: string): string => `"${key}=${value.replaceAll('"', '""')}"`;

/** Runs hoist with these arguments and this environment besides the runner's; resolves to its exit code. */
function run(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn(hoist, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'], env: { ...process.env, ...env } });
    child.stdin?.end(stdin);
    child.on('error', fail).on('close', (code) => done(code ?? 1));
  });
}

async function main(): Promise<number> {
  const given = Object.keys(JSON.parse(process.env.HOIST_ACTION_INPUTS || '{}') as Record<string, unknown>);
  // hoist, and what it starts (git, docker load), get none of the inputs' values: they hold the password and the token.
  for (const name of Object.keys(process.env)) if (name.startsWith('INPUT_') || name === 'HOIST_ACTION_INPUTS') delete process.env[name];
  const unknown = given.filter((name) => !INPUTS.includes(name));
  if (unknown.length > 0) {
    process.stdout.write(`::error::hoist's action does not take ${unknown.map((name) => `"${name}"`).join(', ')}: its inputs are ${INPUTS.join(', ')}\n`);
    return 2;
  }
  const lines = (name: string): string[] => listInput(input(name), { commas: false });
  const items = (name: string): string[] => listInput(input(name), { commas: true });
  const secretsProblem = ['secrets', 'secret-files', 'secret-envs'].map((name) => secretItemsProblem(name, lines(name))).find(Boolean);
  if (secretsProblem) {
    process.stdout.write(`::error::${secretsProblem}\n`);
    return 2;
  }
  if (input('registry')) {
    const code = await run(['login', '-u', input('username'), '--password-stdin', input('registry')], {}, input('password'));
    if (code !== 0) return code;
  }
  const work = mkdtempSync(join(process.env.RUNNER_TEMP || tmpdir(), 'hoist-action-'));
  try {
    const args = ['build', '--progress', 'plain', '--iidfile', join(work, 'iid'), '--metadata-file', join(work, 'metadata.json')];
    const add = (flag: string, values: string[]): void => values.forEach((value) => args.push(flag, value));
    add('-f', [input('file')].filter(Boolean));
    add('--target', [input('target')].filter(Boolean));
    for (const flag of ['push', 'load', 'no-cache', 'pull']) if (isTrue(flag)) args.push(`--${flag}`);
    add('--network', [input('network')].filter(Boolean));
    add('--shm-size', [input('shm-size')].filter(Boolean));
    // Attestations as build-push-action makes them: provenance unset is hoist's default when
    // pushing (mode=min), and mode=max for a public repository. The builder ID is the run's URL.
    const pushing = isTrue('push') || lines('outputs').some((output) => /(^|,)\s*(type=registry|push=true)\s*(,|$)/.test(output));
    if (input('provenance')) args.push('--provenance', input('provenance'));
    else if (pushing && process.env.HOIST_REPOSITORY_PRIVATE === 'false') args.push('--provenance', 'mode=max');
    add('--sbom', [input('sbom')].filter(Boolean));
    add('--attest', lines('attests'));
    // Several platforms make one index; RUN for another platform needs QEMU (docker/setup-qemu-action).
    add('--platform', items('platforms'));
    add('-t', items('tags'));
    add('--build-arg', lines('build-args'));
    add('--label', lines('labels'));
    add('--annotation', lines('annotations'));
    add('--cache-from', lines('cache-from'));
    add('--cache-to', lines('cache-to'));
    add('--output', lines('outputs'));
    add('--build-context', lines('build-contexts'));
    add('--no-cache-filter', items('no-cache-filters'));
    add('--ssh', lines('ssh'));
    add('--ulimit', lines('ulimit'));
    add('--add-host', items('add-hosts'));
    add('--allow', items('allow'));
    add('--secret', lines('secret-files').map(splitSecret).map(([id, file]) => `id=${id},${csvField('src', file)}`));
    add('--secret', lines('secret-envs').map(splitSecret).map(([id, variable]) => `id=${id},${csvField('env', variable)}`));
    // Secrets reach hoist through its environment, never its command line; so does the token a
    // git context is fetched with (BuildKit's GIT_AUTH_TOKEN).
    const env: Record<string, string> = {};
    const secrets = lines('secrets').map(splitSecret);
    // As build-push-action gives it: for a git context on the workflow's own server, and that host only.
    const server = new URL(process.env.GITHUB_SERVER_URL || 'https://github.com').host;
    if (input('github-token') && /^https:\/\//.test(input('context')) && new URL(input('context')).host === server) {
      secrets.push([`GIT_AUTH_TOKEN.${server}`, input('github-token')]);
    }
    secrets.forEach(([id, value], i) => {
      env[`HOIST_ACTION_SECRET_${i + 1}`] = value;
      args.push('--secret', `id=${id},env=HOIST_ACTION_SECRET_${i + 1}`);
    });
    const code = await run([...args, input('context') || '.'], env);
    if (code !== 0) return code;
    const metadata = readFileSync(join(work, 'metadata.json'), 'utf8');
    const delimiter = `hoist_${randomBytes(8).toString('hex')}`;
    appendFileSync(process.env.GITHUB_OUTPUT!, [
      `imageid=${readFileSync(join(work, 'iid'), 'utf8').trim()}`,
      `digest=${(JSON.parse(metadata) as Record<string, string>)['containerimage.digest']}`,
      `metadata<<${delimiter}`, metadata, delimiter, '',
    ].join('\n'));
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

process.exitCode = await main();
