// Image references as Docker reads them: `busybox` is `docker.io/library/busybox:latest`.
export interface Reference {
  /** Registry host, with port if any: `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path: `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?';
const REFERENCE = new RegExp(`^(?:(${DOMAIN})/)?(${COMPONENT}(?:/${COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$`);

export function parseReference(text: string): Reference {
  const match = REFERENCE.exec(text);
  if (!match) throw new Error(`invalid image reference "${text}"${/[A-Z]/.test(text) ? ': repository names must be lowercase' : ''}`);
  let [, domain, path, tag, digest] = match as (string | undefined)[];
  // The first component is a registry only if it looks like a host: a dot, a port, or localhost.
  if (domain !== undefined && !/[.:]/.test(domain) && domain !== 'localhost' && domain.toLowerCase() === domain) {
    path = `${domain}/${path}`;
    domain = undefined;
  }
  domain ??= 'docker.io';
  if (domain === 'docker.io' && !path!.includes('/')) path = `library/${path}`;
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { domain, path: path!, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The full form: `docker.io/library/busybox:latest`. */
export function formatReference(ref: Reference): string {
  return `${ref.domain}/${ref.path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The short form Docker prints: `busybox:latest`, `ghcr.io/org/app:1`. */
export function familiarReference(ref: Reference): string {
  const path = ref.domain === 'docker.io' ? ref.path.replace(/^library\//, '') : `${ref.domain}/${ref.path}`;
  return `${path}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The short repository name without tag or digest: `busybox`, `ghcr.io/org/app`. */
export function familiarRepository(ref: Reference): string {
  return familiarReference({ domain: ref.domain, path: ref.path });
}

export const normalizeReference = (text: string): string => formatReference(parseReference(text));
