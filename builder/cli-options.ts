// The command line's flags and their values, checked: every key and value is honoured or refused
// (exit 2, naming it), as buildx's flags read them.
import { statSync } from 'node:fs';
import { isIP } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parsePlatform, splitCsv, type Platform } from '../parser/index.ts';
import type { ClientOptions } from '../registry/index.ts';
import { defaultStoreRoot, MAX_LEVEL, normalizeReference, Store, type Compression } from '../layers/index.ts';
import type { ProvenanceMode, SbomFormat } from '../attest/index.ts';
import type { CacheSpec } from './cache-transfer.ts';
import type { StepDefaults } from './run.ts';
import { UsageError } from './errors.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = { root: { type: 'string' }, help: { type: 'boolean', short: 'h' } };

export function parse(command: string, args: string[], options: Options) {
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

/** The root of the store the command works on: a full disk is reported as the file system that holds it. */
let storeRoot: string | undefined;

/** Opens the store at --root (default $XDG_DATA_HOME/hoist), and remembers its root. */
export const openStore = (root: unknown): Promise<Store> => {
  storeRoot = typeof root === 'string' ? resolve(root) : defaultStoreRoot();
  return Store.open(storeRoot);
};

/** The root of the store the command opened, if it opened one. */
export const openedStoreRoot = (): string | undefined => storeRoot;

export function keyValues(values: unknown, flag: string): Map<string, string> {
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

export interface OutputSpec {
  /** type=registry is type=image with push. */
  type: 'image' | 'oci' | 'docker' | 'local' | 'tar';
  /** A path, or `-` for standard output (the tarball outputs). */
  dest?: string;
  tar: boolean;
  /** name=: names for the image besides -t (quoted, several with commas). */
  names: string[];
  /** type=registry, or type=image,push=true: the names are pushed. */
  push: boolean;
  /** compression=, compression-level=, force-compression=, when given. */
  compression?: OutputCompression;
  /** annotation.KEY=V and its kinds (annotation-index.KEY=V, ...). */
  annotations: Annotation[];
  /** --load: type=docker streamed into this CLI's `load` (docker's or podman's), not to a file. */
  load?: string;
}

/** Where an annotation goes, as buildx names the places. */
export type AnnotationLevel = 'manifest' | 'manifest-descriptor' | 'index' | 'index-descriptor';
const ANNOTATION_LEVELS: readonly string[] = ['manifest', 'manifest-descriptor', 'index', 'index-descriptor'];

export interface Annotation {
  level: AnnotationLevel;
  /** Only the image of this platform's (`manifest[linux/amd64]:`). */
  platform?: Platform;
  key: string;
  value: string;
}

/** buildx's --annotation: `[TYPE[,TYPE...][PLATFORM]:]KEY=VALUE`, TYPE manifest (the default), manifest-descriptor, index or index-descriptor. */
export function parseAnnotation(spec: string): Annotation[] {
  const equals = spec.indexOf('=');
  const name = equals < 0 ? '' : spec.slice(0, equals);
  // The part before a colon is types when it has their shape, as buildx reads it (`com.example:x` is a key).
  const colon = name.indexOf(':');
  const parts = colon < 0 ? [] : name.slice(0, colon).split(',').map((part) => /^([a-z-]+)(?:\[([A-Za-z0-9_/.-]+)\])?$/.exec(part));
  const typed = parts.length > 0 && parts.every((part) => part !== null);
  const key = typed ? name.slice(colon + 1) : name;
  if (!/^\S+$/.test(key) || (typed && !parts.every((part) => ANNOTATION_LEVELS.includes(part![1]!)))) {
    throw new UsageError(`--annotation ${spec}: expected [TYPE[,TYPE][PLATFORM]:]KEY=VALUE, TYPE one of ${ANNOTATION_LEVELS.join(', ')}`);
  }
  const value = spec.slice(equals + 1);
  if (!typed) return [{ level: 'manifest', key, value }];
  return parts.map((part) => {
    const platform = part![2] === undefined ? undefined : annotationPlatform(part![2], `--annotation ${spec}`);
    return { level: part![1] as AnnotationLevel, ...(platform ? { platform } : {}), key, value };
  });
}

function annotationPlatform(text: string, what: string): Platform {
  try {
    return parsePlatform(text);
  } catch (error) {
    throw new UsageError(`${what}: ${(error as Error).message}`);
  }
}

/** --output's annotation keys: annotation.KEY, annotation-index.KEY, annotation-manifest[linux/arm64].KEY and the others. */
function outputAnnotation(spec: string, field: string, value: string): Annotation | undefined {
  const match = /^annotation(?:-([a-z-]+))?(?:\[([^\]]+)\])?\.(.+)$/.exec(field);
  if (!match) return undefined;
  const level = match[1] ?? 'manifest';
  if (!ANNOTATION_LEVELS.includes(level)) throw new UsageError(`--output ${spec}: ${field}: the annotation kinds are ${ANNOTATION_LEVELS.join(', ')}`);
  const platform = match[2] === undefined ? undefined : annotationPlatform(match[2], `--output ${spec}: ${field}`);
  return { level: level as AnnotationLevel, ...(platform ? { platform } : {}), key: match[3]!, value };
}

/**
 * The compression of the layers an output gets. As in BuildKit, the layers a build makes are
 * compressed so; layers it reuses (a base image's, cached steps') keep theirs unless `force`.
 */
export interface OutputCompression extends Compression {
  force: boolean;
}

/**
 * The keys each --output type takes. Those buildx has and hoist does not honour are refused by
 * name, never ignored; `oci-mediatypes` only with the value hoist writes.
 */
const COMPRESSION_KEYS = ['compression', 'compression-level', 'force-compression'];
const OUTPUT_KEYS: Record<OutputSpec['type'] | 'registry', string[]> = {
  image: ['name', 'push', 'oci-mediatypes', ...COMPRESSION_KEYS],
  registry: ['name', 'push', 'oci-mediatypes', ...COMPRESSION_KEYS],
  oci: ['dest', 'tar', 'name', 'oci-mediatypes', ...COMPRESSION_KEYS],
  docker: ['dest', 'name', ...COMPRESSION_KEYS],
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
  if (spec === '-') return { type: 'tar', dest: '-', tar: true, names: [], push: false, annotations: [] };
  if (!spec.includes('=')) return { type: 'local', dest: resolve(spec), tar: false, names: [], push: false, annotations: [] };
  const fields = csvFields('output', spec);
  const annotations: Annotation[] = [];
  for (const [key, value] of fields) {
    const annotation = outputAnnotation(spec, key, value);
    if (annotation) annotations.push(annotation);
  }
  const type = fields.get('type');
  if (type !== 'image' && type !== 'oci' && type !== 'docker' && type !== 'local' && type !== 'tar' && type !== 'registry') {
    throw new UsageError(`--output ${spec}: type must be image, registry, oci, docker, tar or local`);
  }
  if (annotations.length > 0 && (type === 'local' || type === 'tar' || type === 'docker')) {
    throw new UsageError(`--output ${spec}: type=${type} ${type === 'docker' ? 'keeps no manifests (docker load reads manifest.json)' : 'holds files, not an image'}: it takes no annotations`);
  }
  checkKeys('output', spec, new Map([...fields].filter(([key]) => !outputAnnotation(spec, key, ''))), OUTPUT_KEYS[type]);
  onlyValue('output', spec, fields, 'oci-mediatypes', 'true', 'hoist writes OCI media types');
  const compression = outputCompression(spec, fields);
  const dest = fields.get('dest');
  if ((type === 'oci' || type === 'docker' || type === 'local' || type === 'tar') && !dest) throw new UsageError(`--output ${spec}: type=${type} needs dest=PATH`);
  const tar = type !== 'local' && !(fields.has('tar') && !parseBoolean(fields.get('tar')!, `--output ${spec}: tar`));
  if (dest === '-' && !tar) throw new UsageError(`--output ${spec}: standard output (dest=-) takes a tarball only`);
  const push = fields.has('push') ? parseBoolean(fields.get('push')!, `--output ${spec}: push`) : type === 'registry';
  const names = (fields.get('name') ?? '').split(',').map((name) => name.trim()).filter(Boolean).map((name) => reference(name, `--output ${spec}: name`));
  return { type: type === 'registry' ? 'image' : type, ...(dest ? { dest: dest === '-' ? dest : resolve(dest) } : {}), tar, names, push, ...(compression ? { compression } : {}), annotations };
}

/** compression=gzip|zstd|uncompressed, compression-level=N, force-compression=BOOL, checked as buildx's. */
function outputCompression(spec: string, fields: Map<string, string>): OutputCompression | undefined {
  if (!COMPRESSION_KEYS.some((key) => fields.has(key))) return undefined;
  const type = fields.get('compression') ?? 'gzip';
  if (type !== 'gzip' && type !== 'zstd' && type !== 'uncompressed') {
    throw new UsageError(`--output ${spec}: compression=${type} is not supported (use gzip, zstd or uncompressed)`);
  }
  const force = fields.has('force-compression') && parseBoolean(fields.get('force-compression')!, `--output ${spec}: force-compression`);
  const levelText = fields.get('compression-level');
  if (levelText === undefined) return { type, force };
  if (type === 'uncompressed') throw new UsageError(`--output ${spec}: compression-level has no meaning with compression=uncompressed`);
  const level = /^\d+$/.test(levelText) ? Number(levelText) : NaN;
  if (!(level <= MAX_LEVEL[type])) throw new UsageError(`--output ${spec}: compression-level=${levelText}: ${type} takes a level from 0 to ${MAX_LEVEL[type]}`);
  return { type, level, force };
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
export function reference(name: string, what: string): string {
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
    // Keys are case-insensitive, except the annotation keys they carry.
    const name = field.slice(0, equals).trim();
    const key = /^annotation[^.]*\./i.test(name) ? name.replace(/^[^.]*/, (kind) => kind.toLowerCase()) : name.toLowerCase();
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
export function parseCacheSpec(spec: string, flag: 'cache-to' | 'cache-from'): CacheSpec {
  if (!spec.includes('=')) return { type: 'registry', where: spec, mode: 'min', mounts: false, ignoreError: false };
  const fields = csvFields(flag, spec);
  const type = fields.get('type') ?? 'registry';
  if (type !== 'registry' && type !== 'local') throw new UsageError(`--${flag} ${spec}: type must be registry or local`);
  const pathKey = type === 'registry' ? 'ref' : flag === 'cache-to' ? 'dest' : 'src';
  checkKeys(flag, spec, fields, flag === 'cache-to' ? [pathKey, 'mode', 'mounts', 'ignore-error', 'oci-mediatypes', 'image-manifest', 'compression'] : [pathKey]);
  onlyValue(flag, spec, fields, 'oci-mediatypes', 'true', 'hoist writes OCI media types');
  onlyValue(flag, spec, fields, 'image-manifest', 'true', 'hoist writes the cache as an OCI image manifest');
  onlyValue(flag, spec, fields, 'compression', 'gzip', 'the cache holds layers as the build made them: choose their compression on --output');
  const where = fields.get(pathKey);
  if (!where) throw new UsageError(`--${flag} ${spec}: type=${type} needs ${pathKey}=${type === 'registry' ? 'REF' : 'DIR'}`);
  const mode = fields.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new UsageError(`--${flag} ${spec}: mode must be min or max`);
  const flagValue = (key: string): boolean => fields.has(key) && parseBoolean(fields.get(key)!, `--${flag} ${spec}: ${key}`);
  return {
    type, where: type === 'local' ? resolve(where) : where, mode, mounts: flagValue('mounts'), ignoreError: flagValue('ignore-error'),
    ...(fields.has('compression') ? { gzipAsked: true } : {}),
  };
}

/** buildx's --secret: id=ID with src=FILE, env=VAR, or (neither) the variable named ID. */
export async function readSecrets(specs: string[]): Promise<Map<string, Buffer>> {
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

/**
 * How every RUN is set up (--network, --add-host, --shm-size, --ulimit, --allow), checked as
 * docker reads them.
 */
export function parseRunDefaults(values: Record<string, unknown>): StepDefaults {
  const network = values.network as string | undefined;
  if (network !== undefined && !['default', 'host', 'none'].includes(network)) {
    throw new UsageError(`--network ${network}: use default, host or none (hoist has no daemon, so no networks of its own)`);
  }
  const allowed = parseEntitlements((values.allow as string[] | undefined) ?? []);
  const addHosts = ((values['add-host'] as string[] | undefined) ?? []).map((spec): [string, string] => {
    // docker's NAME:IP, and NAME=IP (Docker 25): the first separator, as an IPv6 address holds colons.
    const at = /[:=]/.exec(spec)?.index ?? -1;
    const [name, address] = [spec.slice(0, at), spec.slice(at + 1).replace(/^\[(.*)\]$/, '$1')];
    // host-gateway is the host itself: RUN shares the host's network, where that is loopback.
    const resolved = address === 'host-gateway' ? '127.0.0.1' : address;
    if (at <= 0 || /\s/.test(name) || isIP(resolved) === 0) throw new UsageError(`--add-host ${spec}: expected NAME:IP (an IPv4 or IPv6 address, or host-gateway)`);
    return [name, resolved];
  });
  const shmText = values['shm-size'] as string | undefined;
  const shmSize = shmText === undefined ? undefined : memoryBytes(shmText);
  if (shmText !== undefined && !shmSize) throw new UsageError(`--shm-size ${shmText}: expected a size above 0, such as 128m or 1g`);
  const ulimits = ((values.ulimit as string[] | undefined) ?? []).map((spec) => {
    const match = /^([a-z]+)=(-1|\d+)(?::(-1|\d+))?$/.exec(spec);
    if (!match || !ULIMITS.includes(match[1]!)) throw new UsageError(`--ulimit ${spec}: expected NAME=SOFT[:HARD] (-1 for unlimited), NAME one of ${ULIMITS.join(', ')}`);
    const [soft, hard] = [match[2]!, match[3] ?? match[2]!].map((value) => (value === '-1' ? Infinity : Number(value)));
    if (soft! > hard!) throw new UsageError(`--ulimit ${spec}: the soft limit is above the hard one`);
    return `${match[1]}=${match[2]}:${match[3] ?? match[2]}`;
  });
  // As in buildx, --network=host on the command line grants the entitlement itself.
  const hostNetworkAllowed = allowed.includes('network.host') || network === 'host';
  return { ...(network ? { network: network as StepDefaults['network'] } : {}), hostNetworkAllowed, addHosts, ...(shmSize ? { shmSize } : {}), ulimits };
}

/**
 * buildx's --allow: entitlements, the flag repeated or comma-separated. hoist grants network.host;
 * BuildKit's others are refused by name, as hoist cannot give them.
 */
function parseEntitlements(values: string[]): string[] {
  const entitlements = values.flatMap((value) => value.split(',')).map((each) => each.trim()).filter(Boolean);
  for (const entitlement of entitlements) {
    if (entitlement === 'network.host') continue;
    if (entitlement === 'security.insecure') throw new UsageError('--allow security.insecure: hoist cannot give a step the host\'s privileges (its steps run in a user namespace), so RUN --security=insecure is not supported');
    if (entitlement === 'device' || entitlement.startsWith('device=')) throw new UsageError(`--allow ${entitlement}: hoist gives steps no devices of the host's, so RUN --device is not supported`);
    throw new UsageError(`--allow ${entitlement}: unknown entitlement (hoist grants network.host)`);
  }
  return entitlements;
}

/** The resources `docker --ulimit` names. */
const ULIMITS = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** A memory size as docker reads one (go-units RAMInBytes): bytes, or k, m, g, t, p with an optional b, in units of 1024. */
function memoryBytes(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(text);
  if (!match) return undefined;
  return Math.floor(Number(match[1]) * 1024 ** ' kmgtp'.indexOf(match[2]!.toLowerCase() || ' '));
}

/** What a build attests of its images (--attest, --provenance, --sbom). */
export interface AttestationSpec {
  /** `asked`: on the command line, not only the provenance a push has by default. */
  provenance?: { mode: ProvenanceMode; builderId?: string; asked: boolean; inlineOnly: boolean };
  sbom?: { format: SbomFormat; inlineOnly: boolean };
}

/**
 * --attest type=provenance|sbom,... and its shorthands --provenance and --sbom (a boolean, or the
 * keys), as buildx reads them: each type once. Pushing gives mode=min provenance unless it is
 * turned off, as build-push-action does; BUILDX_NO_DEFAULT_ATTESTATIONS turns that default off, as
 * in buildx. `inline-only=true` keeps a statement out of the files written beside a file system.
 */
export function parseAttestations(values: Record<string, unknown>, pushing: boolean): AttestationSpec {
  const specs = ((values.attest as string[] | undefined) ?? []).map((spec) => ({ flag: 'attest', spec, fields: csvFields('attest', spec) }));
  for (const type of ['provenance', 'sbom'] as const) {
    const value = values[type] as string | undefined;
    if (value === undefined) continue;
    const flag = value.includes('=') ? undefined : parseBoolean(value, `--${type}`);
    specs.push({ flag: type, spec: value, fields: flag === undefined ? csvFields(type, `type=${type},${value}`) : new Map([['type', type], ['disabled', String(!flag)]]) });
  }
  const result: AttestationSpec = {};
  const given = new Set<string>();
  for (const { flag, spec, fields } of specs) {
    const type = fields.get('type') ?? '';
    if (type !== 'provenance' && type !== 'sbom') throw new UsageError(`--${flag} ${spec}: type must be provenance or sbom`);
    if (given.has(type)) throw new UsageError(`--${flag} ${spec}: type=${type} is given twice (--${type} and --attest type=${type} name the same attestation)`);
    given.add(type);
    const flagValue = (key: string): boolean => fields.has(key) && parseBoolean(fields.get(key)!, `--${flag} ${spec}: ${key}`);
    const [disabled, inlineOnly] = [flagValue('disabled'), flagValue('inline-only')];
    if (type === 'provenance') {
      checkKeys(flag, spec, fields, ['mode', 'builder-id', 'version', 'inline-only', 'disabled']);
      onlyValue(flag, spec, fields, 'version', 'v1', 'hoist writes SLSA provenance v1');
      const mode = fields.get('mode') ?? 'min';
      if (mode !== 'min' && mode !== 'max') throw new UsageError(`--${flag} ${spec}: mode must be min or max`);
      if (!disabled) result.provenance = { mode, ...(fields.get('builder-id') ? { builderId: fields.get('builder-id') } : {}), asked: true, inlineOnly };
    } else {
      checkKeys(flag, spec, fields, ['format', 'inline-only', 'disabled']);
      const format = fields.get('format') ?? 'spdx';
      if (format !== 'spdx' && format !== 'cyclonedx') throw new UsageError(`--${flag} ${spec}: format must be spdx (as BuildKit's) or cyclonedx`);
      if (!disabled) result.sbom = { format, inlineOnly };
    }
  }
  const noDefault = process.env.BUILDX_NO_DEFAULT_ATTESTATIONS;
  if (!given.has('provenance') && pushing && !(noDefault && parseBoolean(noDefault, 'BUILDX_NO_DEFAULT_ATTESTATIONS'))) {
    result.provenance = { mode: 'min', asked: false, inlineOnly: true };
  }
  return result;
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const REGISTRY_FLAGS: Options = { 'insecure-registry': { type: 'string', multiple: true }, 'tls-ca': { type: 'string' } };

export function registryOptions(values: Record<string, unknown>): ClientOptions {
  const caFile = values['tls-ca'] as string | undefined;
  return { insecureRegistries: (values['insecure-registry'] as string[] | undefined) ?? [], ...(caFile ? { caFile: resolve(caFile) } : {}) };
}

export async function writeResult(path: string, content: string): Promise<void> {
  await mkdir(dirname(resolve(path)), { recursive: true });
  await writeFile(path, content);
}
