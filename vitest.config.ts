import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// The tests run as an unprivileged user who may not own the checkout: keep vite's cache in /tmp.
const cacheDir = join(tmpdir(), `hoist-vitest-${process.getuid?.() ?? 0}`);

export default defineConfig({
  cacheDir,
  test: {
    fsModuleCachePath: join(cacheDir, 'modules'),
    include: ['test/**/*.test.ts'],
    // A loaded machine (other suites, other builds beside this one) makes everything slower: a hook
    // (a registry to start, a base image to import, a store to remove) gets as long as a test.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
