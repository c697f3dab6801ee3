// Images into the store from an OCI image layout, as a directory or a tarball. Every blob is
// checked against its digest on the way in.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseIndex, readImage, referencedBlobs, type Image, type ImageIndex, type PlatformChoice } from './image.ts';
import { REF_NAME, type Descriptor, type Store } from './store.ts';
import { readTar } from './tar.ts';
import { parseDigest, parseJson } from './untrusted.ts';

const BLOB_PATH = /^(?:\.\/)?blobs\/sha256\/([a-f0-9]{64})$/;

export interface Imported {
  /** What the layout's index.json lists: an image's manifest, or an index of several platforms. */
  descriptor: Descriptor;
  /** The image for the platform asked for (or the index's first). */
  image: Image;
  /** The full name the layout gives the image (buildx's io.containerd.image.name), if any. */
  name?: string;
}

/**
 * Imports an OCI layout and returns its images: the one whose ref.name annotation is `select`
 * (a tag) or whose digest it is (`sha256:...`), or every one in the index when none is given. An
 * index is resolved to `platform` (default: its first image).
 */
export async function importOciLayout(store: Store, path: string, select?: string, platform?: PlatformChoice): Promise<Imported[]> {
  const readIndex = (text: Buffer | string): ImageIndex => parseIndex(parseJson(text, `${path}: index.json`), `${path}: index.json`);
  let index: ImageIndex;
  if ((await stat(path)).isDirectory()) {
    index = readIndex(await readFile(join(path, 'index.json')));
    const blob = (digest: string): string => join(path, 'blobs', 'sha256', parseDigest(digest, path).slice(7));
    for (const digest of await referencedBlobs(index.manifests, (digest) => readFile(blob(digest)))) {
      await store.writeBlob(createReadStream(blob(digest)), { expected: digest });
    }
  } else {
    let indexText: Buffer | undefined;
    for await (const { header, body } of readTar(createReadStream(path))) {
      const name = header.path.replace(/^\.\//, '');
      const blob = BLOB_PATH.exec(name);
      if (blob && header.type === 'file') await store.writeBlob(body, { expected: `sha256:${blob[1]}` });
      else if (name === 'index.json') indexText = Buffer.concat(await Array.fromAsync(body));
    }
    if (indexText === undefined) throw new Error(`${path} is not an OCI image layout tarball: it has no index.json`);
    index = readIndex(indexText);
  }
  const chosen = index.manifests.filter((descriptor) => select === undefined || descriptor.annotations?.[REF_NAME] === select || descriptor.digest === select);
  if (chosen.length === 0) throw new Error(`${path} has no image ${select?.startsWith('sha256:') ? select : `tagged "${select}"`}`);
  return Promise.all(chosen.map(async (descriptor) => {
    if (!(await store.hasBlob(descriptor.digest))) throw new Error(`${path} is incomplete: blob ${descriptor.digest} is missing`);
    const name = descriptor.annotations?.['io.containerd.image.name'];
    const { mediaType, digest, size } = descriptor;
    return { descriptor: { mediaType, digest, size }, image: await readImage(store, descriptor, platform), ...(name ? { name } : {}) };
  }));
}
