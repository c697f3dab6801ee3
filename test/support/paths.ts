import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/** The team's shared data, checked out beside this repository. */
export const sharedDir = join(repoRoot, '..', 'shared');
export const conformanceDir = join(sharedDir, 'conformance', 'buildkit');
