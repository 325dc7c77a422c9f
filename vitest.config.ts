import { defineConfig } from 'vitest/config';

// Tests run against each package's sources (TypeScript through Vite), except where a test
// spawns the built `tributary` CLI as a real child process (`npm test` builds first).
export default defineConfig({
  test: {
    include: ['{core,conformance,connectors,destinations,examples}/**/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
  // Workspace packages resolve to their TypeScript sources during tests.
  resolve: { conditions: ['tributary-source', 'module', 'node', 'development|production'] },
  ssr: { resolve: { conditions: ['tributary-source', 'module', 'node', 'development|production'] } },
});
