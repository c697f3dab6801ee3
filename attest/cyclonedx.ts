// The SBOM as a CycloneDX 1.5 JSON document, for tools that read CycloneDX rather than SPDX: the
// same packages, each a library component with its package URL and licences. CycloneDX has no
// place for a package's own file list, so the files stay in the SPDX form.
import { createHash } from 'node:crypto';
import { validLicense } from './spdx.ts';
import type { Package } from './packages.ts';
import type { ImageContents } from './scan.ts';

export const CYCLONEDX_BOM = 'https://cyclonedx.org/bom';

/** Licences as CycloneDX takes them: one SPDX expression when every licence is one, else each by name. */
function licenses(recorded: string[]): object[] {
  if (recorded.every(validLicense)) return [{ expression: recorded.length === 1 ? recorded[0] : recorded.map((each) => `(${each})`).join(' AND ') }];
  return recorded.map((name) => ({ license: { name } }));
}

/** The CycloneDX document of an image's contents; `digest` (the image manifest's) makes its serial number unique. */
export function cycloneDxDocument(contents: ImageContents, options: { name: string; digest: string; created: string; hoistVersion: string }): unknown {
  const components = contents.packages.map((pkg: Package, i) => {
    const recorded = pkg.licenses.filter((license) => license.trim() !== '');
    return {
      type: 'library',
      'bom-ref': `package-${i + 1}`,
      name: pkg.name,
      ...(pkg.version ? { version: pkg.version } : {}),
      purl: pkg.purl,
      ...(recorded.length > 0 ? { licenses: licenses(recorded) } : {}),
      properties: [{ name: 'hoist:found-in', value: pkg.foundIn }],
    };
  });
  // A serial number that the same image always gets.
  const hash = createHash('sha256').update(JSON.stringify([options.name, options.digest])).digest('hex');
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${hash.slice(0, 8)}-${hash.slice(8, 12)}-${hash.slice(12, 16)}-${hash.slice(16, 20)}-${hash.slice(20, 32)}`,
    version: 1,
    metadata: {
      timestamp: options.created,
      tools: { components: [{ type: 'application', name: 'hoist', version: options.hoistVersion }] },
      component: { type: 'container', name: options.name },
    },
    components,
  };
}
