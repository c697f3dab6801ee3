// Where a build's images come from: stages of this build, named contexts, OCI layouts, the store
// and registries.
import { resolve } from 'node:path';
import { formatPlatform, resolveStageRef, type Dockerfile, type Instruction, type Platform, type PlannedStage } from '../parser/index.ts';
import { applyLayers, changedEntries, importOciLayout, normalizeReference, parseReference, platformMatches, readImage, writeImage, writeLayer, type Image, type Layer } from '../layers/index.ts';
import { pull, RegistryClient, type ClientOptions } from '../registry/index.ts';
import type { BuildContext } from './context.ts';
import { withXattrs } from './copy-step.ts';
import { abbreviate, BuildError } from './errors.ts';
import { once, type BuildSession } from './session.ts';

/**
 * A named build context: an image in an OCI layout (directory or tarball; `select` is a tag or a
 * digest), another image reference, or a local directory.
 */
export type NamedContext =
  | { kind: 'layout'; path: string; select?: string }
  | { kind: 'image'; ref: string }
  | { kind: 'dir'; path: string };

/** `oci-layout://PATH[:TAG|@DIGEST]`, `docker-image://REF`, or a directory path, as buildx takes them. */
export function parseNamedContext(value: string, cwd: string): NamedContext {
  const layout = /^oci-layout:\/\/(.+?)(?:@(sha256:[a-f0-9]{64})|:([\w][\w.-]{0,127}))?$/.exec(value);
  if (layout) return { kind: 'layout', path: resolve(cwd, layout[1]!), ...(layout[2] ?? layout[3] ? { select: layout[2] ?? layout[3] } : {}) };
  if (value.startsWith('docker-image://')) return { kind: 'image', ref: value.slice('docker-image://'.length) };
  if (/^[a-z][\w+.-]*:\/\//.test(value) || /^git@/.test(value)) throw new BuildError(`build context ${value}: only oci-layout://, docker-image:// and directories are supported`);
  return { kind: 'dir', path: resolve(cwd, value) };
}

/**
 * The image, when it is for `platform` (a missing variant matches any): an image of one platform
 * is not used for another, as BuildKit does not. An index was resolved to the platform already.
 */
function forPlatform(image: Image, ref: string, platform: Platform): Image {
  const { os, architecture, variant } = image.config;
  if (!architecture || platformMatches(image.config, platform)) return image;
  const have = [os, architecture, variant].filter(Boolean).join('/');
  throw new BuildError(`${ref} is an image for ${have} only, and this stage is for ${formatPlatform(platform)}: name an image (or an index) that has ${formatPlatform(platform)}`);
}

/** An image a build used from outside it, by the name it was asked for and the manifest used (for provenance). */
export interface UsedImage {
  /** A full image name, or `oci-layout://PATH[:TAG|@DIGEST]`. */
  name: string;
  digest: string;
  platform: Platform;
}

export interface ImageOptions {
  /** Told of each image used from outside the build (a base, COPY --from), as it is resolved. */
  used?: (image: UsedImage) => void;
  /** `--build-context NAME=VALUE`: what FROM NAME and COPY --from=NAME mean instead of an image of that name. */
  buildContexts?: ReadonlyMap<string, NamedContext>;
  /** Pull base images even when the store has them (`--pull`). */
  pull?: boolean;
  /** How registries are reached (plain-HTTP hosts, extra CAs). */
  registry?: ClientOptions;
}

/** What COPY --from names: an image, or a directory (a named context). */
export type CopySource = { image: Image } | { dir: Pick<BuildContext, 'root'> & Partial<BuildContext> };

export class Images {
  private readonly session: BuildSession;
  private readonly options: ImageOptions;
  private readonly dockerfile: Dockerfile;
  /** A stage's image, once it is built. */
  private readonly stageResult: (index: number) => Promise<Image>;
  private readonly layouts = new Map<string, Promise<Image>>();
  private readonly directoryLayers = new Map<string, Promise<Layer>>();
  /** The named contexts' names, lower case: each takes the place of a stage of its name. */
  readonly contextNames: ReadonlySet<string>;
  private readonly roots = new Map<string, Promise<string>>();

  constructor(session: BuildSession, options: ImageOptions, dockerfile: Dockerfile, stageResult: (index: number) => Promise<Image>) {
    this.session = session;
    this.options = options;
    this.contextNames = new Set([...(options.buildContexts?.keys() ?? [])].map((name) => name.toLowerCase()));
    this.dockerfile = dockerfile;
    this.stageResult = stageResult;
  }

  /** The image a stage starts from; none for scratch. */
  async base(planned: PlannedStage): Promise<Image | undefined> {
    if (planned.base.kind === 'scratch') return undefined;
    if (planned.base.kind === 'stage') return this.stageResult(planned.base.index);
    return this.named(planned.base.ref, planned.platform);
  }

  /** The image that `--from` names: a stage of this build, or an image by name (a named context first). */
  async from(planned: PlannedStage, instruction: Instruction, from: string): Promise<Image> {
    const index = resolveStageRef(this.dockerfile, from, planned.stage.index, instruction, this.contextNames);
    return index !== undefined ? this.stageResult(index) : this.named(from, planned.platform);
  }

  /** What COPY --from names: a directory build context (read in place), a stage of this build, or an image. */
  async copySource(planned: PlannedStage, instruction: Instruction, from: string): Promise<CopySource> {
    const named = this.namedContext(from);
    if (named?.kind === 'dir') return { dir: { root: named.path } };
    return { image: await this.from(planned, instruction, from) };
  }

  /** The named context (--build-context) of a name; names match as stage names do, in any case. */
  private namedContext(name: string): NamedContext | undefined {
    const contexts = this.options.buildContexts ?? new Map<string, NamedContext>();
    return contexts.get(name) ?? [...contexts].find(([each]) => each.toLowerCase() === name.toLowerCase())?.[1];
  }

  /** An image's root filesystem, extracted once per build. */
  root(image: Image): Promise<string> {
    return once(this.roots, image.descriptor.digest, async () => {
      const path = await this.session.tempDir('rootfs');
      await applyLayers(this.session.store, image.layers, path, this.session.applyOptions());
      return path;
    });
  }

  /**
   * An image by name: a named context (an OCI layout, an image, or a directory, which is an image of
   * its files as in buildx), or from the store, pulled first when it is not there (or always, with --pull).
   */
  private async named(ref: string, platform: Platform): Promise<Image> {
    const named = this.namedContext(ref);
    // A Dockerfile (perhaps a remote context's) may not read the host's files by naming them: an
    // OCI layout comes only from the command line, as BuildKit has it.
    if (!named && ref.startsWith('oci-layout://')) {
      throw new BuildError(`${abbreviate(ref)}: a Dockerfile cannot name an OCI layout; give it on the command line, as BuildKit takes it: --build-context NAME=oci-layout://PATH, then FROM NAME or COPY --from=NAME`);
    }
    if (named?.kind === 'dir') return this.directoryImage(named.path, platform);
    const name = named?.kind === 'layout' ? `oci-layout://${named.path}${named.select ? `${named.select.startsWith('sha256:') ? '@' : ':'}${named.select}` : ''}` : normalizeReference(named?.kind === 'image' ? named.ref : ref);
    const image = named?.kind === 'layout' ? await this.layout(named.path, named.select, platform) : await this.fromStoreOrRegistry(name, ref, platform);
    this.options.used?.({ name, digest: image.descriptor.digest, platform });
    return image;
  }

  /** A directory's files as an image of one layer (written once a build), for `platform`, with an empty config: FROM a directory context. */
  private async directoryImage(path: string, platform: Platform): Promise<Image> {
    const layer = await once(this.directoryLayers, path, async () => {
      const warn = (message: string): void => this.session.warn(message);
      const entries = changedEntries(path, new Map(), { xattrs: new Map(), warn });
      await withXattrs(entries, warn);
      return writeLayer(this.session.store, this.session.times.clamp(entries));
    });
    const config = { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: {}, rootfs: { type: 'layers' as const, diff_ids: [] } };
    return writeImage(this.session.store, config, [layer]);
  }

  /** An image from the store, pulled first when it is not there (or always, with --pull). */
  private async fromStoreOrRegistry(name: string, ref: string, platform: Platform): Promise<Image> {
    const { store } = this.session;
    const descriptor = this.options.pull ? undefined : await store.resolve(name);
    if (descriptor) return forPlatform(await readImage(store, descriptor, platform), ref, platform);
    this.session.log(`pulling ${name}`);
    const parsed = parseReference(name);
    const image = await pull(store, parsed, platform, new RegistryClient(parsed.domain, this.options.registry));
    if (!parsed.digest) await store.tag(name, image.descriptor);
    return forPlatform(image, ref, platform);
  }

  /** An image from an OCI layout, directory or tarball; its blobs are checked on the way into the store. */
  private layout(path: string, select: string | undefined, platform: Platform): Promise<Image> {
    return once(this.layouts, `${path}\0${select ?? ''}`, async () => {
      const images = await importOciLayout(this.session.store, path, select, platform);
      if (images.length > 1) throw new BuildError(`oci-layout://${path} holds ${images.length} images: name one with :TAG or @DIGEST`);
      return forPlatform(images[0]!.image, `oci-layout://${path}`, platform);
    });
  }
}
