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
    // Two test files at a time even on 2 cores (vitest's default there is one): most files wait
    // on peers — child processes, PostgreSQL, Redis, moto, simulators — more than they compute.
    maxWorkers: 2,
    reporters: ['default'],
  },
  // Workspace packages resolve to their TypeScript sources during tests. No `module`
  // condition: with it Node picks the AWS SDK's ESM build (dist-es), whose extensionless
  // imports it cannot load; plain node (the CLI, users) picks its CommonJS build.
  resolve: { conditions: ['tributary-source', 'node', 'development|production'] },
  ssr: { resolve: { conditions: ['tributary-source', 'node', 'development|production'] } },
});
