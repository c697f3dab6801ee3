// What `hoist build` attests of its images: the provenance record made from the command line and
// the images each platform's build used, the SBOM options, and the files BuildKit's local exporter
// writes beside a file system.
import { randomUUID } from 'node:crypto';
import { hostPlatform, type Platform } from '../parser/index.ts';
import {
  attestationsOf, CYCLONEDX_BOM, gitSource, imagePurl, SLSA_PROVENANCE_V1, SPDX_DOCUMENT, type Attestations, type BuildRequestRecord, type ResourceDescriptor,
} from '../attest/index.ts';
import { familiarRepository, parseReference, type AttestationLayer, type Image, type Store } from '../layers/index.ts';
import { VERSION } from './cli-help.ts';
import type { AttestationSpec } from './cli-options.ts';
import type { UsedImage } from './images.ts';

/** What the command line and the build give a provenance record: the request, its times, and the images each platform's build used. */
export interface BuildFacts {
  request: BuildRequestRecord;
  used: Map<string, UsedImage>[];
  contextDir: string;
}

/**
 * The attestations of each image (none when none are asked for): its provenance, with the images
 * its build used, and its SBOM. Subjects are the images' names as package URLs.
 */
export async function attestImages(store: Store, images: { image: Image; platform: Platform }[], names: string[], attest: AttestationSpec, facts: BuildFacts, log: (line: string) => void): Promise<AttestationLayer[][]> {
  if (!attest.provenance && !attest.sbom) return [];
  const git = attest.provenance ? await gitSource(facts.contextDir) : undefined;
  const { used, request } = facts;
  const invocationId = randomUUID();
  // In GitHub Actions the builder is the workflow run's attempt, as build-push-action names it.
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repository, GITHUB_RUN_ID: run, GITHUB_RUN_ATTEMPT: attempt } = process.env;
  const runUrl = server && repository && run ? `${server}/${repository}/actions/runs/${run}${attempt ? `/attempts/${attempt}` : ''}` : undefined;
  const builderId = attest.provenance?.builderId ?? runUrl ?? `pkg:npm/hoist-builder@${VERSION}`;
  const statements = await Promise.all(images.map(({ image, platform }, i) => {
    const subjects = names.map((name) => {
      const ref = parseReference(name);
      return imagePurl(familiarRepository(ref), ref, platform);
    });
    const dependencies: ResourceDescriptor[] = [...used[i]!.values()].map((each) => {
      const ref = each.name.startsWith('oci-layout://') ? undefined : parseReference(each.name);
      return { uri: ref ? imagePurl(familiarRepository(ref), ref, each.platform) : each.name, digest: { sha256: each.digest.replace(/^sha256:/, '') } };
    });
    const what: Attestations = {
      ...(attest.provenance ? {
        provenance: {
          ...request, mode: attest.provenance.mode, builderId, hoistVersion: VERSION, invocationId, builderPlatform: hostPlatform(), dependencies, ...(git ? { git } : {}),
        },
      } : {}),
      ...(attest.sbom ? { sbom: { format: attest.sbom.format, created: request.finishedOn.toISOString().replace(/\.\d+Z$/, 'Z'), hoistVersion: VERSION, warn: log } } : {}),
    };
    return attestationsOf(store, image, subjects, what);
  }));
  // An SBOM that could not be made is left out (attestationsOf says why): with nothing else asked for, the images go without attestations.
  return statements.some((each) => each.length > 0) ? statements : [];
}

/**
 * An image's statements as the files BuildKit's local exporter writes (provenance.json,
 * sbom.spdx.json or sbom.cdx.json): those asked for on the command line and not inline-only.
 */
export function attestationFiles(statements: AttestationLayer[], attest: AttestationSpec): { name: string; content: Buffer }[] {
  const provenanceFile = attest.provenance?.asked && !attest.provenance.inlineOnly;
  const names: Record<string, string | undefined> = {
    [SLSA_PROVENANCE_V1]: provenanceFile ? 'provenance.json' : undefined,
    [SPDX_DOCUMENT]: attest.sbom?.inlineOnly ? undefined : 'sbom.spdx.json',
    [CYCLONEDX_BOM]: attest.sbom?.inlineOnly ? undefined : 'sbom.cdx.json',
  };
  return statements.flatMap(({ predicateType, statement }) => (names[predicateType] ? [{ name: names[predicateType], content: statement }] : []));
}
