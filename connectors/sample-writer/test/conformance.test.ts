import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { writerConformance } from '@tributary/conformance';
import { sampleWriter } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'tributary-sample-crm-conformance-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let targets = 0;

writerConformance({
  writer: sampleWriter,
  config: () => ({ directory: join(root, `crm-${++targets}`) }),
  object: 'contacts',
  idProperty: 'email',
  records: (n) => Array.from({ length: n }, (_, i) => ({ email: `person${i}@example.com`, firstname: 'Person', lastname: `No. ${i}`, score: i })),
  invalidRecord: () => ({ email: 'not-an-email', firstname: 'Nobody' }),
});
