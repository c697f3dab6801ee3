// Checks on what comes from outside the store (a registry's answers, an OCI layout, a build cache's
// config): every digest from there passes parseDigest before it reaches a path, a URL or a log
// line, and text from there is cut to one short line before it reaches an error message.
import type { Descriptor } from './store.ts';

/** The one form of digest the store takes: sha256 in lowercase hex. */
export const isDigest = (value: unknown): value is string => typeof value === 'string' && /^sha256:[a-f0-9]{64}$/.test(value);

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Text from outside made fit for one line of a message: control characters and line breaks out, at most `max` characters. */
export function excerpt(text: string, max = 100): string {
  const line = text.replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** A value from outside as an error shows it: a string quoted and cut, a number as it is, anything else by its kind. */
function shown(value: unknown): string {
  if (typeof value === 'string') return `"${excerpt(value, 80)}"`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return value === undefined ? 'missing' : Array.isArray(value) ? 'a list' : 'an object';
}

/**
 * A digest the store can hold: `sha256:` and 64 lowercase hex digits, nothing else (the store
 * keeps no sha512 blobs). `what` names where it came from in the error.
 */
export function parseDigest(value: unknown, what: string): string {
  if (isDigest(value)) return value;
  if (typeof value === 'string' && value.startsWith('sha512:')) throw new Error(`${what}: ${shown(value)} is a sha512 digest, which hoist does not support (only sha256)`);
  throw new Error(`${what}: ${shown(value)} is not a valid digest (sha256: and 64 lowercase hex digits)`);
}

/** A descriptor from outside: a string mediaType, a checked digest, a size that is a non-negative integer. */
export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isRecord(value)) throw new Error(`${what} is ${shown(value)}, not a descriptor`);
  const { mediaType, digest, size, annotations, platform } = value;
  if (typeof mediaType !== 'string') throw new Error(`${what}: its mediaType is ${shown(mediaType)}, not a string`);
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw new Error(`${what}: its size is ${shown(size)}, not a non-negative integer`);
  if (annotations !== undefined && !(isRecord(annotations) && Object.values(annotations).every((text) => typeof text === 'string'))) {
    throw new Error(`${what}: its annotations are not a map of strings`);
  }
  return {
    mediaType, digest: parseDigest(digest, what), size: size as number,
    ...(annotations !== undefined ? { annotations: annotations as Record<string, string> } : {}),
    ...(platform !== undefined ? { platform: parsePlatform(platform, what) } : {}),
  };
}

/** A descriptor's platform: os and architecture strings, and maybe a variant. */
function parsePlatform(value: unknown, what: string): NonNullable<Descriptor['platform']> {
  if (isRecord(value) && typeof value.os === 'string' && typeof value.architecture === 'string' && (value.variant === undefined || typeof value.variant === 'string')) {
    return { os: value.os, architecture: value.architecture, ...(value.variant !== undefined ? { variant: value.variant } : {}) };
  }
  throw new Error(`${what}: its platform has no os and architecture strings`);
}

/** JSON from outside; `what` names it when it is not JSON. */
export function parseJson(text: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(text.toString());
  } catch {
    throw new Error(`${what} is not valid JSON`);
  }
}
