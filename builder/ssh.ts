// RUN --mount=type=ssh: an SSH agent socket in the step, as BuildKit gives it. `--ssh default` and
// `--ssh ID=SOCKET` forward an agent that is already running (SSH_AUTH_SOCK); `--ssh ID=KEY[,KEY]`
// serves the key files itself, as BuildKit does: an agent that lists the keys and signs with them,
// and does nothing else. Either way the step connects to a socket of the build's own, made with
// the mount's owner and mode for that step and closed after it: no key, socket or agent answer
// reaches a layer or the cache.
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, chown } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';

/** Where an --ssh ID's agent comes from: a socket to forward, or keys to serve. */
export type SshSource = { socket: string } | { keys: AgentKey[] };

interface AgentKey {
  /** The public key as SSH writes it: the identity an agent lists. */
  blob: Buffer;
  comment: string;
  key: KeyObject;
  /** How signatures are made: ssh-ed25519, ssh-rsa (sha1 or, as asked, sha2), ecdsa-sha2-nistpNNN. */
  type: string;
}

/** buildx's --ssh: `default` (SSH_AUTH_SOCK), `ID`, `ID=SOCKET` or `ID=KEY[,KEY...]`. Throws with what is wrong. */
export function parseSshSpec(spec: string): [string, SshSource] {
  const equals = spec.indexOf('=');
  const id = equals < 0 ? spec : spec.slice(0, equals);
  if (!/^[\w.-]+$/.test(id)) throw new Error('expected ID or ID=PATH[,PATH]');
  const paths = equals < 0 ? [] : spec.slice(equals + 1).split(',').filter(Boolean).map((path) => resolve(path));
  if (paths.length === 0) {
    const socket = process.env.SSH_AUTH_SOCK;
    if (!socket) throw new Error('SSH_AUTH_SOCK is not set: start an agent (eval "$(ssh-agent)"; ssh-add), or give key files: ID=~/.ssh/id_ed25519');
    return [id, { socket }];
  }
  if (paths.length === 1 && statSync(paths[0]!, { throwIfNoEntry: false })?.isSocket()) return [id, { socket: paths[0]! }];
  return [id, { keys: paths.map(readKey) }];
}

/** A private key file: OpenSSH's own format (ed25519, RSA, ECDSA) or PEM, not encrypted. */
function readKey(path: string): AgentKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
    // No comment: the key file's path on the host is no business of the step's.
    return agentKey(openssh ? openSshKey(Buffer.from(openssh[1]!.replace(/\s+/g, ''), 'base64')) : createPrivateKey(text), '');
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}

/** SSH's wire encoding: a string (or blob) with its length, and an mpint. */
const sshString = (value: Buffer | string): Buffer => {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
};
const mpint = (unsigned: Buffer): Buffer => {
  let start = 0;
  while (start < unsigned.length && unsigned[start] === 0) start++;
  const trimmed = unsigned.subarray(start);
  return sshString(trimmed.length > 0 && trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
};

/** Reads SSH wire fields in order. */
class WireReader {
  private at = 0;
  private readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  uint32(): number {
    if (this.at + 4 > this.bytes.length) throw new Error('the key is cut short');
    const value = this.bytes.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  string(): Buffer {
    const length = this.uint32();
    if (this.at + length > this.bytes.length) throw new Error('the key is cut short');
    this.at += length;
    return this.bytes.subarray(this.at - length, this.at);
  }
}

const base64url = (bytes: Buffer): string => bytes.toString('base64url');
const unsigned = (bytes: Buffer): Buffer => (bytes[0] === 0 ? bytes.subarray(1) : bytes);
const CURVES: Record<string, { jwk: string; size: number; hash: string }> = {
  nistp256: { jwk: 'P-256', size: 32, hash: 'sha256' }, nistp384: { jwk: 'P-384', size: 48, hash: 'sha384' }, nistp521: { jwk: 'P-521', size: 66, hash: 'sha512' },
};

/** An "openssh-key-v1" private key (the format ssh-keygen writes) as a key object. */
function openSshKey(bytes: Buffer): KeyObject {
  const magic = 'openssh-key-v1\0';
  if (bytes.toString('latin1', 0, magic.length) !== magic) throw new Error('not an OpenSSH private key');
  const outer = new WireReader(bytes.subarray(magic.length));
  const cipher = outer.string().toString();
  if (cipher !== 'none') throw new Error('the key is encrypted: add it to an agent (ssh-add) and pass --ssh default');
  outer.string(); // the key derivation's name
  outer.string(); // and its options
  if (outer.uint32() !== 1) throw new Error('the file holds more than one key');
  outer.string(); // the public key
  const inner = new WireReader(outer.string());
  if (inner.uint32() !== inner.uint32()) throw new Error('the key does not check out');
  const type = inner.string().toString();
  if (type === 'ssh-ed25519') {
    const publicKey = inner.string();
    const secret = inner.string();
    return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: base64url(publicKey), d: base64url(secret.subarray(0, 32)) }, format: 'jwk' });
  }
  if (type === 'ssh-rsa') {
    const [n, e, d, qi, p, q] = Array.from({ length: 6 }, () => unsigned(inner.string()));
    const big = (bytes: Buffer): bigint => BigInt(`0x${bytes.toString('hex') || '0'}`);
    const bytesOf = (value: bigint): Buffer => Buffer.from(value.toString(16).padStart(2 * Math.ceil(value.toString(16).length / 2), '0'), 'hex');
    const dp = big(d!) % (big(p!) - 1n);
    const dq = big(d!) % (big(q!) - 1n);
    return createPrivateKey({
      key: { kty: 'RSA', n: base64url(n!), e: base64url(e!), d: base64url(d!), p: base64url(p!), q: base64url(q!), dp: base64url(bytesOf(dp)), dq: base64url(bytesOf(dq)), qi: base64url(qi!) },
      format: 'jwk',
    });
  }
  const curve = CURVES[inner.string().toString()];
  if (!type.startsWith('ecdsa-sha2-') || !curve) throw new Error(`keys of type ${type} are not supported (ed25519, RSA and ECDSA are)`);
  const point = inner.string();
  const secret = unsigned(inner.string());
  return createPrivateKey({
    key: {
      kty: 'EC', crv: curve.jwk, x: base64url(point.subarray(1, 1 + curve.size)), y: base64url(point.subarray(1 + curve.size)),
      d: base64url(Buffer.concat([Buffer.alloc(Math.max(0, curve.size - secret.length)), secret])),
    },
    format: 'jwk',
  });
}

/** The identity an agent lists for a private key: its SSH public key blob and signing type. */
function agentKey(key: KeyObject, comment: string): AgentKey {
  const jwk = key.export({ format: 'jwk' });
  const bytes = (value: string | undefined): Buffer => Buffer.from(value ?? '', 'base64url');
  if (key.asymmetricKeyType === 'ed25519') return { key, comment, type: 'ssh-ed25519', blob: Buffer.concat([sshString('ssh-ed25519'), sshString(bytes(jwk.x))]) };
  if (key.asymmetricKeyType === 'rsa') return { key, comment, type: 'ssh-rsa', blob: Buffer.concat([sshString('ssh-rsa'), mpint(bytes(jwk.e)), mpint(bytes(jwk.n))]) };
  const name = Object.entries(CURVES).find(([, curve]) => curve.jwk === jwk.crv)?.[0];
  if (key.asymmetricKeyType !== 'ec' || !name) throw new Error(`keys of type ${key.asymmetricKeyType} are not supported (ed25519, RSA and ECDSA are)`);
  const type = `ecdsa-sha2-${name}`;
  return { key, comment, type, blob: Buffer.concat([sshString(type), sshString(name), sshString(Buffer.concat([Buffer.from([4]), bytes(jwk.x), bytes(jwk.y)]))]) };
}

const AGENT = { failure: 5, requestIdentities: 11, identitiesAnswer: 12, signRequest: 13, signResponse: 14 } as const;
/** Sign request flags: the SHA-2 signatures of an RSA key. */
const RSA_SHA2_256 = 2;
const RSA_SHA2_512 = 4;
/** The largest agent message taken: a sign request is a few KiB. */
const MESSAGE_LIMIT = 256 * 1024;

/** The answer to one agent request: identities, a signature, or failure for anything else. */
function answer(keys: AgentKey[], request: Buffer): Buffer {
  const failure = Buffer.from([AGENT.failure]);
  if (request[0] === AGENT.requestIdentities) {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(keys.length);
    return Buffer.concat([Buffer.from([AGENT.identitiesAnswer]), count, ...keys.flatMap((each) => [sshString(each.blob), sshString(each.comment)])]);
  }
  if (request[0] !== AGENT.signRequest) return failure;
  const fields = new WireReader(request.subarray(1));
  const [blob, data] = [fields.string(), fields.string()];
  const flags = fields.uint32();
  const key = keys.find((each) => each.blob.equals(blob));
  if (!key) return failure;
  let signature: Buffer;
  let name = key.type;
  if (key.type === 'ssh-ed25519') signature = sign(null, data, key.key);
  else if (key.type === 'ssh-rsa') {
    const hash = flags & RSA_SHA2_512 ? 'sha512' : flags & RSA_SHA2_256 ? 'sha256' : 'sha1';
    name = { sha512: 'rsa-sha2-512', sha256: 'rsa-sha2-256', sha1: 'ssh-rsa' }[hash];
    signature = sign(hash, data, key.key);
  } else {
    const curve = CURVES[key.type.slice('ecdsa-sha2-'.length)]!;
    const raw = sign(curve.hash, data, { key: key.key, dsaEncoding: 'ieee-p1363' });
    signature = Buffer.concat([mpint(raw.subarray(0, curve.size)), mpint(raw.subarray(curve.size))]);
  }
  return Buffer.concat([Buffer.from([AGENT.signResponse]), sshString(Buffer.concat([sshString(name), sshString(signature)]))]);
}

/**
 * Serves the agent protocol for these keys on one connection. Requests are answered only while the
 * client reads the answers: once they fill the socket's buffer, the client is no longer read until
 * they drain, as OpenSSH's agent does. A step that floods requests and never reads stalls itself;
 * hoist holds at most a buffer of answers and one read of requests for it.
 */
function serveKeys(keys: AgentKey[], client: Socket): void {
  let pending = Buffer.alloc(0);
  const serve = (): void => {
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (length > MESSAGE_LIMIT) return void client.destroy();
      if (pending.length < 4 + length) break;
      let reply: Buffer;
      try {
        reply = answer(keys, pending.subarray(4, 4 + length));
      } catch {
        reply = Buffer.from([AGENT.failure]);
      }
      pending = pending.subarray(4 + length);
      if (!client.write(sshString(reply))) return void client.pause();
    }
    client.resume();
  };
  client.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    serve();
  });
  client.on('drain', serve);
  client.on('error', () => client.destroy());
}

/**
 * Opens a socket at `path` (owned by `uid`:`gid`, with `mode`) that serves `source`: each
 * connection forwarded to the agent's socket, or answered from the keys. Returns the close.
 */
export async function openAgentSocket(source: SshSource, path: string, owner: { uid: number; gid: number; mode: number }): Promise<() => Promise<void>> {
  // Both ends of every connection, the agent's too: closing ends them all.
  const sockets = new Set<Socket>();
  const track = (socket: Socket): Socket => {
    sockets.add(socket.on('close', () => sockets.delete(socket)));
    return socket;
  };
  const server: Server = createServer((client) => {
    track(client);
    if ('keys' in source) return serveKeys(source.keys, client);
    const upstream = track(connect(source.socket));
    client.pipe(upstream).pipe(client);
    for (const end of [client, upstream]) end.on('error', () => [client, upstream].forEach((each) => each.destroy()));
  });
  const close = (): Promise<void> => new Promise((done) => {
    server.close(() => done());
    for (const socket of sockets) socket.destroy();
  });
  await new Promise<void>((done, fail) => server.once('error', fail).listen(path, done));
  try {
    await chmod(path, owner.mode);
    await chown(path, owner.uid, owner.gid);
  } catch (error) {
    await close();
    throw error;
  }
  return close;
}
