import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));


/** The BuildKit commit whose test data the conformance tests expect (counts of cases and rows). */
export const BUILDKIT_COMMIT = '73ed6825c4b7569379ef89df0aedcdbe64473d31';

/**
 * BuildKit's own test data, which is BuildKit's to publish, not ours: the top directory of a
 * BuildKit checkout (it holds frontend/dockerfile/), from HOIST_BUILDKIT_TESTDATA, else the team's
 * copy beside this repository if there is one, else undefined and the conformance tests skip.
 */
const teamCopy = join(repoRoot, '..', 'shared', 'conformance', 'buildkit');
export const buildkitTestData: string | undefined = process.env.HOIST_BUILDKIT_TESTDATA || (existsSync(teamCopy) ? teamCopy : undefined);
