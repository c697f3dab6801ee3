// The `hoist` command line, shaped like `docker buildx build` so users need no new habits.
// Exit codes: 0 success, 1 build failure, 2 usage error.
import { readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DockerfileError, hostPlatform, parsePlatform, splitCsv, type Platform } from '../parser/index.ts';
import { pull, pullIndex, push, pushIndex, RegistryClient, removeCredentials, saveCredentials, type ClientOptions } from '../registry/index.ts';
import {
  applyLayers, changedEntries, defaultStoreRoot, familiarReference, INDEX_TYPES, familiarRepository, importOciLayout, Layout, normalizeReference, parseReference, parseSize, prune, readImage, REF_NAME, Store, writeDockerArchive,
  writeFilesystemTar, writeOciLayout, type BlobSource, type Descriptor, type Image,
} from '../layers/index.ts';
import { errorAnnotation, inGithubActions, StageGroups } from './actions.ts';
import { build } from './build.ts';
import { BuildError } from './errors.ts';
import { parseNamedContext, type NamedContext } from './images.ts';
import { BuildCache } from './cache.ts';
import { exportCache, importCache, type CacheSpec } from './cache-transfer.ts';
import { diskFullMessage } from './disk.ts';
import { detectHost } from './host.ts';

class UsageError extends Error {}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP: Record<string, string> = {
  main: `Usage: hoist COMMAND [OPTIONS]

A daemonless, rootless OCI image builder.

Commands:
  build     Build an image from a Dockerfile
  images    List images in the local store
  inspect   Show an image's manifest and config
  save      Write images to an OCI or docker-load tarball
  rmi       Remove image names from the local store
  load      Import images from an OCI image layout (directory or tarball)
  prune     Remove build cache and blobs no tagged image needs
  pull      Pull an image from a registry into the local store
  push      Push an image from the local store to a registry
  login     Save credentials for a registry (checked first)
  logout    Remove a registry's saved credentials

Global options:
  --root DIR   Store location (default $XDG_DATA_HOME/hoist)
  --version    Print the version
  -h, --help   Print help (also: hoist COMMAND --help)`,
  build: `Usage: hoist build [OPTIONS] CONTEXT

Build an image from a Dockerfile.

Options:
  -f, --file FILE          Dockerfile (default CONTEXT/Dockerfile; - reads standard input)
  -t, --tag REF            Name the image (repeatable)
      --build-arg K=V      Set a build-time variable (repeatable)
      --target STAGE       Build this stage
      --label K=V          Add a label to the image (repeatable)
      --platform P         Target platform, e.g. linux/amd64
      --no-cache           Do not use the build cache (results are still cached for later builds)
      --cache-from SPEC    Use a shared cache: type=registry,ref=REF (or just REF) | type=local,src=DIR (repeatable)
      --cache-to SPEC      Write the build's cache: type=registry,ref=REF | type=local,dest=DIR,
                           with mode=min (the final stage, default) or mode=max (every stage), and
                           mounts=true to carry RUN --mount=type=cache contents too
      --no-cache-filter S  Do not use the build cache in stage S (repeatable, or comma-separated)
      --build-context N=V  What FROM N and COPY --from=N mean: oci-layout://DIR[:TAG|@DIGEST] (a layout
                           directory or tarball), docker-image://REF, or a local directory (repeatable)
      --secret SPEC        id=ID,src=FILE or id=ID,env=VAR: a secret for RUN --mount=type=secret (repeatable)
      --timestamp SECONDS  Clamp times in the image to SECONDS since the epoch (default $SOURCE_DATE_EPOCH)
  -o, --output SPEC        type=image[,name=REF][,push=true] | type=registry,name=REF | type=oci,dest=F[,tar=false]
                           | type=docker,dest=F | type=local,dest=DIR | DIR | type=tar,dest=F | - (the file system
                           as a tarball on standard output; dest=- also for oci and docker). Other keys are refused
      --iidfile F          Write the image ID (config digest) to F
      --metadata-file F    Write build results (digests, names) as JSON to F
      --progress MODE      auto, plain, tty or quiet
      --jobs N             Stages built at the same time (default: the number of cores)
      --push               Push the image to every -t REF (boolean flags also take =true or =false)
      --pull               Pull base images even when the store has them
      --insecure-registry HOST  Reach HOST over plain HTTP (loopback hosts always are)
      --tls-ca FILE        Trust the CAs in FILE too (SSL_CERT_FILE is read as well)
  -q, --quiet              Print only the image ID
      --root DIR           Store location`,
  images: 'Usage: hoist images [--root DIR]\n\nList images in the local store.',
  inspect: 'Usage: hoist inspect [--root DIR] REF\n\nShow an image\'s manifest and config as JSON.',
  save: 'Usage: hoist save [--root DIR] [--format oci|docker] -o FILE REF...\n\nWrite images to one OCI image-layout tarball (default; every platform a name has) or a `docker load` archive (one platform each).',
  rmi: 'Usage: hoist rmi [--root DIR] REF...\n\nRemove image names from the local store.',
  push: 'Usage: hoist push [--root DIR] [--insecure-registry HOST]... [--tls-ca FILE] REF [DEST]\n       hoist push [OPTIONS] oci-layout://PATH[:TAG|@DIGEST] DEST\n\nPush an image from the local store to REF, or to DEST; or one from an OCI layout directory or tarball (hoist save) to DEST.',
  pull: 'Usage: hoist pull [--root DIR] [--platform P | --all-platforms] [--insecure-registry HOST]... [--tls-ca FILE] REF\n\nPull an image into the local store: the platform asked for (default this machine\'s), or every platform of an index.',
  login: 'Usage: hoist login -u USER --password-stdin [--tls-ca FILE] REGISTRY\n\nCheck credentials against REGISTRY and save them where docker login does (REGISTRY_AUTH_FILE if set).',
  logout: 'Usage: hoist logout REGISTRY\n\nRemove the saved credentials for REGISTRY.',
  load: 'Usage: hoist load [--root DIR] [-t NAME] PATH[:TAG]\n\nImport images from an OCI image layout, a directory or a tarball (hoist save, buildx --output type=oci,\nskopeo copy ... oci:). TAG picks one image by its ref.name; NAME names it (default: the name the layout gives).',
  prune: `Usage: hoist prune [--all] [--keep-storage SIZE] [--root DIR]

Remove build cache and blobs that no tagged image needs. Tagged images are never touched, nor
anything as new as a build running on the store.

Options:
      --all                Remove the whole build cache (cache records, extracted layers, cache mounts)
      --keep-storage SIZE  Also remove the least recently used cache until it takes at most SIZE
                           (e.g. 10GB, 512MB, 1.5GiB, or bytes)
      --root DIR           Store location`,
};

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = { root: { type: 'string' }, help: { type: 'boolean', short: 'h' } };

function parse(command: string, args: string[], options: Options) {
  const all = { ...COMMON, ...options };
  try {
    return parseArgs({ args: booleanValues(args, all), options: all, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify a positional.*$/s, '')} (see 'hoist ${command} --help')`);
  }
}

/** `--flag=true` and `--flag=false` for boolean flags, as docker's CLI takes them: the flag, or nothing. */
function booleanValues(args: string[], options: Options): string[] {
  const result: string[] = [];
  for (const [i, arg] of args.entries()) {
    if (arg === '--') return [...result, ...args.slice(i)];
    const match = /^--([^=]+)=(.*)$/s.exec(arg);
    if (!match || options[match[1]!]?.type !== 'boolean') {
      result.push(arg);
      continue;
    }
    if (parseBoolean(match[2]!, `--${match[1]}`)) result.push(`--${match[1]}`);
  }
  return result;
}

/** A boolean as Go's strconv.ParseBool reads it (buildx's flags and CSV fields use it). */
function parseBoolean(value: string, what: string): boolean {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  throw new UsageError(`${what}=${value}: expected true or false`);
}

/** The store the command works on: a full disk is reported as the file system that holds it. */
let storeRoot: string | undefined;
const openStore = (root: unknown): Promise<Store> => {
  storeRoot = typeof root === 'string' ? resolve(root) : defaultStoreRoot();
  return Store.open(storeRoot);
};

/**
 * ENOSPC or EDQUOT, however deep it came from (a blob, index.json, a lock, a cache record): one line
 * that says the disk is full and where (the file system of the path the error names, else of the
 * store), keeping the Dockerfile location the error has.
 */
function diskFull(error: Error): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  const quota = code === 'EDQUOT' || /\bEDQUOT\b/.test(error.message);
  if (!quota && code !== 'ENOSPC' && !/\bENOSPC\b/.test(error.message)) return undefined;
  const location = error instanceof BuildError && error.location ? `${error.location.file}:${error.location.line}: ` : '';
  const named = /'(\/[^']+)'/.exec(error.message)?.[1];
  const at = named ?? storeRoot;
  if (!at) return undefined;
  return `${location}${diskFullMessage(at, named ?? `the store ${storeRoot}`, quota)} (${error.message})`;
}

function keyValues(values: unknown, flag: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const value of (values as string[] | undefined) ?? []) {
    const equals = value.indexOf('=');
    if (equals === 0) throw new UsageError(`--${flag} ${value}: expected KEY=VALUE`);
    // `--build-arg NAME` takes NAME's value from the environment, as docker does.
    if (equals < 0) {
      const fromEnv = process.env[value];
      if (fromEnv !== undefined) map.set(value, fromEnv);
      continue;
    }
    map.set(value.slice(0, equals), value.slice(equals + 1));
  }
  return map;
}

interface OutputSpec {
  /** type=registry is type=image with push. */
  type: 'image' | 'oci' | 'docker' | 'local' | 'tar';
  /** A path, or `-` for standard output (the tarball outputs). */
  dest?: string;
  tar: boolean;
  /** name=: names for the image besides -t (quoted, several with commas). */
  names: string[];
  /** type=registry, or type=image,push=true: the names are pushed. */
  push: boolean;
}

/**
 * The keys each --output type takes. Those buildx has and hoist does not honour are refused by
 * name, never ignored; `oci-mediatypes` and `compression` only with the values hoist writes.
 */
const OUTPUT_KEYS: Record<OutputSpec['type'] | 'registry', string[]> = {
  image: ['name', 'push', 'oci-mediatypes', 'compression'],
  registry: ['name', 'push', 'oci-mediatypes', 'compression'],
  oci: ['dest', 'tar', 'name', 'oci-mediatypes', 'compression'],
  docker: ['dest', 'name', 'compression'],
  local: ['dest'],
  tar: ['dest'],
};

/** buildx's `--output` syntax: CSV `key=value` pairs, or a bare path meaning type=local. */
export function parseOutput(spec: string): OutputSpec {
  const output = outputOf(spec);
  // Checked before the build: a tarball is written into any existing non-directory (a device, a
  // FIFO) in place; a directory output needs a directory.
  const existing = output.dest && output.dest !== '-' ? statSync(output.dest, { throwIfNoEntry: false }) : undefined;
  if (existing?.isDirectory() && output.tar) throw new UsageError(`--output ${spec}: ${output.dest} is a directory: a tarball needs a file (or tar=false)`);
  if (existing && !existing.isDirectory() && !output.tar) throw new UsageError(`--output ${spec}: ${output.dest} exists and is not a directory`);
  return output;
}

function outputOf(spec: string): OutputSpec {
  // As buildx: `-o -` is the file system as a tarball on standard output, `-o DIR` a directory.
  if (spec === '-') return { type: 'tar', dest: '-', tar: true, names: [], push: false };
  if (!spec.includes('=')) return { type: 'local', dest: resolve(spec), tar: false, names: [], push: false };
  const fields = csvFields('output', spec);
  const type = fields.get('type');
  if (type !== 'image' && type !== 'oci' && type !== 'docker' && type !== 'local' && type !== 'tar' && type !== 'registry') {
    throw new UsageError(`--output ${spec}: type must be image, registry, oci, docker, tar or local`);
  }
  checkKeys('output', spec, fields, OUTPUT_KEYS[type]);
  onlyValue('output', spec, fields, 'oci-mediatypes', 'true', 'hoist writes OCI media types');
  onlyValue('output', spec, fields, 'compression', 'gzip', 'hoist compresses layers with gzip');
  const dest = fields.get('dest');
  if ((type === 'oci' || type === 'docker' || type === 'local' || type === 'tar') && !dest) throw new UsageError(`--output ${spec}: type=${type} needs dest=PATH`);
  const tar = type !== 'local' && !(fields.has('tar') && !parseBoolean(fields.get('tar')!, `--output ${spec}: tar`));
  if (dest === '-' && !tar) throw new UsageError(`--output ${spec}: standard output (dest=-) takes a tarball only`);
  const push = fields.has('push') ? parseBoolean(fields.get('push')!, `--output ${spec}: push`) : type === 'registry';
  const names = (fields.get('name') ?? '').split(',').map((name) => name.trim()).filter(Boolean).map((name) => reference(name, `--output ${spec}: name`));
  return { type: type === 'registry' ? 'image' : type, ...(dest ? { dest: dest === '-' ? dest : resolve(dest) } : {}), tar, names, push };
}

/** Refuses, by name, the keys of a CSV spec that hoist does not honour. */
function checkKeys(flag: string, spec: string, fields: Map<string, string>, known: string[]): void {
  for (const key of fields.keys()) {
    if (key !== 'type' && !known.includes(key)) throw new UsageError(`--${flag} ${spec}: hoist does not support "${key}" here (it takes ${known.join(', ')})`);
  }
}

/** Refuses a value of `key` other than the one hoist always gives it. */
function onlyValue(flag: string, spec: string, fields: Map<string, string>, key: string, value: string, why: string): void {
  const given = fields.get(key);
  if (given !== undefined && given !== value) throw new UsageError(`--${flag} ${spec}: ${key}=${given} is not supported (${why})`);
}

/** An image name given on the command line, in full form. */
function reference(name: string, what: string): string {
  try {
    return normalizeReference(name);
  } catch (error) {
    throw new UsageError(`${what} ${name}: ${(error as Error).message}`);
  }
}

/**
 * CSV `key=value` fields, as buildx's --output, --secret and --cache-* flags take them (Go's
 * encoding/csv: a field in double quotes may hold commas, and `""` is a quote in it).
 */
function csvFields(flag: string, spec: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const field of csvSplit(flag, spec)) {
    const equals = field.indexOf('=');
    if (equals < 0) throw new UsageError(`--${flag} ${spec}: "${field}" is not key=value`);
    const key = field.slice(0, equals).trim().toLowerCase();
    if (fields.has(key)) throw new UsageError(`--${flag} ${spec}: "${key}" is given twice`);
    fields.set(key, field.slice(equals + 1).trim());
  }
  return fields;
}

function csvSplit(flag: string, spec: string): string[] {
  try {
    return splitCsv(spec);
  } catch (error) {
    throw new UsageError(`--${flag} ${spec}: ${(error as Error).message}`);
  }
}

/** buildx's cache syntax: `type=registry,ref=R[,mode=max][,mounts=true]`, `type=local,dest=D` / `src=D`, or a bare ref. */
function parseCacheSpec(spec: string, flag: 'cache-to' | 'cache-from'): CacheSpec {
  if (!spec.includes('=')) return { type: 'registry', where: spec, mode: 'min', mounts: false, ignoreError: false };
  const fields = csvFields(flag, spec);
  const type = fields.get('type') ?? 'registry';
  if (type !== 'registry' && type !== 'local') throw new UsageError(`--${flag} ${spec}: type must be registry or local`);
  const pathKey = type === 'registry' ? 'ref' : flag === 'cache-to' ? 'dest' : 'src';
  checkKeys(flag, spec, fields, flag === 'cache-to' ? [pathKey, 'mode', 'mounts', 'ignore-error', 'oci-mediatypes', 'image-manifest', 'compression'] : [pathKey]);
  onlyValue(flag, spec, fields, 'oci-mediatypes', 'true', 'hoist writes OCI media types');
  onlyValue(flag, spec, fields, 'image-manifest', 'true', 'hoist writes the cache as an OCI image manifest');
  onlyValue(flag, spec, fields, 'compression', 'gzip', 'hoist compresses layers with gzip');
  const where = fields.get(pathKey);
  if (!where) throw new UsageError(`--${flag} ${spec}: type=${type} needs ${pathKey}=${type === 'registry' ? 'REF' : 'DIR'}`);
  const mode = fields.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new UsageError(`--${flag} ${spec}: mode must be min or max`);
  const flagValue = (key: string): boolean => fields.has(key) && parseBoolean(fields.get(key)!, `--${flag} ${spec}: ${key}`);
  return { type, where: type === 'local' ? resolve(where) : where, mode, mounts: flagValue('mounts'), ignoreError: flagValue('ignore-error') };
}

/** buildx's --secret: id=ID with src=FILE, env=VAR, or (neither) the variable named ID. */
async function readSecrets(specs: string[]): Promise<Map<string, Buffer>> {
  const secrets = new Map<string, Buffer>();
  for (const spec of specs) {
    const fields = csvFields('secret', spec);
    checkKeys('secret', spec, fields, ['id', 'src', 'source', 'env']);
    const id = fields.get('id');
    if (!id) throw new UsageError(`--secret ${spec}: needs id=ID`);
    const kind = fields.get('type');
    if (kind !== undefined && kind !== 'file' && kind !== 'env') throw new UsageError(`--secret ${spec}: type must be file or env`);
    const file = fields.get('src') ?? fields.get('source') ?? (kind === 'file' ? id : undefined);
    const variable = fields.get('env') ?? (file === undefined ? id : undefined);
    if (file !== undefined) {
      secrets.set(id, await readFile(resolve(file)).catch(() => {
        throw new UsageError(`--secret ${spec}: cannot read ${file}`);
      }));
    } else if (process.env[variable!] !== undefined) secrets.set(id, Buffer.from(process.env[variable!]!));
    else throw new UsageError(`--secret ${spec}: the environment has no ${variable}`);
  }
  return secrets;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function buildCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('build', args, {
    file: { type: 'string', short: 'f' }, tag: { type: 'string', short: 't', multiple: true },
    'build-arg': { type: 'string', multiple: true }, target: { type: 'string' }, label: { type: 'string', multiple: true },
    platform: { type: 'string' }, 'no-cache': { type: 'boolean' }, 'no-cache-filter': { type: 'string', multiple: true }, timestamp: { type: 'string' },
    secret: { type: 'string', multiple: true }, 'build-context': { type: 'string', multiple: true }, 'cache-from': { type: 'string', multiple: true }, 'cache-to': { type: 'string', multiple: true }, output: { type: 'string', short: 'o', multiple: true },
    iidfile: { type: 'string' }, 'metadata-file': { type: 'string' }, progress: { type: 'string' }, quiet: { type: 'boolean', short: 'q' },
    jobs: { type: 'string' }, push: { type: 'boolean' }, pull: { type: 'boolean' }, ...REGISTRY_FLAGS,
  });
  if (values.help) return help('build');
  if (positionals.length !== 1) throw new UsageError(`build takes exactly one CONTEXT directory, got ${positionals.length} (see 'hoist build --help')`);
  const contextDir = resolve(positionals[0]!);
  const contextInfo = await stat(contextDir).catch(() => undefined);
  if (!contextInfo?.isDirectory()) throw new UsageError(`context "${positionals[0]}" is not a directory`);
  const progress = (values.progress as string | undefined) ?? 'auto';
  if (!['auto', 'plain', 'tty', 'quiet'].includes(progress)) throw new UsageError(`--progress ${progress}: use auto, plain, tty or quiet`);
  const quiet = values.quiet === true || progress === 'quiet';
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) throw new UsageError(`--jobs ${values.jobs}: expected a whole number above 0`);
  let platform: Platform | undefined;
  if (values.platform !== undefined) {
    try {
      platform = parsePlatform(values.platform as string);
    } catch (error) {
      throw new UsageError(`--platform: ${(error as Error).message}`);
    }
  }
  const tags = ((values.tag as string[] | undefined) ?? []).map((tag) => reference(tag, '-t'));
  const outputs = ((values.output as string[] | undefined) ?? []).map(parseOutput);
  // --push is buildx's shorthand for --output type=registry; -t names what an output leaves unnamed.
  if (outputs.length === 0 && tags.length > 0) outputs.push({ type: 'image', tar: false, names: [], push: false });
  if (values.push === true && !outputs.some((output) => output.type === 'image')) outputs.push({ type: 'image', tar: false, names: [], push: true });
  if (values.push === true) for (const output of outputs.filter((each) => each.type === 'image')) output.push = true;
  const namesOf = (output: OutputSpec): string[] => (output.names.length > 0 ? output.names : tags);
  // A tarball on standard output: then the result line goes to stderr.
  const toStdout = outputs.filter((output) => output.dest === '-').length;
  if (toStdout > 1) throw new UsageError('only one --output can write to standard output');
  if (toStdout > 0 && process.stdout.isTTY) throw new UsageError('refusing to write a tarball to a terminal: redirect standard output to a file or a pipe');
  const destination = (output: OutputSpec): string | Writable => (output.dest === '-' ? process.stdout : output.dest!);
  for (const output of outputs) {
    if (output.push && namesOf(output).length === 0) throw new UsageError('pushing needs a name to push to: -t REF, or name= in --output');
  }
  const registry = registryOptions(values);

  const fileOption = values.file as string | undefined;
  const dockerfilePath = fileOption === undefined ? resolve(contextDir, 'Dockerfile') : fileOption === '-' ? undefined : resolve(fileOption);
  let text: string;
  try {
    text = dockerfilePath === undefined ? await readStdin() : await readFile(dockerfilePath, 'utf8');
  } catch {
    throw new UsageError(`cannot read the Dockerfile ${dockerfilePath}`);
  }

  const cacheFrom = ((values['cache-from'] as string[] | undefined) ?? []).map((spec) => parseCacheSpec(spec, 'cache-from'));
  const cacheTo = ((values['cache-to'] as string[] | undefined) ?? []).map((spec) => parseCacheSpec(spec, 'cache-to'));
  const secrets = await readSecrets((values.secret as string[] | undefined) ?? []);
  const buildContexts = new Map<string, NamedContext>();
  for (const [name, value] of keyValues(values['build-context'], 'build-context')) {
    try {
      buildContexts.set(name, parseNamedContext(value, process.cwd()));
    } catch (error) {
      throw new UsageError(`--build-context ${name}=${value}: ${(error as Error).message}`);
    }
  }

  const store = await openStore(values.root);
  // In GitHub Actions each stage's lines fold into a group of their own.
  const groups = inGithubActions() && !quiet ? new StageGroups((text) => process.stderr.write(text)) : undefined;
  const log = quiet ? () => undefined : groups ? (line: string) => groups.line(line) : (line: string) => process.stderr.write(`${line}\n`);
  const sources = [];
  for (const spec of cacheFrom) {
    const source = await importCache(store, spec, registry, log);
    if (source) sources.push(source);
  }
  const cache = new BuildCache(store, sources);
  const buildArgs = keyValues(values['build-arg'], 'build-arg');
  // Reproducible builds: --timestamp, else SOURCE_DATE_EPOCH as a build arg (buildx) or in the environment.
  const epochText = (values.timestamp as string | undefined) ?? buildArgs.get('SOURCE_DATE_EPOCH') ?? process.env.SOURCE_DATE_EPOCH;
  if (epochText !== undefined && epochText !== '' && !/^\d+$/.test(epochText)) throw new UsageError(`timestamp ${epochText}: expected whole seconds since the epoch`);
  const host = detectHost();
  const image = await build({
    store, host, contextDir, log, output: quiet ? undefined : groups ? (chunk: Buffer) => groups.chunk(chunk) : (chunk: Buffer) => process.stderr.write(chunk), ...(jobs ? { jobs } : {}),
    pull: values.pull === true, registry,
    dockerfile: { text, name: fileOption === '-' ? 'Dockerfile' : (fileOption ?? 'Dockerfile'), ...(dockerfilePath ? { path: dockerfilePath } : {}) },
    buildArgs, target: values.target as string | undefined,
    labels: Object.fromEntries(keyValues(values.label, 'label')), platform,
    ...(epochText ? { timestamp: Number(epochText) } : {}),
    noCache: values['no-cache'] === true, secrets, cache, buildContexts,
    noCacheStages: ((values['no-cache-filter'] as string[] | undefined) ?? []).flatMap((list) => list.split(',')).filter(Boolean),
  }).finally(() => groups?.end());

  const created = image.config.created ?? new Date().toISOString();
  const mtime = Math.floor(Date.parse(created) / 1000);
  for (const output of outputs) {
    const names = namesOf(output);
    if (output.type === 'image') for (const name of names) await store.tag(name, image.descriptor);
    if (output.type === 'oci') await writeOciLayout(store, [{ descriptor: image.descriptor, refs: names }], destination(output), { tar: output.tar, created, mtime });
    if (output.type === 'docker') await writeDockerArchive(store, [{ image, refs: names }], destination(output), { mtime });
    if (output.type === 'local') await applyLayers(store, image.layers, output.dest!, { warn: log, asRoot: host.root });
    if (output.type === 'tar') await exportFilesystem(store, image, destination(output), { warn: log, asRoot: host.root });
    if (output.type !== 'image' || names.length > 0) log(`exported ${output.type}${output.dest ? ` to ${output.dest}` : ''}`);
    if (output.push) for (const name of names) await pushAndReport(store, image, name, registry, log);
  }
  for (const spec of cacheTo) {
    await exportCache(store, cache, spec, registry, log).catch((error: Error) => {
      if (!spec.ignoreError) throw error;
      log(`warning: the cache was not exported (ignore-error=true): ${error.message}`);
    });
  }
  if (outputs.length === 0) log('warning: no output specified: the image is in the store, unnamed (use -t or --output)');
  if (values.iidfile) await writeResult(values.iidfile as string, image.manifest.config.digest);
  if (values['metadata-file']) {
    await writeResult(values['metadata-file'] as string, JSON.stringify({
      'containerimage.digest': image.descriptor.digest,
      'containerimage.config.digest': image.manifest.config.digest,
      'containerimage.descriptor': image.descriptor,
      ...(outputs.some((output) => namesOf(output).length > 0) ? { 'image.name': [...new Set(outputs.flatMap(namesOf))].join(',') } : {}),
    }, null, 2));
  }
  (toStdout > 0 ? process.stderr : process.stdout).write(`${quiet ? image.manifest.config.digest : `built ${image.descriptor.digest}${tags.length ? ` as ${tags.map((t) => familiarReference(parseReference(t))).join(', ')}` : ''}`}\n`);
  return 0;
}

/** The image's file system as one tarball (`type=tar`): its layers applied to a temp dir, then read back. */
async function exportFilesystem(store: Store, image: Image, dest: string | Writable, options: { warn: (line: string) => void; asRoot: boolean }): Promise<void> {
  const dir = await store.tempDir('tar');
  try {
    const root = join(dir, 'root');
    await applyLayers(store, image.layers, root, options);
    await writeFilesystemTar(changedEntries(root, new Map(), { xattrs: new Map(), warn: options.warn }), dest);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const REGISTRY_FLAGS: Options = { 'insecure-registry': { type: 'string', multiple: true }, 'tls-ca': { type: 'string' } };

function registryOptions(values: Record<string, unknown>): ClientOptions {
  const caFile = values['tls-ca'] as string | undefined;
  return { insecureRegistries: (values['insecure-registry'] as string[] | undefined) ?? [], ...(caFile ? { caFile: resolve(caFile) } : {}) };
}

async function pushAndReport(from: Store | BlobSource, image: Image, name: string, registry: ClientOptions, log: (line: string) => void): Promise<string> {
  const ref = parseReference(name);
  const result = await push(from, image, ref, new RegistryClient(ref.domain, registry));
  const mounted = result.mounted > 0 ? `, ${result.mounted} mounted from another repository` : '';
  log(`pushed ${familiarReference(ref)}@${result.digest} (${result.uploaded} of ${image.manifest.layers.length + 1} blobs uploaded${mounted})`);
  return result.digest;
}

async function pushCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('push', args, REGISTRY_FLAGS);
  if (values.help) return help('push');
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError("push takes REF [DEST] (see 'hoist push --help')");
  const [source, target] = positionals as [string, string | undefined];
  const layout = source.startsWith('oci-layout://') ? parseNamedContext(source, process.cwd()) : undefined;
  if (layout && !target) throw new UsageError('pushing from an oci-layout:// source needs a DEST');
  // An image in an OCI layout or tarball (hoist save, a USB stick) goes up straight from it, each
  // blob checked against its digest as it is read; the store is not used.
  const { from, descriptor, image } = layout?.kind === 'layout'
    ? await layoutImage(source, layout.path, layout.select)
    : await openStore(values.root).then(async (store) => ({ from: store, ...(await imageByName(store, source)) }));
  const dest = normalizeReference(target ?? source);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  let digest: string;
  if (INDEX_TYPES.includes(descriptor.mediaType)) {
    // Every platform of an index goes up, then the index.
    const ref = parseReference(dest);
    const result = await pushIndex(from, descriptor, ref, new RegistryClient(ref.domain, registryOptions(values)));
    log(`pushed ${familiarReference(ref)}@${result.digest} (an index: ${result.uploaded} blobs uploaded)`);
    digest = result.digest;
  } else digest = await pushAndReport(from, image, dest, registryOptions(values), log);
  process.stdout.write(`${digest}\n`);
  return 0;
}

/** The one image an OCI layout holds (or the one `select` names), read in place. */
async function layoutImage(source: string, path: string, select: string | undefined): Promise<{ from: Layout; descriptor: Descriptor; image: Image }> {
  const layout = await Layout.open(path);
  const chosen = layout.select(select);
  if (chosen.length > 1) throw new UsageError(`${source} holds ${chosen.length} images: name one with :TAG or @DIGEST`);
  return { from: layout, descriptor: chosen[0]!, image: await readImage(layout, chosen[0]!) };
}

async function pullCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('pull', args, { platform: { type: 'string' }, 'all-platforms': { type: 'boolean' }, ...REGISTRY_FLAGS });
  if (values.help) return help('pull');
  if (positionals.length !== 1) throw new UsageError("pull takes one REF (see 'hoist pull --help')");
  const store = await openStore(values.root);
  const name = normalizeReference(positionals[0]!);
  const ref = parseReference(name);
  const client = new RegistryClient(ref.domain, registryOptions(values));
  if (values['all-platforms'] && values.platform) throw new UsageError('--all-platforms and --platform cannot go together');
  const platform = values.platform ? parsePlatform(values.platform as string) : hostPlatform();
  const descriptor = values['all-platforms'] ? await pullIndex(store, ref, client) : (await pull(store, ref, platform, client)).descriptor;
  if (!ref.digest) await store.tag(name, descriptor);
  process.stdout.write(`${descriptor.digest}\n`);
  return 0;
}

/** The registry a login names: `ghcr.io`, `https://registry.example:5000/`, or `docker.io`. */
const registryHost = (text: string): string => parseReference(`${text.replace(/^https?:\/\//, '').replace(/\/+$/, '')}/x`).domain;

async function loginCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('login', args, {
    username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' }, ...REGISTRY_FLAGS,
  });
  if (values.help) return help('login');
  if (positionals.length !== 1) throw new UsageError("login takes one REGISTRY (see 'hoist login --help')");
  const username = values.username as string | undefined;
  if (!username) throw new UsageError('login needs --username');
  if (values.password !== undefined && values['password-stdin']) throw new UsageError('--password and --password-stdin cannot go together');
  if (values.password !== undefined) process.stderr.write('hoist: warning: --password puts the secret in your shell history and the process list: prefer --password-stdin\n');
  const password = values['password-stdin'] ? (await readStdin()).replace(/\r?\n$/, '') : (values.password as string | undefined);
  if (!password) throw new UsageError('login needs a password: --password-stdin (or --password)');
  const host = registryHost(positionals[0]!);
  const credentials = { username, password };
  await new RegistryClient(host, { ...registryOptions(values), credentials }).checkLogin();
  const file = saveCredentials(host, credentials);
  process.stdout.write(`Login Succeeded (credentials for ${host} saved in ${file})\n`);
  return 0;
}

async function logoutCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('logout', args, {});
  if (values.help) return help('logout');
  if (positionals.length !== 1) throw new UsageError("logout takes one REGISTRY (see 'hoist logout --help')");
  const host = registryHost(positionals[0]!);
  process.stdout.write(removeCredentials(host) ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
  return 0;
}

async function writeResult(path: string, content: string): Promise<void> {
  await mkdir(dirname(resolve(path)), { recursive: true });
  await writeFile(path, content);
}

function help(command: string): number {
  process.stdout.write(`${HELP[command]}\n`);
  return 0;
}

async function imagesCommand(args: string[]): Promise<number> {
  const { values } = parse('images', args, {});
  if (values.help) return help('images');
  const store = await openStore(values.root);
  const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
  for (const descriptor of await store.listTags()) {
    const ref = parseReference(descriptor.annotations![REF_NAME]!);
    const image = await readImage(store, descriptor);
    const size = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    const repository = familiarRepository(ref);
    rows.push([repository, ref.tag ?? '<none>', image.manifest.config.digest.slice(7, 19), image.config.created ?? '', formatSize(size)]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i]!)).join('   ').trimEnd()}\n`);
  return 0;
}

function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) [value, unit] = [value / 1000, unit + 1];
  return `${unit === 0 ? value : value.toFixed(1)}${units[unit]}`;
}

/** A named image: its full ref, what the name points to (a manifest, or an index), and the image (the first platform of an index). */
async function imageByName(store: Store, name: string): Promise<{ ref: string; descriptor: Descriptor; image: Image }> {
  let ref: string;
  try {
    ref = normalizeReference(name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const descriptor = await store.resolve(ref);
  if (!descriptor) throw new BuildError(`no image named ${name} in the store (${store.root})`);
  return { ref, descriptor, image: await readImage(store, descriptor) };
}

async function inspectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('inspect', args, {});
  if (values.help) return help('inspect');
  if (positionals.length !== 1) throw new UsageError("inspect takes one REF (see 'hoist inspect --help')");
  const store = await openStore(values.root);
  const { ref, image } = await imageByName(store, positionals[0]!);
  process.stdout.write(`${JSON.stringify({ Name: ref, Digest: image.descriptor.digest, Id: image.manifest.config.digest, Manifest: image.manifest, Config: image.config }, null, 2)}\n`);
  return 0;
}

async function saveCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('save', args, { output: { type: 'string', short: 'o' }, format: { type: 'string' } });
  if (values.help) return help('save');
  if (positionals.length === 0) throw new UsageError("save needs at least one REF (see 'hoist save --help')");
  if (!values.output) throw new UsageError('save needs -o FILE');
  const format = (values.format as string | undefined) ?? 'oci';
  if (format !== 'oci' && format !== 'docker') throw new UsageError(`--format ${format}: use oci or docker`);
  const store = await openStore(values.root);
  const named = await Promise.all(positionals.map(async (name) => {
    const { ref, image, descriptor } = await imageByName(store, name);
    return { image, descriptor, refs: [ref] };
  }));
  const created = named[0]!.image.config.created ?? new Date().toISOString();
  const mtime = Math.floor(Date.parse(created) / 1000);
  const dest = resolve(values.output as string);
  // An OCI tarball keeps what each name points to, all platforms of an index; docker's format holds one.
  if (format === 'oci') await writeOciLayout(store, named, dest, { tar: true, created, mtime });
  else await writeDockerArchive(store, named, dest, { mtime });
  return 0;
}

async function rmiCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('rmi', args, {});
  if (values.help) return help('rmi');
  if (positionals.length === 0) throw new UsageError("rmi needs at least one REF (see 'hoist rmi --help')");
  const store = await openStore(values.root);
  let status = 0;
  for (const name of positionals) {
    if (await store.untag(normalizeReference(name))) process.stdout.write(`Untagged: ${name}\n`);
    else {
      process.stderr.write(`hoist: no image named ${name}\n`);
      status = 1;
    }
  }
  return status;
}

async function pruneCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('prune', args, { all: { type: 'boolean' }, 'keep-storage': { type: 'string' } });
  if (values.help) return help('prune');
  if (positionals.length > 0) throw new UsageError("prune takes no arguments (see 'hoist prune --help')");
  const keepText = values['keep-storage'] as string | undefined;
  const keepStorage = keepText === undefined ? undefined : parseSize(keepText);
  if (keepText !== undefined && keepStorage === undefined) throw new UsageError(`--keep-storage ${keepText}: expected a size such as 10GB, 512MB, 1.5GiB or bytes`);
  const store = await openStore(values.root);
  const { blobs, records, rootfsDirs, cacheMounts } = await prune(store, { all: values.all === true, ...(keepStorage !== undefined ? { keepStorage } : {}) });
  const counted = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const freed = blobs.bytes + records.bytes + rootfsDirs.bytes + cacheMounts.bytes;
  process.stdout.write(`removed ${counted(blobs.count, 'blob')}, ${counted(records.count, 'cache record')}, ${counted(rootfsDirs.count, 'rootfs dir')}, `
    + `${counted(cacheMounts.count, 'cache mount')}: ${formatSize(freed)} freed\n`);
  return 0;
}

async function loadCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('load', args, { tag: { type: 'string', short: 't' } });
  if (values.help) return help('load');
  if (positionals.length !== 1) throw new UsageError("load takes one PATH (see 'hoist load --help')");
  const [, path = '', tag] = /^(.*?)(?::([\w][\w.-]*))?$/.exec(positionals[0]!)!;
  const store = await openStore(values.root);
  const imported = await importOciLayout(store, resolve(path), tag);
  const name = values.tag as string | undefined;
  if (name !== undefined && imported.length > 1) throw new UsageError(`${path} holds ${imported.length} images: pick one with ${path}:TAG to name it`);
  for (const { descriptor, name: given } of imported) {
    const ref = name ?? given;
    if (ref === undefined) throw new UsageError(`the image in ${path} has no name: give one with -t NAME`);
    // The name points at what the layout lists: every platform of an index stays available.
    await store.tag(normalizeReference(ref), descriptor);
    process.stdout.write(`Loaded image: ${familiarReference(parseReference(normalizeReference(ref)))}\n`);
  }
  return 0;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  build: buildCommand, images: imagesCommand, inspect: inspectCommand, save: saveCommand, rmi: rmiCommand, load: loadCommand,
  push: pushCommand, pull: pullCommand, login: loginCommand, logout: logoutCommand, prune: pruneCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === 'version') {
      process.stdout.write(`hoist ${VERSION}\n`);
      return 0;
    }
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') return help('main');
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined; // not `constructor`
    if (!run) throw new UsageError(`unknown command "${command}" (see 'hoist --help')`);
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`hoist: ${error.message}\n`);
      return 2;
    }
    if (inGithubActions()) process.stderr.write(`${errorAnnotation(error as Error)}\n`);
    if (error instanceof DockerfileError) process.stderr.write(`${error.format()}\n`);
    else if (process.env.HOIST_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    else process.stderr.write(`hoist: ${diskFull(error as Error) ?? (error instanceof BuildError ? error.summary : (error as Error).message)}\n`);
    return 1;
  }
}
