// Registries: pull images into the store, push them out, with the credentials users already have.
export { httpGet, RegistryClient, RegistryError, type ClientOptions } from './client.ts';
export { credentialFiles, findCredentials, removeCredentials, saveCredentials, type Credentials } from './credentials.ts';
export { pull, pullArtifact, pullBlob, pullIndex } from './pull.ts';
export { push, pushIndex, type PushResult } from './push.ts';
