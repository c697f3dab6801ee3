// in-toto statements (https://in-toto.io/Statement/v1): what an attestation says and of which images.
import { PackageURL } from 'packageurl-js';
import type { PlatformChoice } from '../layers/index.ts';

export interface ResourceDescriptor {
  uri?: string;
  name?: string;
  digest: Record<string, string>;
}

export interface Statement {
  _type: 'https://in-toto.io/Statement/v1';
  subject: ResourceDescriptor[];
  predicateType: string;
  predicate: unknown;
}

const platformText = ({ os, architecture, variant }: PlatformChoice): string => [os, architecture, variant].filter(Boolean).join('/');

/**
 * An image by name as a package URL, as BuildKit names subjects and base images:
 * `pkg:docker/REPO@TAG?platform=linux%2Famd64`, and a digest the name pins as `digest=`.
 */
export function imagePurl(repository: string, ref: { tag?: string; digest?: string }, platform: PlatformChoice): string {
  const slash = repository.lastIndexOf('/');
  const namespace = slash < 0 ? undefined : repository.slice(0, slash);
  const qualifiers = { ...(ref.digest ? { digest: ref.digest } : {}), platform: platformText(platform) };
  return new PackageURL('docker', namespace, repository.slice(slash + 1), ref.tag, qualifiers).toString();
}

/** A statement of `predicate` about the image whose manifest is `digest`, under each of its names (`_` when it has none, as BuildKit writes). */
export function statement(names: string[], digest: string, predicateType: string, predicate: unknown): Statement {
  const sha256 = digest.replace(/^sha256:/, '');
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: (names.length > 0 ? names : ['_']).map((name) => ({ name, digest: { sha256 } })),
    predicateType,
    predicate,
  };
}
