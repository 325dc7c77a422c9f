// One phase of the runtime benchmark, in its own process. Prints one JSON line.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureCatalog, createConnectorContext, createFileStateStore, defineDestination, parseConfig, runSync } from '@tributary/core';
import { sampleSource } from '@tributary/source-sample';
import { peakRssMb } from './measure.mjs';

const [phase, recordsArg, pageSizeArg = '1000'] = process.argv.slice(2);
const records = Number(recordsArg);
const config = parseConfig(sampleSource.spec.connectionSpecification, {
  seed: 1,
  counts: { companies: 0, contacts: 0, deals: 0, activities: records },
  checkpoint_every: 10_000,
  page_size: Number(pageSizeArg),
});
const ctx = createConnectorContext({});
const discovered = await sampleSource.discover(ctx, config);
const catalog = configureCatalog(
  { streams: discovered.streams.filter((s) => s.name === 'activities') },
  [{ name: 'activities', sync_mode: 'incremental', destination_sync_mode: 'append' }],
  ['append'],
);

/** Accepts and forgets everything: isolates the runtime's own cost. */
const nullDestination = defineDestination({
  name: 'null',
  delivery: 'append',
  spec: { connectionSpecification: { type: 'object' }, supportedDestinationSyncModes: ['append', 'overwrite', 'append_dedup'] },
  async check() {},
  async open() {
    return { async write() {}, async commit() {}, async close() {} };
  },
});

const started = process.hrtime.bigint();
let count = 0;
if (phase === 'reference') {
  // The source alone: every message it yields, records counted (pages hold many).
  for await (const message of sampleSource.read(ctx, config, catalog, { streams: {} })) {
    if (message.kind === 'records') count += message.records.length;
    else if (message.kind === 'record') count++;
  }
} else {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-bench-'));
  const store = createFileStateStore(dir);
  const result = await runSync({
    connection: 'bench',
    source: sampleSource,
    sourceConfig: config,
    destination: nullDestination,
    destinationConfig: {},
    catalog,
    stateStore: store,
  });
  if (result.outcome !== 'completed') throw result.error ?? new Error(result.outcome);
  count = result.streams.reduce((n, s) => n + s.committed, 0);
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (count !== records) throw new Error(`expected ${records} records, got ${count}`);
process.stdout.write(
  JSON.stringify({ phase, records: count, seconds: Math.round(seconds * 1000) / 1000, records_per_s: Math.round(count / seconds), peak_rss_mb: peakRssMb() }) + '\n',
);
