// The SBOM as an SPDX 2.3 JSON document (the predicate BuildKit's SBOM attestations carry): a
// package per database record, with its package URL and declared licences, and the files its
// database lists, each with its SHA-1, as CONTAINS relationships.
import { createHash } from 'node:crypto';
import parseLicense from 'spdx-expression-parse';
import type { Package } from './packages.ts';
import type { ImageContents } from './scan.ts';

export const SPDX_DOCUMENT = 'https://spdx.dev/Document';

/** SPDX IDs take letters, digits, dots and dashes only. */
const idPart = (text: string): string => text.replace(/\+/g, '-plus').replace(/[^A-Za-z0-9.-]+/g, '-');

/**
 * Whether a recorded licence is an SPDX licence expression of listed licences (`MIT`, `Apache-2.0
 * OR MIT`; Debian's `GPL-2+` is not, nor a LicenseRef, whose text the document would lack).
 */
export function validLicense(license: string): boolean {
  if (/LicenseRef-|DocumentRef-/.test(license)) return false;
  try {
    parseLicense(license);
    return true;
  } catch {
    return false;
  }
}

/**
 * A licence as SPDX takes it: an SPDX expression as it is, anything else as a LicenseRef whose
 * text is the licence as recorded (`extracted` maps those to their IDs, one ID each).
 */
function licenseExpression(license: string, extracted: Map<string, string>): string {
  if (validLicense(license)) return license;
  const known = extracted.get(license);
  if (known) return known;
  const base = `LicenseRef-${idPart(license)}`;
  const taken = new Set(extracted.values());
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  extracted.set(license, id);
  return id;
}

/** The SPDX document of an image's contents; `digest` (the image manifest's) makes its namespace unique. */
export function spdxDocument(contents: ImageContents, options: { name: string; digest: string; created: string; creator: string }): unknown {
  const extracted = new Map<string, string>();
  const files: { fileName: string; SPDXID: string; checksums: { algorithm: 'SHA1'; checksumValue: string }[] }[] = [];
  const fileIds = new Map<string, string>();
  const relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[] = [];
  const packages = contents.packages.map((pkg: Package, i) => {
    const SPDXID = `SPDXRef-Package-${i + 1}-${idPart(pkg.name)}`;
    relationships.push({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: SPDXID });
    for (const fileName of pkg.files) {
      const sha1 = contents.sha1.get(fileName);
      if (!sha1) continue; // a directory, a symlink, or a file the image lacks
      let fileId = fileIds.get(fileName);
      if (!fileId) {
        fileId = `SPDXRef-File-${files.length + 1}`;
        fileIds.set(fileName, fileId);
        files.push({ fileName, SPDXID: fileId, checksums: [{ algorithm: 'SHA1', checksumValue: sha1 }] });
      }
      relationships.push({ spdxElementId: SPDXID, relationshipType: 'CONTAINS', relatedSpdxElement: fileId });
    }
    const licenses = pkg.licenses.filter((license) => license.trim() !== '').map((license) => licenseExpression(license, extracted));
    return {
      name: pkg.name,
      SPDXID,
      ...(pkg.version ? { versionInfo: pkg.version } : {}),
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      ...(licenses.length > 0 ? { licenseDeclared: licenses.length === 1 ? licenses[0] : licenses.map((each) => `(${each})`).join(' AND ') } : {}),
      sourceInfo: `acquired package info from ${pkg.foundIn}`,
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: pkg.purl }],
    };
  });
  const namespaceHash = createHash('sha256').update(JSON.stringify([options.name, options.digest])).digest('hex');
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: options.name,
    documentNamespace: `https://hoist.invalid/spdx/${idPart(options.name)}-${namespaceHash}`,
    creationInfo: { created: options.created, creators: [options.creator] },
    packages,
    files,
    relationships,
    ...(extracted.size > 0 ? { hasExtractedLicensingInfos: [...extracted].map(([extractedText, licenseId]) => ({ licenseId, extractedText, name: extractedText })) } : {}),
  };
}
