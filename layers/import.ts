// Images into the store from an OCI image layout, a directory or a tarball (layout.ts): the blobs
// the chosen images need are copied in, each checked against its digest on the way.
import { readImage, referencedBlobs, type Image, type PlatformChoice } from './image.ts';
import { Layout } from './layout.ts';
import type { Descriptor, Store } from './store.ts';

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
 * index is resolved to `platform` (default: its first image); every platform's blobs are imported.
 */
export async function importOciLayout(store: Store, path: string, select?: string, platform?: PlatformChoice): Promise<Imported[]> {
  const layout = await Layout.open(path);
  const chosen = layout.select(select);
  for (const digest of await referencedBlobs(chosen, layout)) {
    if (!(await store.hasBlob(digest))) await store.writeBlob(layout.open(digest), { expected: digest });
  }
  return Promise.all(chosen.map(async (descriptor) => {
    const name = descriptor.annotations?.['io.containerd.image.name'];
    const { mediaType, digest, size } = descriptor;
    return { descriptor: { mediaType, digest, size }, image: await readImage(store, descriptor, platform), ...(name ? { name } : {}) };
  }));
}
