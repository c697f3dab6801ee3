// An image: manifest, config and layers, read from the store or another source, written to the store.
import { Readable } from 'node:stream';
import type { Layer } from './layer.ts';
import type { BlobSource } from './source.ts';
import { MediaTypes, type Descriptor, type Store } from './store.ts';
import { excerpt, isRecord, parseDescriptor, parseDigest, parseJson } from './untrusted.ts';

export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The runtime part of an image config, with the OCI/Docker field names. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Shell?: string[];
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  ArgsEscaped?: boolean;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface Image {
  descriptor: Descriptor;
  manifest: Manifest;
  config: ImageConfig;
  /** The manifest's layers with their diffIDs from the config. */
  layers: Layer[];
}

export interface PlatformChoice {
  os: string;
  architecture: string;
  variant?: string;
}

export const INDEX_TYPES: string[] = [MediaTypes.ociIndex, MediaTypes.dockerManifestList];

/** A document's own mediaType, which must be a string when it is there. */
function ownMediaType(value: Record<string, unknown>, what: string): { mediaType?: string } {
  if (value.mediaType === undefined) return {};
  if (typeof value.mediaType !== 'string') throw new Error(`${what}: its mediaType is not a string`);
  return { mediaType: value.mediaType };
}

/** An index from outside (a registry, an OCI layout), its descriptors checked; `what` names it in errors. */
export function parseIndex(value: unknown, what: string): ImageIndex {
  if (!isRecord(value) || !Array.isArray(value.manifests)) throw new Error(`${what} is not an image index (it has no manifests list)`);
  return { schemaVersion: 2, ...ownMediaType(value, what), manifests: value.manifests.map((child, i) => parseDescriptor(child, `${what}, manifest ${i + 1}`)) };
}

/** An image manifest from outside, its config and layer descriptors checked; `what` names it in errors. */
export function parseManifest(value: unknown, what: string): Manifest {
  if (!isRecord(value) || !Array.isArray(value.layers)) throw new Error(`${what} is not an image manifest (it has no layers list)`);
  return {
    schemaVersion: 2,
    ...ownMediaType(value, what),
    config: parseDescriptor(value.config, `${what}, config`),
    layers: value.layers.map((layer, i) => parseDescriptor(layer, `${what}, layer ${i + 1}`)),
    ...(isRecord(value.annotations) ? { annotations: value.annotations as Record<string, string> } : {}),
  };
}

/** A manifest or an index: an index by its media type (its own, else `mediaType`) or by a manifests field. */
export function parseImageDocument(value: unknown, mediaType: string, what: string): Manifest | ImageIndex {
  const type = isRecord(value) && typeof value.mediaType === 'string' ? value.mediaType : mediaType;
  return INDEX_TYPES.includes(type) || (isRecord(value) && 'manifests' in value) ? parseIndex(value, what) : parseManifest(value, what);
}

/** Whether an image's platform (`have`) serves the one asked for: the same OS and architecture, and a missing variant on either side matches any. */
export function platformMatches(have: { os?: string; architecture?: string; variant?: string }, want: PlatformChoice): boolean {
  return have.os === want.os && have.architecture === want.architecture && (!want.variant || !have.variant || have.variant === want.variant);
}

/** The manifest of an index for `platform` (a missing variant matches any); `what` names the index in the error. */
export function choosePlatform(manifests: Descriptor[], platform: PlatformChoice, what: string): Descriptor {
  const chosen = manifests.find((m) => m.platform !== undefined && platformMatches(m.platform, platform));
  if (chosen) return chosen;
  // Attestation manifests (platform unknown/unknown) are no image of any platform.
  const images = manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
  const have = [...new Set(images.map((m) => (m.platform ? excerpt([m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/'), 40) : '?')))];
  // An index may list thousands: the first few, and how many more.
  const listed = have.length > 10 ? `${have.slice(0, 10).join(', ')}, and ${have.length - 10} more` : have.join(', ');
  throw new Error(`${what} has no image for ${platform.os}/${platform.architecture} (it has ${listed})`);
}

/** A JSON document from `source`, its bytes checked against the digest. */
async function readJson(source: BlobSource, digest: string): Promise<unknown> {
  return parseJson(await source.read(digest), `${source.name} blob ${digest}`);
}

/** Reads an image from the store or another source; an index resolves to the manifest for `platform`. */
export async function readImage(source: BlobSource, descriptor: Descriptor, platform?: PlatformChoice): Promise<Image> {
  const what = `image ${descriptor.digest}`;
  const document = parseImageDocument(await readJson(source, descriptor.digest), descriptor.mediaType, what);
  const mediaType = document.mediaType ?? descriptor.mediaType;
  if ('manifests' in document) {
    const chosen = platform ? choosePlatform(document.manifests, platform, `index ${descriptor.digest}`) : document.manifests[0];
    if (!chosen) throw new Error(`index ${descriptor.digest} lists no image`);
    return readImage(source, chosen, platform);
  }
  const manifest = document;
  const config = await readJson(source, manifest.config.digest) as ImageConfig;
  if (!isRecord(config)) throw new Error(`${what}: its config is not a JSON object`);
  const listed: unknown = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(listed)) throw new Error(`${what}: its config's rootfs.diff_ids is not a list`);
  const diffIds = listed.map((diffId, i) => parseDigest(diffId, `${what}, diff_id ${i + 1}`));
  if (diffIds.length !== manifest.layers.length) {
    throw new Error(`image ${descriptor.digest} is inconsistent: ${manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  const layers = manifest.layers.map((layer, i) => ({ ...layer, diffId: diffIds[i]! }));
  return { descriptor: { mediaType, digest: descriptor.digest, size: descriptor.size }, manifest, config, layers };
}

/** Writes the config and an OCI manifest for these layers. */
export async function writeImage(store: Store, config: ImageConfig, layers: Layer[], annotations?: Record<string, string>): Promise<Image> {
  const withDiffIds: ImageConfig = { ...config, rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) } };
  const configDescriptor = await store.writeJson(MediaTypes.ociConfig, withDiffIds);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: configDescriptor,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    ...(annotations ? { annotations } : {}),
  };
  const descriptor = await store.writeJson(MediaTypes.ociManifest, manifest);
  return { descriptor, manifest, config: withDiffIds, layers };
}

/**
 * Writes an OCI index of images, one a platform, in the order given, then their attestation
 * manifests (writeAttestations), as BuildKit orders them; `annotations` are the index's own, and
 * an image's the annotations of its entry.
 */
export async function writeIndex(
  store: Store, images: { descriptor: Descriptor; platform: PlatformChoice; annotations?: Record<string, string> }[], attestations: Descriptor[] = [], annotations?: Record<string, string>,
): Promise<Descriptor> {
  const manifests = images.map(({ descriptor: { mediaType, digest, size }, platform: { os, architecture, variant }, annotations: entry }) => ({
    mediaType, digest, size, ...(entry ? { annotations: entry } : {}), platform: { architecture, os, ...(variant ? { variant } : {}) },
  }));
  return store.writeJson(MediaTypes.ociIndex, { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [...manifests, ...attestations], ...(annotations ? { annotations } : {}) });
}

/** An in-toto statement, and its predicate's type for the layer's annotation. */
export interface AttestationLayer {
  predicateType: string;
  statement: Buffer;
}

/**
 * Writes an image's attestation manifest as BuildKit does: each statement a layer of its own, a
 * config for no platform. Returns its index entry, which points at the image it attests.
 */
export async function writeAttestations(store: Store, image: Descriptor, statements: AttestationLayer[]): Promise<Descriptor> {
  const layers: Descriptor[] = [];
  for (const { predicateType, statement } of statements) {
    const { digest, size } = await store.writeBlob(Readable.from([statement]));
    layers.push({ mediaType: MediaTypes.inToto, digest, size, annotations: { 'in-toto.io/predicate-type': predicateType } });
  }
  const noPlatform = { architecture: 'unknown', os: 'unknown' };
  const config = await store.writeJson(MediaTypes.ociConfig, { ...noPlatform, config: {}, rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) } });
  const manifest = await store.writeJson(MediaTypes.ociManifest, { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers });
  return {
    ...manifest,
    annotations: { 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
    platform: noPlatform,
  };
}

/** The digests these descriptors need, following indexes to manifests and manifests to config and layers. */
export async function referencedBlobs(roots: Descriptor[], source: BlobSource): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (descriptor: Descriptor): Promise<void> => {
    if (seen.has(descriptor.digest)) return;
    seen.add(descriptor.digest);
    if (!descriptor.mediaType.includes('manifest') && !descriptor.mediaType.includes('index')) return;
    const what = `manifest ${descriptor.digest}`;
    const document = parseImageDocument(parseJson(await source.read(descriptor.digest), what), descriptor.mediaType, what);
    for (const child of 'manifests' in document ? document.manifests : [document.config, ...document.layers]) await visit(child);
  };
  for (const descriptor of roots) await visit(descriptor);
  return [...seen];
}
