// Supply-chain attestations of a build's images, attached as BuildKit attaches them: SLSA
// provenance and an SPDX SBOM, each an in-toto statement about one image manifest.
import { excerpt, type AttestationLayer, type Image, type Store } from '../layers/index.ts';
import { provenance, SLSA_PROVENANCE_V1, type BuildRecord } from './provenance.ts';
import { imageContents } from './scan.ts';
import { SPDX_DOCUMENT, spdxDocument } from './spdx.ts';
import { CYCLONEDX_BOM, cycloneDxDocument } from './cyclonedx.ts';
import { statement } from './statement.ts';

export { gitSource, type GitSource } from './git.ts';
export { imagePurl, type ResourceDescriptor } from './statement.ts';
export { SLSA_PROVENANCE_V1, type BuildRecord, type BuildRequestRecord, type ProvenanceMode } from './provenance.ts';
export { SPDX_DOCUMENT } from './spdx.ts';
export { CYCLONEDX_BOM } from './cyclonedx.ts';

export type SbomFormat = 'spdx' | 'cyclonedx';

/** How many of the things an SBOM leaves out are named, one warning each; the rest are counted in one more. */
const SKIPPED_SHOWN = 20;

export interface Attestations {
  /** The build's record, for SLSA provenance; none for no provenance. */
  provenance?: BuildRecord;
  /** An SBOM of each image, in SPDX (as BuildKit's) or CycloneDX, made at `created` by this version of hoist. */
  sbom?: { format: SbomFormat; created: string; hoistVersion: string; warn: (line: string) => void };
}

/**
 * The statements about one image, named by `names` (package URLs), each with its predicate type, in
 * BuildKit's order: provenance, then SBOM. An SBOM never fails a build: what it leaves out is
 * named in warnings, and one that cannot be made at all is left out with a warning that says why.
 */
export async function attestationsOf(store: Store, image: Image, names: string[], what: Attestations): Promise<AttestationLayer[]> {
  const made: AttestationLayer[] = [];
  const add = (predicateType: string, predicate: unknown): void => {
    made.push({ predicateType, statement: Buffer.from(JSON.stringify(statement(names, image.descriptor.digest, predicateType, predicate))) });
  };
  if (what.provenance) add(SLSA_PROVENANCE_V1, provenance(what.provenance));
  if (what.sbom) {
    const { format, created, hoistVersion, warn } = what.sbom;
    const name = names[0] ?? image.descriptor.digest;
    try {
      const contents = await imageContents(store, image);
      for (const what of contents.skipped.slice(0, SKIPPED_SHOWN)) warn(`warning: the SBOM leaves out ${excerpt(what, 300)}`);
      if (contents.skipped.length > SKIPPED_SHOWN) warn(`warning: the SBOM leaves out ${contents.skipped.length - SKIPPED_SHOWN} more, not named here`);
      const { digest } = image.descriptor;
      if (format === 'spdx') add(SPDX_DOCUMENT, spdxDocument(contents, { name, digest, created, creator: `Tool: hoist-${hoistVersion}` }));
      else add(CYCLONEDX_BOM, cycloneDxDocument(contents, { name, digest, created, hoistVersion }));
    } catch (error) {
      // The image is untrusted input that the build itself may never read (FROM alone): what it holds can stop its SBOM, never its build.
      warn(`warning: no SBOM of ${names[0] ? excerpt(name, 200) : 'the image'}: ${excerpt(error instanceof Error ? error.message : String(error), 300)}; it is built without one`);
    }
  }
  return made;
}
