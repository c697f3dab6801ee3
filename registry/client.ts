// An OCI distribution client for one registry host, on undici: the scheme (HTTPS; for loopback and
// --insecure-registry hosts, plain HTTP when HTTPS cannot be had), proxies from the environment, auth (anonymous, Basic, Bearer tokens from
// WWW-Authenticate, reused until they expire) bound to the registry's origin, redirects (at most 10)
// that never carry credentials to another origin, and retries with backoff on 429, 5xx and dropped
// connections, within a time budget for registries that stop answering.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createSecureContext, getCACertificates, type SecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { excerpt, isRecord, parseJson } from '../layers/index.ts';
import { findCredentials, type Credentials } from './credentials.ts';

export class RegistryError extends Error {
  readonly status: number | undefined;
  /** What the registry said, from its answer's body (`MANIFEST_UNKNOWN: manifest unknown`). */
  readonly said: string | undefined;

  constructor(message: string, status?: number, said?: string) {
    super(message);
    this.status = status;
    this.said = said;
  }
}

export interface ClientOptions {
  /** Hosts reached over plain HTTP besides loopback ones. */
  insecureRegistries?: string[];
  credentials?: Credentials;
  /** A PEM file of extra CAs to trust (--tls-ca; SSL_CERT_FILE is read too). */
  caFile?: string;
}

/**
 * How long a registry may keep hoist waiting, in ms: to connect (TLS included), for an answer's
 * headers, and between two pieces of a body (an idle time: a large blob that keeps coming is never
 * cut off). HOIST_REGISTRY_TIMEOUT (seconds) sets all three. Each wait is one attempt's; what a
 * whole request may spend on waits that time out is silenceBudget's.
 */
interface Timeouts {
  connect: number;
  headers: number;
  idle: number;
}

function timeouts(): Timeouts {
  const setting = process.env.HOIST_REGISTRY_TIMEOUT;
  if (setting === undefined || setting === '') return { connect: 30_000, headers: 60_000, idle: 60_000 };
  const ms = Math.round(Number(setting) * 1000);
  if (!(ms > 0)) throw new Error(`HOIST_REGISTRY_TIMEOUT must be a number of seconds, not "${excerpt(setting, 40)}"`);
  return { connect: ms, headers: ms, idle: ms };
}

/**
 * undici, loaded with the first request: a command that never touches the network does not pay
 * for it (some 40 ms of start-up, even from Node's compile cache).
 */
let undici: Promise<typeof import('undici')> | undefined;
const http = (): Promise<typeof import('undici')> => (undici ??= import('undici'));

/** How requests leave: the CAs trusted, the timeouts, and whether through a proxy. */
interface Connections {
  /** SSL_CERT_FILE's certificates (PEM text), which replace the system's. */
  certFile: string | undefined;
  /** --tls-ca's certificates (PEM text), trusted besides. */
  caFile: string | undefined;
  timeouts: { connectTimeout: number; headersTimeout: number; bodyTimeout: number };
  proxied: boolean;
}

/**
 * Through HTTP_PROXY/HTTPS_PROXY (minus NO_PROXY) when set, trusting the CAs of trustedContext,
 * within `limits`. The CA files are read now: one that cannot be read fails the command at once.
 */
function connectionsFor(caFile: string | undefined, limits: Timeouts): Connections {
  const read = (file: string | undefined): string | undefined => (file ? readFileSync(file, 'utf8') : undefined);
  return {
    certFile: read(process.env.SSL_CERT_FILE),
    caFile: read(caFile),
    timeouts: { connectTimeout: limits.connect, headersTimeout: limits.headers, bodyTimeout: limits.idle },
    proxied: ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some((name) => process.env[name]),
  };
}

/**
 * The TLS context trusting Node's CAs, the system's (or SSL_CERT_FILE's instead, as OpenSSL and Go
 * read it) and --tls-ca's, each certificate once. It is made at the first TLS connection (the
 * HTTPS attempt to a loopback registry included, some 14 ms) and shared by all: made per
 * connection from some 400 certificates it cost 50 to 90 ms each.
 */
const tlsContexts = new Map<string, SecureContext>();
function trustedContext({ certFile, caFile }: Connections): SecureContext {
  const key = `${certFile}\0${caFile}`;
  let context = tlsContexts.get(key);
  if (!context) {
    const listed = (text: string | undefined): string[] => text?.match(PEM_CERTIFICATE) ?? [];
    const pems = [...getCACertificates('bundled'), ...(certFile === undefined ? getCACertificates('system') : listed(certFile)), ...listed(caFile)];
    const byBody = new Map(pems.map((pem) => [pem.replace(/-----[^-]+-----|\s/g, ''), pem]));
    context = createSecureContext({ ca: [...byBody.values()] });
    tlsContexts.set(key, context);
  }
  return context;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

async function dispatcherFor(connections: Connections): Promise<Dispatcher> {
  const { Agent, EnvHttpProxyAgent, buildConnector } = await http();
  const { timeouts } = connections;
  if (connections.proxied) return new EnvHttpProxyAgent({ ...timeouts, connect: { secureContext: trustedContext(connections) } });
  const plain = buildConnector({ timeout: timeouts.connectTimeout });
  let secure: typeof plain | undefined;
  return new Agent({
    ...timeouts,
    connect: (options, callback) => {
      if (options.protocol !== 'https:') return plain(options, callback);
      secure ??= buildConnector({ timeout: timeouts.connectTimeout, secureContext: trustedContext(connections) });
      return secure(options, callback);
    },
  });
}

/**
 * A GET of any URL (ADD's downloads) the way the registry client makes its requests: through the
 * same proxies, trusting the same CAs, within the same timeouts, following redirects as it does
 * (at most 10); the caller reads or dumps the body.
 */
export async function httpGet(url: string, options: ClientOptions = {}): Promise<Response> {
  const { request } = await http();
  const key = options.caFile ?? '';
  let dispatcher = downloaders.get(key);
  if (!dispatcher) {
    dispatcher = dispatcherFor(connectionsFor(options.caFile, timeouts()));
    downloaders.set(key, dispatcher);
  }
  for (let redirects = 1; ; redirects++) {
    // Some servers refuse a request that names no client.
    const { statusCode, headers, body } = await request(url, { dispatcher: await dispatcher, headers: { 'user-agent': 'hoist' } });
    const response = { status: statusCode, headers, body };
    const location = redirectLocation(response);
    if (location === undefined) return response;
    await body.dump();
    url = followRedirect(url, location, redirects, (why) => new Error(why));
  }
}

/** httpGet's dispatchers by CA file: the downloads of a build share their connections. */
const downloaders = new Map<string, Promise<Dispatcher>>();

interface Token {
  value: string;
  expires: number;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

export interface RequestOptions {
  method?: Dispatcher.HttpMethod;
  headers?: Record<string, string>;
  /** A body that can be made again for a retry or after an auth challenge. */
  body?: () => Readable | Buffer | string;
  /** The token scope: `repository:NAME:pull` or `repository:NAME:pull,push`. */
  scope: string;
  /** Status codes that are not errors for this call (404 for a HEAD, say). */
  accept?: number[];
}

const RETRIES = 4;
const LOOPBACK = /^(localhost|127(\.\d+){3}|\[::1\])(:\d+)?$/;

/** As Go's http.Client (and so Docker's and containerd's): a request ends at its 10th redirect. */
const MAX_REDIRECTS = 10;

/** The Location a redirect answer sends a request to; undefined when the answer is not a redirect. */
function redirectLocation(response: Response): string | undefined {
  const { location } = response.headers;
  return [301, 302, 303, 307, 308].includes(response.status) && location ? String(location) : undefined;
}

/**
 * The URL the `count`th redirect of one request leads to, resolved against `url`: an error made by
 * `fail` for the 10th, or for a Location that is not an http(s) URL.
 */
function followRedirect(url: string, location: string, count: number, fail: (why: string) => Error): string {
  const target = httpUrl(location, url);
  if (!target) throw fail(`redirected to "${excerpt(location, 100)}", which is not an http(s) URL`);
  if (count >= MAX_REDIRECTS) throw fail(`stopped after ${MAX_REDIRECTS} redirects (the last to ${excerpt(target.origin, 100)})`);
  return target.href;
}

/** `text` as an http or https URL (relative to `base` if given); undefined for anything else. */
function httpUrl(text: string, base?: string): URL | undefined {
  const url = URL.parse(text, base);
  return url && (url.protocol === 'https:' || url.protocol === 'http:') ? url : undefined;
}

const originOf = (url: string): string => new URL(url).origin;

/** The host Docker really talks to for a name's domain. */
function endpointHost(domain: string): string {
  return domain === 'docker.io' ? 'registry-1.docker.io' : domain;
}

export class RegistryClient {
  readonly domain: string;
  private readonly host: string;
  /** `https://HOST`, where every request starts. */
  private readonly httpsOrigin: string;
  /**
   * The registry's origin (scheme, host, port): the only one its credentials and tokens are sent
   * to. It is httpsOrigin until HTTPS fails on a host allowed plain HTTP; it is then `http://HOST`
   * alone, and the HTTPS origin of that host gets nothing more.
   */
  private origin: string;
  /** Whether plain HTTP may be used when HTTPS fails (loopback and --insecure-registry hosts). */
  private readonly allowPlainHttp: boolean;
  private readonly credentials: Credentials | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly limits: Timeouts;
  private readonly connections: Connections;
  /** Made at the first request (see http). */
  private dispatcher?: Promise<Dispatcher>;
  private basic = false;

  constructor(domain: string, options: ClientOptions = {}) {
    this.domain = domain;
    this.host = endpointHost(domain);
    this.allowPlainHttp = LOOPBACK.test(this.host) || (options.insecureRegistries ?? []).includes(domain);
    this.httpsOrigin = originOf(`https://${this.host}`);
    this.origin = this.httpsOrigin;
    this.credentials = options.credentials ?? findCredentials(domain);
    this.limits = timeouts();
    this.connections = connectionsFor(options.caFile, this.limits);
  }

  /** Sends a request under `/v2/`, with auth and retries; the caller reads or dumps the body. */
  send(path: string, options: RequestOptions): Promise<Response> {
    return this.receive(path, options, async (response) => response);
  }

  /**
   * Sends a request under `/v2/` and reads the answer with `read`, with auth and retries: an answer
   * whose body is cut short or stops coming is asked for again.
   */
  async receive<T>(path: string, options: RequestOptions, read: (response: Response) => Promise<T>): Promise<T> {
    const method = options.method ?? 'GET';
    let url = `${this.origin}/v2/${path}`;
    let challenged = false;
    let redirects = 0;
    /** The time this request's attempts spent in waits that timed out (see silenceBudget). */
    let waited = 0;
    const fail = (why: string, status?: number): RegistryError => new RegistryError(`${method} ${excerpt(url, 200)}: ${why}`, status);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      const started = Date.now();
      try {
        response = await this.once(url, options);
      } catch (error) {
        const timeout = this.expiredTimeout(error, options);
        if (timeout) waited += Date.now() - started;
        if (this.allowPlainHttp && originOf(url) === this.httpsOrigin) {
          // A loopback or --insecure-registry host that does not speak (verifiable) TLS: plain HTTP,
          // and the credentials are bound to that origin from now on.
          this.origin = `http://${this.host}`;
          const { pathname, search } = new URL(url);
          url = `${this.origin}${pathname}${search}`;
          continue;
        }
        if (attempt >= RETRIES || !isTransient(error) || waited + timeout > this.silenceBudget(options)) {
          throw this.failure(`${method} ${url}`, error, this.answerTimeout(options), attempt + 1);
        }
        // A wait that timed out was backoff enough.
        if (!timeout) await backoff(attempt);
        continue;
      }
      if (response.status === 401 && originOf(url) !== this.origin) {
        // A host the registry redirected to (a CDN) gets no credentials, nor does a token service
        // it names: its 401 ends the request.
        await response.body.dump();
        throw fail(`401 from ${excerpt(originOf(url), 100)}, where ${this.domain} redirected the request: hoist sends credentials only to ${this.origin}`, 401);
      }
      if (response.status === 401 && !challenged) {
        challenged = true;
        if (await this.authenticate(response, options.scope)) continue;
        throw fail(`401 ${this.refusal()}`, 401);
      }
      const location = redirectLocation(response);
      if (location !== undefined) {
        await response.body.dump();
        url = followRedirect(url, location, ++redirects, fail);
        continue;
      }
      if ((response.status === 429 || response.status >= 500) && attempt < RETRIES) {
        await response.body.dump();
        await backoff(attempt);
        continue;
      }
      if (response.status >= 400 && !(options.accept ?? []).includes(response.status)) {
        const text = await readUpTo(response.body, SMALL_ANSWER_LIMIT).then(({ bytes }) => bytes.toString('utf8'), () => '');
        const why = response.status === 401 ? this.refusal() : registryMessage(text);
        throw new RegistryError(`${method} ${excerpt(url, 200)}: ${response.status} ${why}`, response.status, why);
      }
      try {
        return await read(response);
      } catch (error) {
        if (!isTransient(error)) throw error;
        if (attempt >= RETRIES) throw this.failure(`${method} ${url}`, error, this.answerTimeout(options), attempt + 1);
        await backoff(attempt);
      }
    }
  }

  /** Checks that the registry accepts these credentials (what `docker login` does). */
  async checkLogin(): Promise<void> {
    const response = await this.send('', { scope: '' });
    await response.body.dump();
  }

  private refusal(): string {
    return this.credentials
      ? `the credentials found for ${this.domain} were refused`
      : `no credentials for ${this.domain} (add them to ~/.docker/config.json or REGISTRY_AUTH_FILE)`;
  }

  /**
   * How long the registry may take to answer once a request is sent. A request with a body gets
   * longer: completing an upload can make the registry copy a whole blob in its storage first.
   */
  private answerTimeout(options: RequestOptions): number {
    return options.body ? 10 * this.limits.headers : this.limits.headers;
  }

  /**
   * How long one request, its attempts together, may spend in waits that time out (to connect, for
   * an answer), as measured: twice the answer timeout, so 2 minutes by default and
   * 2 × HOIST_REGISTRY_TIMEOUT when that is set. Each wait keeps its own timeout; the request fails,
   * naming the host, rather than try again when another wait could end past the budget, so a
   * registry that accepts connections and never answers costs at most 2 minutes (not 5 attempts ×
   * the timeout). A body that stops coming is not counted: the registry answered, and the request
   * is tried again up to RETRIES times.
   */
  private silenceBudget(options: RequestOptions): number {
    return 2 * this.answerTimeout(options);
  }

  /** The timeout (ms) that ended an attempt failed with `error`: to connect or for an answer; 0 for any other failure. */
  private expiredTimeout(error: unknown, options: RequestOptions): number {
    return { UND_ERR_CONNECT_TIMEOUT: this.limits.connect, UND_ERR_HEADERS_TIMEOUT: this.answerTimeout(options) }[errorCode(error)] ?? 0;
  }

  /** The error for a request that failed for good, with its timeouts said in words. */
  private failure(what: string, error: unknown, answerTimeout: number, attempts: number): RegistryError {
    const seconds = (ms: number): string => `${ms / 1000} s`;
    const why = {
      UND_ERR_CONNECT_TIMEOUT: `could not connect within ${seconds(this.limits.connect)}`,
      UND_ERR_HEADERS_TIMEOUT: `no answer within ${seconds(answerTimeout)}`,
      UND_ERR_BODY_TIMEOUT: `the answer stopped coming for ${seconds(this.limits.idle)}`,
    }[errorCode(error)] ?? excerpt((error as Error).message);
    return new RegistryError(`${excerpt(what, 200)}: ${why}${attempts > 1 ? ` (${attempts} attempts)` : ''}`);
  }

  private async once(url: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    // Credentials go only to the registry's own origin, never to another it redirects to (a CDN):
    // compared as origins, so neither HOST:50001 nor HOST.evil.net passes for HOST:5000 or HOST.
    if (originOf(url) === this.origin) {
      const token = this.tokens.get(options.scope);
      if (token && token.expires > Date.now()) headers.authorization = `Bearer ${token.value}`;
      else if (this.basic && this.credentials) headers.authorization = basicHeader(this.credentials);
    }
    const { request } = await http();
    const { statusCode, headers: responseHeaders, body } = await request(url, {
      method: options.method ?? 'GET', headers, body: options.body?.(), dispatcher: await this.connect(), headersTimeout: this.answerTimeout(options),
    });
    return { status: statusCode, headers: responseHeaders, body };
  }

  private connect(): Promise<Dispatcher> {
    return (this.dispatcher ??= dispatcherFor(this.connections));
  }

  /**
   * Answers a 401's challenge from the registry's own origin; false when there is nothing more to try.
   * As Docker's client (distribution's registry/client/auth: the credentials of the challenged
   * request's registry) and containerd's (remotes/docker: those of the host whose 401 it is) do,
   * the credentials go to the token realm the registry names, on whatever host (Docker Hub's is
   * auth.docker.io). Neither refuses an http realm named by an https registry, so hoist does not.
   * A 401 from another origin never gets here (see receive).
   */
  private async authenticate(response: Response, scope: string): Promise<boolean> {
    await response.body.dump();
    const challenge = String(response.headers['www-authenticate'] ?? '');
    if (/^basic/i.test(challenge)) {
      if (!this.credentials) return false;
      this.basic = true;
      return true;
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!/^bearer/i.test(challenge) || !params.realm) return false;
    const tokenUrl = httpUrl(params.realm);
    if (!tokenUrl) throw new RegistryError(`${this.domain}: the registry named a token service "${excerpt(params.realm, 100)}", which is not an http(s) URL`);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    for (const part of scope.split(' ').filter(Boolean)) tokenUrl.searchParams.append('scope', part);
    const what = `${this.domain}: the token service ${excerpt(tokenUrl.origin, 100)}`;
    const { request } = await http();
    const tokenResponse = await request(tokenUrl, { headers: this.credentials ? { authorization: basicHeader(this.credentials) } : {}, dispatcher: await this.connect() })
      .catch((error: unknown) => {
        throw this.failure(`GET ${tokenUrl.origin}${tokenUrl.pathname}`, error, this.limits.headers, 1);
      });
    if (tokenResponse.statusCode !== 200) {
      await tokenResponse.body.dump();
      throw new RegistryError(`${what} refused ${this.credentials ? 'your credentials' : 'anonymous access'} for ${scope} (${tokenResponse.statusCode})`, 401);
    }
    const answer = parseJson((await readUpTo(tokenResponse.body, SMALL_ANSWER_LIMIT)).bytes, `${what}'s answer`);
    const value = isRecord(answer) ? answer.token ?? answer.access_token : undefined;
    if (typeof value !== 'string' || value === '') throw new RegistryError(`${what} answered without a token`);
    // Renew a little before the registry would refuse it; 60 s is the spec's default lifetime.
    const lifetime = isRecord(answer) && typeof answer.expires_in === 'number' ? answer.expires_in : 60;
    this.tokens.set(scope, { value, expires: Date.now() + (lifetime - 10) * 1000 });
    return true;
  }
}

const basicHeader = (credentials: Credentials): string =>
  `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;

/** An error's code; undici's sometimes sits on its cause. */
function errorCode(error: unknown): string {
  const { code, cause } = error as { code?: unknown; cause?: { code?: unknown } };
  return String(code ?? cause?.code ?? '');
}

/** Failures that another attempt may not meet: dropped connections, and registries that stopped answering. */
function isTransient(error: unknown): boolean {
  return [
    'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
    'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  ].includes(errorCode(error));
}

const backoff = (attempt: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));

/** The most read of an error answer or a token service's answer: more than any real one needs, never all of a hostile one. */
const SMALL_ANSWER_LIMIT = 1024 * 1024;

/** At most `limit` bytes of a body (the rest is not read); `whole` when that was all of it. */
export async function readUpTo(body: Response['body'], limit: number): Promise<{ bytes: Buffer; whole: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > limit) return { bytes: Buffer.concat(chunks).subarray(0, limit), whole: false };
  }
  return { bytes: Buffer.concat(chunks), whole: true };
}

/** The registry's own error text, from its JSON errors body when it has one; an HTML page by its title, other markup (S3's XML) by its text. */
function registryMessage(text: string): string {
  try {
    const { errors } = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(errors) && errors.length) return excerpt(errors.map((error) => `${error?.code}: ${error?.message}`).join('; '), 200);
  } catch {
    // not JSON
  }
  // A summary needs only the start, and the patterns below stay cheap on it whatever it holds.
  const start = text.slice(0, 4096);
  if (/^\s*</.test(start)) {
    const title = /<title[^>]*>([^<]*)</i.exec(start)?.[1]?.trim();
    return title ? `an HTML page ("${excerpt(title, 80)}")` : excerpt(start.replace(/<[^>]*>/g, ' '), 200);
  }
  return excerpt(start, 200);
}
