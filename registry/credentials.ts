// Registry credentials where users already keep them: ~/.docker/config.json (auths, credHelpers,
// credsStore through docker-credential-NAME), REGISTRY_AUTH_FILE, and containers' auth.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { atomicWrite } from '../layers/index.ts';

export interface Credentials {
  username: string;
  password: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The keys a registry may be filed under: Docker Hub's historic URL, the host, a URL of it. */
function keysFor(host: string): string[] {
  if (host === 'docker.io' || host === 'registry-1.docker.io' || host === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
}

/** The files credentials are read from, in the order they are looked in. */
export function credentialFiles(): string[] {
  const files: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) files.push(join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(join(process.env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json'));
  return files;
}

function readAuthFile(path: string): AuthFile | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as AuthFile;
  } catch {
    return undefined;
  }
}

/** Asks `docker-credential-NAME get` (the Docker credential-helper protocol). */
function fromHelper(helper: string, serverUrl: string): Credentials | undefined {
  const result = spawnSync(`docker-credential-${helper}`, ['get'], { input: serverUrl, encoding: 'utf8' });
  if (result.error || result.status !== 0) return undefined;
  try {
    const { Username, Secret } = JSON.parse(result.stdout) as { Username: string; Secret: string };
    return { username: Username, password: Secret };
  } catch {
    return undefined;
  }
}

/** The credentials for a registry host, or undefined for anonymous access. */
export function findCredentials(host: string): Credentials | undefined {
  for (const path of credentialFiles()) {
    const file = readAuthFile(path);
    if (!file) continue;
    for (const key of keysFor(host)) {
      const helper = file.credHelpers?.[key];
      if (helper) return fromHelper(helper, key);
      const entry = file.auths?.[key];
      if (entry?.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      }
      if (entry?.username && entry.password) return { username: entry.username, password: entry.password };
    }
    if (file.credsStore) {
      const found = keysFor(host).map((key) => fromHelper(file.credsStore!, key)).find(Boolean);
      if (found) return found;
    }
  }
  return undefined;
}

/** Where `hoist login` writes: REGISTRY_AUTH_FILE if set, else Docker's config.json. */
function loginFile(): string {
  return process.env.REGISTRY_AUTH_FILE || join(process.env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

async function updateLoginFile(change: (auths: NonNullable<AuthFile['auths']>) => void): Promise<void> {
  const path = loginFile();
  const file = (readAuthFile(path) ?? {}) as AuthFile & Record<string, unknown>;
  file.auths ??= {};
  change(file.auths);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Written whole and renamed, readable by the user alone: it holds secrets.
  await atomicWrite(dirname(path), path, (temp) => writeFile(temp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 }), `.${basename(path)}.hoist`);
}

/** The key a host is filed under, as docker login files it. */
const loginKey = (host: string): string => keysFor(host)[0]!;

export async function saveCredentials(host: string, credentials: Credentials): Promise<string> {
  await updateLoginFile((auths) => {
    auths[loginKey(host)] = { auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64') };
  });
  return loginFile();
}

/** Removes a host's stored credentials; false when there were none. */
export async function removeCredentials(host: string): Promise<boolean> {
  let found = false;
  await updateLoginFile((auths) => {
    for (const key of keysFor(host)) {
      if (auths[key]) found = true;
      delete auths[key];
    }
  });
  return found;
}
