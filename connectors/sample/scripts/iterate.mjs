// Bare iteration speed of the sample source: `for await` over read() with no consumer work.
// Usage (after `npx tsc -b connectors/sample`):
//   node connectors/sample/scripts/iterate.mjs [stream=activities] [records=10000000]
import { sampleSource } from '@tributary/source-sample';
import { silentLogger } from '@tributary/core';

const stream = process.argv[2] ?? 'activities';
const records = Number(process.argv[3] ?? 10_000_000);
const counts = { companies: 100, contacts: 1000, deals: 300, activities: 5000, [stream]: records };
const config = { seed: 42, tenants: 3, counts, checkpoint_every: 1000, start_date: '2024-01-01T00:00:00.000Z' };
const ctx = {
  logger: silentLogger,
  signal: new AbortController().signal,
  limiter: { schedule: (task) => task(), pauseFor() {}, observe() {}, onPause: () => () => {}, stats: { started: 0, waitedMs: 0, pauses: 0 } },
  call: (request) => request(1),
};
const [discovered] = (await sampleSource.discover(ctx, config)).streams.filter((s) => s.name === stream);
const catalog = { streams: [{ stream: discovered, sync_mode: 'incremental', destination_sync_mode: 'append' }] };

const started = process.hrtime.bigint();
const cpuBefore = process.cpuUsage();
let seen = 0;
let checkpoints = 0;
for await (const message of sampleSource.read(ctx, config, catalog, { streams: {} })) {
  if (message.kind === 'records') seen += message.records.length;
  else if (message.kind === 'record') seen++;
  else if (message.kind === 'checkpoint') checkpoints++;
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
// CPU time is reported too: on a shared machine wall time includes waiting for a core.
console.log(
  `${stream}: ${seen} records, ${checkpoints} checkpoints; wall ${seconds.toFixed(2)} s = ${(seen / seconds / 1e6).toFixed(2)} M records/s; ` +
    `cpu ${cpuSeconds.toFixed(2)} s = ${(seen / cpuSeconds / 1e6).toFixed(2)} M records/cpu-s`,
);
