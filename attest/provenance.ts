// SLSA provenance v1 (https://slsa.dev/provenance/v1) of a build, laid out as BuildKit lays out its
// own (its buildType, and the request as the frontend's arguments), so that what reads BuildKit's
// provenance reads hoist's. mode=min records what was built from; mode=max adds the Dockerfile,
// the build-arg and label values and the secrets' ids. No secret's value is ever in either.
import { createHash } from 'node:crypto';
import type { GitSource } from './git.ts';
import type { PlatformChoice } from '../layers/index.ts';
import type { ResourceDescriptor } from './statement.ts';

export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
const BUILD_TYPE = 'https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md';

export type ProvenanceMode = 'min' | 'max';

/** What a build was asked for, and when it ran. */
export interface BuildRequestRecord {
  /** The Dockerfile's file name (not its path on the host) and text. */
  dockerfile: { name: string; text: string };
  target?: string;
  buildArgs: ReadonlyMap<string, string>;
  labels: Readonly<Record<string, string>>;
  secretIds: string[];
  startedOn: Date;
  finishedOn: Date;
}

export interface BuildRecord extends BuildRequestRecord {
  mode: ProvenanceMode;
  /** runDetails.builder.id: the CI run's URL in GitHub Actions, else hoist's package URL. */
  builderId: string;
  hoistVersion: string;
  invocationId: string;
  builderPlatform: PlatformChoice;
  /** The checkout the context lies in, if any. */
  git?: GitSource;
  /** The images the build used (base and COPY --from), by the digest used. */
  dependencies: ResourceDescriptor[];
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The provenance predicate of a build. */
export function provenance(record: BuildRecord): unknown {
  const max = record.mode === 'max';
  const args: Record<string, string> = {};
  if (record.target) args.target = record.target;
  if (max) {
    for (const [name, value] of record.buildArgs) args[`build-arg:${name}`] = value;
    for (const [name, value] of Object.entries(record.labels)) args[`label:${name}`] = value;
  }
  const { os, architecture, variant } = record.builderPlatform;
  const context: ResourceDescriptor[] = record.git
    ? [{ ...(record.git.url ? { uri: record.git.url } : {}), name: 'context', digest: { gitCommit: record.git.commit, sha1: record.git.commit } }]
    : [];
  return {
    buildDefinition: {
      buildType: BUILD_TYPE,
      externalParameters: {
        configSource: { path: record.dockerfile.name, digest: { sha256: sha256(record.dockerfile.text) } },
        request: {
          frontend: 'dockerfile.v0',
          args,
          ...(max ? { secrets: record.secretIds.map((id) => ({ id, optional: false })) } : {}),
          locals: [{ name: 'context' }, { name: 'dockerfile' }],
        },
      },
      internalParameters: { builderPlatform: [os, architecture, variant].filter(Boolean).join('/') },
      resolvedDependencies: [...context, ...record.dependencies],
    },
    runDetails: {
      builder: { id: record.builderId, version: { hoist: record.hoistVersion } },
      metadata: {
        invocationId: record.invocationId,
        startedOn: record.startedOn.toISOString(),
        finishedOn: record.finishedOn.toISOString(),
        // As BuildKit says: mode=min leaves build-arg and label values out of the request, and a
        // local context (its files, ADD's downloads) is no resolved dependency.
        buildkit_completeness: { request: max || (record.buildArgs.size === 0 && Object.keys(record.labels).length === 0), resolvedDependencies: false },
        ...(max ? {
          buildkit_metadata: {
            source: { infos: [{ filename: record.dockerfile.name, language: 'Dockerfile', data: Buffer.from(record.dockerfile.text).toString('base64'), digest: `sha256:${sha256(record.dockerfile.text)}` }] },
          },
        } : {}),
      },
    },
  };
}
