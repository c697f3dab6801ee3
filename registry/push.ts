// Pushing an image from the store or another source (an OCI layout, a tarball): blobs the registry
// already has are skipped (HEAD), the others uploaded as they are (compressed once, when the layer
// was made), then the manifest.
import { Readable } from 'node:stream';
import pLimit from 'p-limit';
import {
  countedChunks, DigestMismatchError, excerpt, parseIndex, parseJson, readImage, Store, type BlobSource, type ByteRange, type Descriptor, type Image, type Reference,
} from '../layers/index.ts';
import { RegistryClient, RegistryError } from './client.ts';

export interface PushResult {
  digest: string;
  /** Blobs sent; the others were in the registry already, or mounted from another repository. */
  uploaded: number;
  mounted: number;
}

/** Blobs larger than this go up in chunks of this size (PATCH), so no one request is huge. */
export const CHUNK = 64 * 1024 * 1024;

/** The part of an upload URL after /v2/, with `query` added; the registry may give it absolute. */
function uploadPath(client: RegistryClient, location: unknown, query: Record<string, string> = {}): string {
  if (!location) throw new RegistryError(`${client.domain}: the registry answered an upload step without a Location`);
  const url = new URL(String(location), `http://${client.domain}/v2/`);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return url.pathname.replace(/^\/v2\//, '') + url.search;
}

export interface BlobPush {
  /** How the blob got there: it was there, mounted from another repository, or uploaded. */
  how: 'present' | 'mounted' | 'uploaded';
}

/**
 * Starts an upload; when the store knows another repository of this registry that holds the blob,
 * asks for a cross-repository mount first (201: done, 202: an ordinary upload was started).
 */
async function startUpload(client: RegistryClient, store: Store | undefined, repository: string, digest: string): Promise<{ mounted: boolean; location: unknown }> {
  const from = (store ? await store.blobRepositories(digest) : [])
    .filter((source) => source.startsWith(`${client.domain}/`) && source !== `${client.domain}/${repository}`)
    .map((source) => source.slice(client.domain.length + 1))[0];
  const query = from ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}` : '';
  const scope = `repository:${repository}:pull,push${from ? ` repository:${from}:pull` : ''}`;
  const response = await client.send(`${repository}/blobs/uploads/${query}`, { method: 'POST', scope });
  await response.body.dump();
  return { mounted: response.status === 201, location: response.headers.location };
}

async function pushBlob(client: RegistryClient, source: BlobSource, store: Store | undefined, repository: string, digest: string, size: number, scope: string): Promise<BlobPush['how']> {
  const head = await client.send(`${repository}/blobs/${digest}`, { method: 'HEAD', scope, accept: [404] });
  await head.body.dump();
  if (head.status === 200) return 'present';
  const started = await startUpload(client, store, repository, digest);
  if (started.mounted) return 'mounted';
  let location = started.location;
  // A blob (from a layout) that does not match its digest fails the push with that error as it
  // is, not wrapped as a failed request's.
  let mismatch: DigestMismatchError | undefined;
  const body = (range?: ByteRange) => (): Readable => Readable.from(countedChunks(source.stream(digest, range).once('error', (error) => {
    if (error instanceof DigestMismatchError) mismatch = error;
  })));
  try {
    // Large blobs: consecutive PATCH requests, each a range of the (compressed) blob.
    for (let start = 0; size > CHUNK && start < size; start += CHUNK) {
      const end = Math.min(size, start + CHUNK) - 1;
      const chunk = await client.send(uploadPath(client, location), {
        method: 'PATCH', scope,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1), 'content-range': `${start}-${end}` },
        body: body({ start, end }),
      });
      await chunk.body.dump();
      location = chunk.headers.location;
    }
    const whole = size <= CHUNK;
    const done = await client.send(uploadPath(client, location, { digest }), {
      method: 'PUT', scope,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(whole ? size : 0) },
      ...(whole ? { body: body() } : {}),
    });
    await done.body.dump();
  } catch (error) {
    throw mismatch ?? error;
  }
  return 'uploaded';
}

/**
 * Pushes an image from the store or another source to `ref` (its tag, or its digest alone). The
 * store also remembers which repositories hold each blob, so later pushes can mount them.
 */
export async function push(source: BlobSource, image: Pick<Image, 'descriptor' | 'manifest'>, ref: Reference, client = new RegistryClient(ref.domain)): Promise<PushResult> {
  const store = source instanceof Store ? source : undefined;
  const scope = `repository:${ref.path}:pull,push`;
  const blobs = [image.manifest.config, ...image.manifest.layers];
  const limit = pLimit(4);
  const how = await Promise.all(blobs.map((blob) => limit(async () => {
    const result = await pushBlob(client, source, store, ref.path, blob.digest, blob.size, scope);
    await store?.noteBlobRepository(blob.digest, `${client.domain}/${ref.path}`);
    return result;
  })));
  const digest = await putManifest(client, source, ref, image.descriptor);
  return { digest, uploaded: how.filter((h) => h === 'uploaded').length, mounted: how.filter((h) => h === 'mounted').length };
}

/** PUTs a manifest or index (its bytes checked against its digest) at the ref's tag (or its digest), and checks the digest the registry gives it. */
async function putManifest(client: RegistryClient, source: BlobSource, ref: Reference, descriptor: Descriptor): Promise<string> {
  const bytes = await source.read(descriptor.digest);
  const response = await client.send(`${ref.path}/manifests/${ref.tag ?? descriptor.digest}`, {
    method: 'PUT', scope: `repository:${ref.path}:pull,push`,
    headers: { 'content-type': descriptor.mediaType, 'content-length': String(bytes.length) },
    body: () => bytes,
  });
  await response.body.dump();
  const digest = String(response.headers['docker-content-digest'] ?? descriptor.digest);
  if (digest !== descriptor.digest) throw new RegistryError(`registry ${client.domain} stored the manifest as ${excerpt(digest, 80)}, not ${descriptor.digest}`);
  return digest;
}

/** Pushes an index from the store or another source: each platform's image by digest, then the index itself at the ref. */
export async function pushIndex(source: BlobSource, descriptor: Descriptor, ref: Reference, client = new RegistryClient(ref.domain)): Promise<PushResult> {
  const what = `index ${descriptor.digest}`;
  const index = parseIndex(parseJson(await source.read(descriptor.digest), what), what);
  const total = { uploaded: 0, mounted: 0 };
  for (const child of index.manifests) {
    const result = await push(source, await readImage(source, child), { ...ref, tag: undefined, digest: child.digest }, client);
    total.uploaded += result.uploaded;
    total.mounted += result.mounted;
  }
  return { digest: await putManifest(client, source, ref, descriptor), ...total };
}
