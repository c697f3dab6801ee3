// --cache-to and --cache-from: the build cache carried between machines, in a registry or an OCI
// layout directory. A cache is an OCI manifest whose config lists the records (key → layer, time,
// inputs) and the places they were built, and whose layers are the records' layers (plus the
// contents of cache mounts, with mounts=true). Writers never change a blob in place: two runners
// pushing the same ref each push a whole, valid cache, and the last one wins.
import { createHash } from 'node:crypto';
import {
  excerpt, isCacheKey, isRecord, Layout, layerTar, MediaTypes, normalizeReference, parseDescriptor, parseDigest, parseManifest,
  parseReference, upperDirEntries, writeLayer, writeOciLayout, type CacheRecord, type Layer, type Manifest, type Store,
} from '../layers/index.ts';
import { pullArtifact, pullBlob, push, RegistryClient, type ClientOptions } from '../registry/index.ts';
import type { BuildCache, CacheSource } from './cache.ts';

export const CACHE_CONFIG_TYPE = 'application/vnd.hoist.build-cache.config.v1+json';

interface CacheConfig {
  records: Record<string, CacheRecord>;
  /** Dockerfile place → the key built there, for miss explanations. */
  steps: Record<string, string>;
  /** Cache mount (by its directory name) → a layer of its contents. */
  mounts: Record<string, Layer>;
}

export interface CacheSpec {
  type: 'registry' | 'local';
  /** The registry ref, or the layout directory. */
  where: string;
  /** --cache-to: min exports the records of the final image; max those of every stage. */
  mode: 'min' | 'max';
  /** --cache-to: also export the contents of the cache mounts used. */
  mounts: boolean;
  /** --cache-to: a failed export is a warning, not a failed build. */
  ignoreError: boolean;
  /** --cache-to: compression=gzip was given (the cache holds layers as the build made them). */
  gzipAsked?: boolean;
}

/** A cache's config as read from elsewhere: every key, digest and record checked before use. */
function parseCacheConfig(config: unknown, what: string): CacheConfig {
  if (!isRecord(config) || !isRecord(config.records) || !isRecord(config.steps) || !isRecord(config.mounts)) throw new Error(`${what}: its config is not a hoist cache config`);
  const parseLayer = (value: unknown, at: string): Layer => {
    const { mediaType, digest, size } = parseDescriptor(value, at);
    return { mediaType, digest, size, diffId: parseDigest((value as Record<string, unknown>).diffId, `${at}, diffId`) };
  };
  const parseRecord = (key: string, value: unknown): CacheRecord => {
    const at = `${what}, record ${excerpt(key, 64)}`;
    if (!isCacheKey(key)) throw new Error(`${at}: not a cache key`);
    if (!isRecord(value) || typeof value.created !== 'string' || !isRecord(value.inputs)) throw new Error(`${at}: not a cache record`);
    const { parent, step, env, args, files } = value.inputs;
    if (typeof parent !== 'string' || !isRecord(step) || !isRecord(env) || !isRecord(args) || (files !== undefined && !isRecord(files))) {
      throw new Error(`${at}: its inputs are malformed`);
    }
    return { layer: value.layer === null ? null : parseLayer(value.layer, `${at}, layer`), created: value.created, inputs: value.inputs as unknown as CacheRecord['inputs'] };
  };
  for (const [locator, key] of Object.entries(config.steps)) {
    if (!isCacheKey(key)) throw new Error(`${what}, step ${excerpt(locator, 64)}: not a cache key`);
  }
  return {
    records: Object.fromEntries(Object.entries(config.records).map(([key, value]) => [key, parseRecord(key, value)])),
    steps: config.steps as Record<string, string>,
    mounts: Object.fromEntries(Object.entries(config.mounts).map(([name, value]) => [name, parseLayer(value, `${what}, cache mount ${excerpt(name, 64)}`)])),
  };
}

/** sha256 of a layer's uncompressed tar: a cache's claim about a layer is checked before use. */
async function checkDiffId(store: Store, layer: Layer): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of layerTar(store, layer)) hash.update(chunk);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== layer.diffId) throw new Error(`cache layer ${layer.digest} unpacks to ${actual}, not the ${layer.diffId} its record claims`);
}

/** Reads a cache; undefined (with a note in the log) when there is none yet, as on a first CI run. */
export async function importCache(store: Store, spec: CacheSpec, registry: ClientOptions, log: (line: string) => void): Promise<CacheSource | undefined> {
  const what = `build cache ${spec.where}`;
  let manifest: Manifest | undefined;
  let fetch: (digest: string) => Promise<void>;
  if (spec.type === 'registry') {
    const ref = parseReference(normalizeReference(spec.where));
    const client = new RegistryClient(ref.domain, registry);
    manifest = await pullArtifact(store, ref, client);
    fetch = (digest) => pullBlob(store, ref, digest, client);
  } else {
    // No layout there (no directory, or no index.json in it) is no cache yet.
    const layout = await Layout.open(spec.where, what).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    fetch = async (digest) => {
      if (!(await store.hasBlob(digest))) await store.writeBlob(layout!.stream(digest), { expected: digest });
    };
    const descriptor = layout?.index.manifests[0];
    if (descriptor) {
      await fetch(descriptor.digest);
      manifest = parseManifest(await store.readJson(descriptor.digest), `${what}: manifest ${descriptor.digest}`);
      await fetch(manifest.config.digest);
    }
  }
  if (!manifest) {
    log(`cache: nothing at ${spec.where} yet`);
    return undefined;
  }
  if (manifest.config.mediaType !== CACHE_CONFIG_TYPE) throw new Error(`${spec.where} is not a hoist build cache (its config is ${excerpt(manifest.config.mediaType, 80)})`);
  const config = parseCacheConfig(await store.readJson(manifest.config.digest), what);
  log(`cache: ${Object.keys(config.records).length} records from ${spec.where}`);
  return {
    records: new Map(Object.entries(config.records)),
    steps: new Map(Object.entries(config.steps)),
    mounts: new Map(Object.entries(config.mounts)),
    fetchLayer: async (layer) => {
      await fetch(layer.digest);
      await checkDiffId(store, layer);
    },
  };
}

/** Writes the records this build used (all stages' with mode=max) as a cache at `spec`. */
export async function exportCache(store: Store, cache: BuildCache, spec: CacheSpec, registry: ClientOptions, log: (line: string) => void): Promise<void> {
  const chosen = [...cache.used].filter(([, use]) => spec.mode === 'max' || use.final);
  const config: CacheConfig = {
    records: Object.fromEntries(chosen.map(([key, { record }]) => [key, record])),
    steps: Object.fromEntries(chosen.map(([key, { locator }]) => [locator, key])),
    mounts: {},
  };
  if (spec.mounts) {
    for (const [name, dir] of cache.usedMounts) config.mounts[name] = await writeLayer(store, upperDirEntries(dir, { xattrs: new Map(), warn: log }));
  }
  const layers = new Map<string, Layer>();
  for (const layer of [...Object.values(config.records).map((record) => record.layer), ...Object.values(config.mounts)]) {
    if (layer) layers.set(layer.digest, layer);
  }
  const configDescriptor = await store.writeJson(CACHE_CONFIG_TYPE, config);
  const manifest: Manifest = {
    schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: configDescriptor,
    layers: [...layers.values()].map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  };
  const descriptor = await store.writeJson(MediaTypes.ociManifest, manifest);
  if (spec.type === 'registry') {
    const ref = parseReference(normalizeReference(spec.where));
    await push(store, { descriptor, manifest }, ref, new RegistryClient(ref.domain, registry));
  } else {
    await writeOciLayout(store, [{ descriptor, refs: [] }], spec.where, { tar: false, created: new Date().toISOString(), mtime: 0 });
  }
  const mounts = Object.keys(config.mounts).length;
  log(`cache: ${chosen.length} records, ${layers.size} layers${mounts ? ` (${mounts} cache mounts)` : ''} written to ${spec.where}`);
}
