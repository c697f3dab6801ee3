// Go build info as Go 1.18 and later write it into an executable, for the SBOM's Go cataloger.

/** A varint-prefixed string, as Go's build info holds them. */
function goString(bytes: Buffer): Buffer {
  const length: number[] = [];
  for (let n = bytes.length; ; n >>= 7) {
    length.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    if (n < 0x80) break;
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

/** The magic Go's reader looks for, at an offset that is a multiple of 16. */
export const GO_BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

/**
 * Build info (go1.21.5) whose module lines are `modules`, as `go version -m` prints them
 * (`path\t…\nmod\t…\ndep\t…\n`): to be placed at a 16-byte-aligned offset of an executable.
 */
export function goBuildInfo(modules: string): Buffer {
  const modinfo = Buffer.concat([Buffer.from('3077af0c9274080241e1c107e6d618e6', 'hex'), Buffer.from(modules), Buffer.from('f932433186182072008242104116d8f2', 'hex')]);
  const header = Buffer.concat([GO_BUILDINFO_MAGIC, Buffer.from([8, 2]), Buffer.alloc(16)]);
  return Buffer.concat([header, goString(Buffer.from('go1.21.5')), goString(modinfo)]);
}
