// Pulling an image into the store: manifest negotiation, platform choice from an index, and
// every blob checked against its digest before it is kept (a mismatch keeps nothing). A manifest
// is checked before anything in it is used: JSON of the right shape, sha256 digests only.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import {
  choosePlatform, countedChunks, formatReference, isRecord, MediaTypes, parseImageDocument, parseJson, readImage,
  type Descriptor, type Image, type ImageIndex, type Manifest, type PlatformChoice, type Reference, type Store,
} from '../layers/index.ts';
import { readUpTo, RegistryClient, RegistryError } from './client.ts';

const MANIFEST_TYPES = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerManifestList, MediaTypes.dockerManifest];
const SCHEMA1 = /application\/vnd\.docker\.distribution\.manifest\.v1/;
/** The most a manifest may weigh: registries refuse larger ones (4 MiB is the distribution spec's suggestion). */
const MANIFEST_LIMIT = 4 * 1024 * 1024;

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** How errors name a manifest: `registry HOST: manifest for REPO:TAG` (or `REPO@DIGEST`). */
const manifestName = (client: RegistryClient, repository: string, reference: string): string =>
  `registry ${client.domain}: manifest for ${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;

/** Fetches a manifest or index by tag or digest, checks it and keeps it in the store. */
async function fetchManifest(client: RegistryClient, store: Store, repository: string, reference: string, scope: string): Promise<{ descriptor: Descriptor; document: Manifest | ImageIndex }> {
  const what = manifestName(client, repository, reference);
  const { contentType, bytes } = await client.receive(`${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_TYPES.join(', ') }, scope }, async (response) => {
    const { bytes, whole } = await readUpTo(response.body, MANIFEST_LIMIT);
    if (!whole) throw new RegistryError(`${what} is larger than ${MANIFEST_LIMIT / 1024 / 1024} MiB`);
    return { contentType: String(response.headers['content-type'] ?? '').split(';')[0]!.trim(), bytes };
  }).catch((error: unknown) => {
    if (!(error instanceof RegistryError && error.status === 404)) throw error;
    const name = `${client.domain}/${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    throw new RegistryError(`image not found: ${name} (the registry said: ${error.said ?? '404 Not Found'})`, 404, error.said);
  });
  const digest = sha256(bytes);
  if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(`${what}: the registry sent one whose digest is ${digest}: refused`);
  if (SCHEMA1.test(contentType)) throw new RegistryError(`${what} is a Docker schema 1 image, which hoist does not read: push it again with a current tool`);
  const value = parseJson(bytes, what);
  const mediaType = isRecord(value) && typeof value.mediaType === 'string' ? value.mediaType : contentType;
  const document = parseImageDocument(value, mediaType, what);
  await store.writeBlob(Readable.from([bytes]), { expected: digest });
  return { descriptor: { mediaType, digest, size: bytes.length }, document };
}

/** Fetches a manifest that must be an image's, not an index. */
async function fetchImageManifest(client: RegistryClient, store: Store, repository: string, reference: string, scope: string): Promise<{ descriptor: Descriptor; manifest: Manifest }> {
  const { descriptor, document } = await fetchManifest(client, store, repository, reference, scope);
  if ('manifests' in document) throw new RegistryError(`${manifestName(client, repository, reference)} is an index where an image manifest was expected`);
  return { descriptor, manifest: document };
}

/** Fetches a blob into the store; a body cut short or stalled is fetched again (by the client), bytes that lie are never kept. */
async function fetchBlob(client: RegistryClient, store: Store, repository: string, digest: string, scope: string): Promise<void> {
  if (!(await store.hasBlob(digest))) {
    await client.receive(`${repository}/blobs/${digest}`, { scope }, (response) => store.writeBlob(countedChunks(response.body), { expected: digest }));
  }
  await store.noteBlobRepository(digest, `${client.domain}/${repository}`);
}

/** Fetches a manifest's config and layers, four at a time. */
async function fetchImageBlobs(client: RegistryClient, store: Store, repository: string, manifest: Manifest, scope: string): Promise<void> {
  const limit = pLimit(4);
  await Promise.all([manifest.config, ...manifest.layers].map((blob) => limit(() => fetchBlob(client, store, repository, blob.digest, scope))));
}

/** Fetches one blob of `ref`'s repository into the store (checked against its digest). */
export function pullBlob(store: Store, ref: Reference, digest: string, client = new RegistryClient(ref.domain)): Promise<void> {
  return fetchBlob(client, store, ref.path, digest, `repository:${ref.path}:pull`);
}

/**
 * Fetches a manifest that is not an image (a build cache's) and its config into the store; its
 * layers are left for pullBlob. Undefined when the registry has no such tag.
 */
export async function pullArtifact(store: Store, ref: Reference, client = new RegistryClient(ref.domain)): Promise<Manifest | undefined> {
  const scope = `repository:${ref.path}:pull`;
  const reference = ref.digest ?? ref.tag ?? 'latest';
  const head = await client.send(`${ref.path}/manifests/${reference}`, { method: 'HEAD', scope, accept: [404], headers: { accept: MANIFEST_TYPES.join(', ') } });
  await head.body.dump();
  if (head.status === 404) return undefined;
  const { manifest } = await fetchImageManifest(client, store, ref.path, reference, scope);
  await fetchBlob(client, store, ref.path, manifest.config.digest, scope);
  return manifest;
}

/**
 * Pulls `ref` with every platform it has (for hoist save to carry them all) and returns what it
 * names: an index, or a single image's manifest.
 */
export async function pullIndex(store: Store, ref: Reference, client = new RegistryClient(ref.domain)): Promise<Descriptor> {
  const scope = `repository:${ref.path}:pull`;
  const { descriptor, document } = await fetchManifest(client, store, ref.path, ref.digest ?? ref.tag ?? 'latest', scope);
  const manifests = 'manifests' in document
    ? await Promise.all(document.manifests.map(async (child) => (await fetchImageManifest(client, store, ref.path, child.digest, scope)).manifest))
    : [document];
  for (const manifest of manifests) await fetchImageBlobs(client, store, ref.path, manifest, scope);
  return descriptor;
}

/** Pulls `ref` (for `platform` when it names an index) into the store and returns the image. */
export async function pull(store: Store, ref: Reference, platform: PlatformChoice, client = new RegistryClient(ref.domain)): Promise<Image> {
  const scope = `repository:${ref.path}:pull`;
  const named = await fetchManifest(client, store, ref.path, ref.digest ?? ref.tag ?? 'latest', scope);
  const { descriptor, manifest } = 'manifests' in named.document
    ? await fetchImageManifest(client, store, ref.path, choosePlatform(named.document.manifests, platform, formatReference(ref)).digest, scope)
    : { descriptor: named.descriptor, manifest: named.document };
  await fetchImageBlobs(client, store, ref.path, manifest, scope);
  return readImage(store, descriptor);
}
