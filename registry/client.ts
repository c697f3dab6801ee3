// An OCI distribution client for one registry host, on undici: the scheme (HTTPS; for loopback and
// --insecure-registry hosts, plain HTTP when HTTPS cannot be had), proxies from the environment, auth (anonymous, Basic, Bearer tokens from
// WWW-Authenticate, reused until they expire), redirects that never carry credentials to another
// host, and retries with backoff on 429, 5xx and dropped connections.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { getCACertificates } from 'node:tls';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { findCredentials, type Credentials } from './credentials.ts';

export class RegistryError extends Error {
  readonly status: number | undefined;

  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
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
 * How requests leave: through HTTP_PROXY/HTTPS_PROXY (minus NO_PROXY) when set, trusting the
 * system's CAs plus any the user names; undefined for undici's defaults.
 */
function dispatcherFor(caFile: string | undefined): Dispatcher | undefined {
  const files = [caFile, process.env.SSL_CERT_FILE].filter((file): file is string => Boolean(file));
  const connect = files.length === 0
    ? undefined
    : { ca: [...getCACertificates('system'), ...getCACertificates('bundled'), ...files.map((file) => readFileSync(file, 'utf8'))] };
  const proxied = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some((name) => process.env[name]);
  if (proxied) return new EnvHttpProxyAgent(connect ? { connect } : {});
  return connect ? new Agent({ connect }) : undefined;
}

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

/** The host Docker really talks to for a name's domain. */
function endpointHost(domain: string): string {
  return domain === 'docker.io' ? 'registry-1.docker.io' : domain;
}

export class RegistryClient {
  readonly domain: string;
  private readonly host: string;
  private base: string;
  /** Whether plain HTTP may be used when HTTPS fails (loopback and --insecure-registry hosts). */
  private readonly allowPlainHttp: boolean;
  private readonly credentials: Credentials | undefined;
  private readonly tokens = new Map<string, Token>();
  private readonly dispatcher: Dispatcher | undefined;
  private basic = false;

  constructor(domain: string, options: ClientOptions = {}) {
    this.domain = domain;
    this.host = endpointHost(domain);
    this.allowPlainHttp = LOOPBACK.test(this.host) || (options.insecureRegistries ?? []).includes(domain);
    this.base = `https://${this.host}`;
    this.credentials = options.credentials ?? findCredentials(domain);
    this.dispatcher = dispatcherFor(options.caFile);
  }

  /** Sends a request under `/v2/`, with auth and retries; the caller reads or dumps the body. */
  async send(path: string, options: RequestOptions): Promise<Response> {
    let url = `${this.base}/v2/${path}`;
    let challenged = false;
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.once(url, options);
      } catch (error) {
        const https = `https://${this.host}`;
        if (this.allowPlainHttp && url.startsWith(https)) {
          // A loopback or --insecure-registry host that does not speak (verifiable) TLS: plain HTTP.
          this.base = `http://${this.host}`;
          url = this.base + url.slice(https.length);
          continue;
        }
        if (attempt >= RETRIES || !isTransient(error)) throw new RegistryError(`${options.method ?? 'GET'} ${url}: ${(error as Error).message}`);
        await backoff(attempt);
        continue;
      }
      if (response.status === 401 && !challenged) {
        challenged = true;
        if (await this.authenticate(response, options.scope)) continue;
        throw new RegistryError(`${options.method ?? 'GET'} ${url}: 401 ${this.refusal()}`, 401);
      }
      if ([301, 302, 303, 307, 308].includes(response.status) && response.headers.location) {
        await response.body.dump();
        url = new URL(String(response.headers.location), url).toString();
        continue;
      }
      if ((response.status === 429 || response.status >= 500) && attempt < RETRIES) {
        await response.body.dump();
        await backoff(attempt);
        continue;
      }
      if (response.status >= 400 && !(options.accept ?? []).includes(response.status)) {
        const text = await response.body.text().catch(() => '');
        const why = response.status === 401 ? this.refusal() : registryMessage(text);
        throw new RegistryError(`${options.method ?? 'GET'} ${url}: ${response.status} ${why}`, response.status);
      }
      return response;
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

  private async once(url: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    // Credentials go only to the registry itself, never to a host it redirects to (a CDN).
    if (url.startsWith(this.base)) {
      const token = this.tokens.get(options.scope);
      if (token && token.expires > Date.now()) headers.authorization = `Bearer ${token.value}`;
      else if (this.basic && this.credentials) headers.authorization = basicHeader(this.credentials);
    }
    const { statusCode, headers: responseHeaders, body } = await request(url, {
      method: options.method ?? 'GET', headers, body: options.body?.(), ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
    return { status: statusCode, headers: responseHeaders, body };
  }

  /** Answers a 401's challenge; false when there is nothing more to try. */
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
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    for (const part of scope.split(' ').filter(Boolean)) tokenUrl.searchParams.append('scope', part);
    const tokenResponse = await request(tokenUrl, {
      headers: this.credentials ? { authorization: basicHeader(this.credentials) } : {}, ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
    if (tokenResponse.statusCode !== 200) {
      await tokenResponse.body.dump();
      throw new RegistryError(`${this.domain}: the token service refused ${this.credentials ? 'your credentials' : 'anonymous access'} for ${scope} (${tokenResponse.statusCode})`, 401);
    }
    const body = (await tokenResponse.body.json()) as { token?: string; access_token?: string; expires_in?: number };
    const value = body.token ?? body.access_token;
    if (!value) throw new RegistryError(`${this.domain}: the token service answered without a token`);
    // Renew a little before the registry would refuse it; 60 s is the spec's default lifetime.
    this.tokens.set(scope, { value, expires: Date.now() + ((body.expires_in ?? 60) - 10) * 1000 });
    return true;
  }
}

const basicHeader = (credentials: Credentials): string =>
  `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;

function isTransient(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? '';
  return ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT'].includes(code);
}

const backoff = (attempt: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));

/** The registry's own error text, from its JSON errors body when it has one. */
function registryMessage(text: string): string {
  try {
    const { errors } = JSON.parse(text) as { errors?: { code: string; message: string }[] };
    if (errors?.length) return errors.map((error) => `${error.code}: ${error.message}`).join('; ');
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}
