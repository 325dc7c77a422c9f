import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { destinationConformance } from '@tributary/conformance';
import { lakeDestination, readStreamRows } from '../src/index.js';

// Local-disk lake; every case gets a fresh directory. The conformance stream has no tenant
// field, so a default tenant is configured; its customer id defaults to the primary key.
const root = mkdtempSync(join(tmpdir(), 'tributary-lake-conf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

destinationConformance({
  destination: lakeDestination,
  config: () => ({ path: join(root, `case-${++n}`), default_tenant: 'acme' }),
  // Read through DuckDB over the committed files (the library reader).
  readBack: async (config, stream) => (await readStreamRows(config, { stream })).map((row) => row.payload),
  module: '@tributary/destination-lake',
});
