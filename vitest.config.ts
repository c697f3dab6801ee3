import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// The tests run as an unprivileged user who may not own the checkout: keep vite's cache in /tmp.
export default defineConfig({
  cacheDir: join(tmpdir(), `hoist-vitest-${process.getuid?.() ?? 0}`),
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
