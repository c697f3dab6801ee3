// Pulling an image into the store: manifest negotiation, platform choice from an index, and
// every blob checked against its digest before it is kept (a mismatch keeps nothing).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import {
  choosePlatform, DigestMismatchError, formatReference, INDEX_TYPES, MediaTypes, readImage,
  type Descriptor, type Image, type Manifest, type PlatformChoice, type Reference, type Store,
} from '../layers/index.ts';
import { RegistryClient, RegistryError } from './client.ts';

const MANIFEST_TYPES = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerManifestList, MediaTypes.dockerManifest];
const SCHEMA1 = /application\/vnd\.docker\.distribution\.manifest\.v1/;

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Fetches a manifest or index by tag or digest into the store; returns its descriptor. */
async function fetchManifest(client: RegistryClient, store: Store, repository: string, reference: string, scope: string): Promise<Descriptor> {
  const response = await client.send(`${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_TYPES.join(', ') }, scope });
  const bytes = Buffer.from(await response.body.arrayBuffer());
  const mediaType = String(response.headers['content-type'] ?? '').split(';')[0]!.trim() || (JSON.parse(bytes.toString()) as { mediaType?: string }).mediaType || '';
  if (SCHEMA1.test(mediaType)) throw new RegistryError(`${repository}:${reference} is a Docker schema 1 image, which hoist does not read: push it again with a current tool`);
  const digest = sha256(bytes);
  if (reference.startsWith('sha256:') && digest !== reference) {
    throw new RegistryError(`the manifest the registry sent for ${repository}@${reference} has the digest ${digest}: refused`);
  }
  await store.writeBlob(Readable.from([bytes]), { expected: digest });
  return { mediaType, digest, size: bytes.length };
}

const BLOB_ATTEMPTS = 4;

/** Fetches a blob into the store; a body cut short is fetched again, bytes that lie never kept. */
async function fetchBlob(client: RegistryClient, store: Store, repository: string, digest: string, scope: string): Promise<void> {
  await store.noteBlobSource(digest, `${client.domain}/${repository}`);
  for (let attempt = 1; !(await store.hasBlob(digest)); attempt++) {
    const response = await client.send(`${repository}/blobs/${digest}`, { scope });
    try {
      await store.writeBlob(response.body, { expected: digest });
    } catch (error) {
      if (error instanceof DigestMismatchError || attempt >= BLOB_ATTEMPTS) throw error;
    }
  }
}

/** Fetches a stored manifest's config and layers, four at a time. */
async function fetchImageBlobs(client: RegistryClient, store: Store, repository: string, manifestDigest: string, scope: string): Promise<void> {
  const { config, layers } = await store.readJson<{ config: Descriptor; layers: Descriptor[] }>(manifestDigest);
  const limit = pLimit(4);
  await Promise.all([config, ...layers].map((blob) => limit(() => fetchBlob(client, store, repository, blob.digest, scope))));
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
  const head = await client.send(`${ref.path}/manifests/${ref.digest ?? ref.tag ?? 'latest'}`, { method: 'HEAD', scope, accept: [404], headers: { accept: MANIFEST_TYPES.join(', ') } });
  await head.body.dump();
  if (head.status === 404) return undefined;
  const descriptor = await fetchManifest(client, store, ref.path, ref.digest ?? ref.tag ?? 'latest', scope);
  const manifest = await store.readJson<Manifest>(descriptor.digest);
  await fetchBlob(client, store, ref.path, manifest.config.digest, scope);
  return manifest;
}

/**
 * Pulls `ref` with every platform it has (for hoist save to carry them all) and returns what it
 * names: an index, or a single image's manifest.
 */
export async function pullIndex(store: Store, ref: Reference, client = new RegistryClient(ref.domain)): Promise<Descriptor> {
  const scope = `repository:${ref.path}:pull`;
  const descriptor = await fetchManifest(client, store, ref.path, ref.digest ?? ref.tag ?? 'latest', scope);
  const manifests = INDEX_TYPES.includes(descriptor.mediaType)
    ? await Promise.all((await store.readJson<{ manifests: Descriptor[] }>(descriptor.digest)).manifests.map((child) => fetchManifest(client, store, ref.path, child.digest, scope)))
    : [descriptor];
  for (const manifest of manifests) await fetchImageBlobs(client, store, ref.path, manifest.digest, scope);
  return descriptor;
}

/** Pulls `ref` (for `platform` when it names an index) into the store and returns the image. */
export async function pull(store: Store, ref: Reference, platform: PlatformChoice, client = new RegistryClient(ref.domain)): Promise<Image> {
  const scope = `repository:${ref.path}:pull`;
  let descriptor = await fetchManifest(client, store, ref.path, ref.digest ?? ref.tag ?? 'latest', scope);
  if (INDEX_TYPES.includes(descriptor.mediaType)) {
    const index = await store.readJson<{ manifests: Descriptor[] }>(descriptor.digest);
    const chosen = choosePlatform(index.manifests, platform, formatReference(ref));
    descriptor = await fetchManifest(client, store, ref.path, chosen.digest, scope);
  }
  await fetchImageBlobs(client, store, ref.path, descriptor.digest, scope);
  return readImage(store, descriptor);
}
