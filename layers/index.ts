// Layers, images and the store: content-addressed, streamed, deterministic.
export type { LayerEntry, EntryType } from './entry.ts';
export { entryFromStats, followSymlinks, mtimeOf, OPAQUE_MARKER, parentOf, UnsafeLayerError, WHITEOUT_PREFIX, whiteoutOf } from './entry.ts';
export { LayerBuilder } from './layer-builder.ts';
export { writeLayer, sortEntries, type Layer, type LayerOptions } from './layer.ts';
export { Store, MediaTypes, REF_NAME, acquireLock, defaultStoreRoot, isAlive, type Descriptor } from './store.ts';
export {
  choosePlatform, platformMatches, INDEX_TYPES, parseImageDocument, parseIndex, parseManifest, readImage, writeAttestations, writeImage, writeIndex,
  type AttestationLayer, type Image, type ImageConfig, type ImageIndex, type ContainerConfig, type HistoryEntry, type Manifest, type PlatformChoice,
} from './image.ts';
export { excerpt, isRecord, parseDescriptor, parseDigest, parseJson } from './untrusted.ts';
export { applyLayers, readImageFile } from './extract.ts';
export { compressionOf, layerTar, MAX_LEVEL, recompressed, type Compression, type CompressionType } from './compression.ts';
export { readTar, type TarHeader } from './tar.ts';
export { layerListing, listingPath, type EntryInfo, type LayerListing } from './listing.ts';
export { FileTree, type TreeNode } from './file-tree.ts';
export { writeFilesystemTar, writeOciLayout, writeDockerArchive, type Named, type NamedManifest } from './export.ts';
export { parseReference, formatReference, familiarReference, familiarRepository, normalizeReference, type Reference } from './reference.ts';
export { importOciLayout, type Imported } from './import.ts';
export { DigestMismatchError, type BlobSource, type ByteRange } from './source.ts';
export { Layout } from './layout.ts';
export { upperDirEntries, snapshot, changedEntries, type Below, type Snapshot } from './diff.ts';
export { KeptPaths } from './kept.ts';
export { atomicWrite, chainKey, isCacheKey } from './store.ts';
export { CacheStore, type CacheRecord, type StepInputs } from './cache-records.ts';
export { countedChunks } from './garbage.ts';
export { prune, parseSize, type PruneResult, type PruneOptions, type Removed } from './prune.ts';
