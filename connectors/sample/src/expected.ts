import { configureCatalog, createConnectorContext, parseConfig, type RecordData } from '@tributary/core';
import { sampleSource } from './index.js';

/**
 * Calls `each` for every record the sample source yields for `streams` in a full refresh of
 * `rawConfig`, in order — what a destination must hold after syncing the same config. For
 * destination tests (crash-replay, restarts) that compare what landed with what was sent.
 */
export async function forEachSampleRecord(rawConfig: Record<string, unknown>, streams: readonly string[], each: (stream: string, record: RecordData) => void): Promise<void> {
  const ctx = createConnectorContext({});
  const config = parseConfig(sampleSource.spec.connectionSpecification, rawConfig);
  const catalog = configureCatalog(await sampleSource.discover(ctx, config), streams.map((name) => ({ name, sync_mode: 'full_refresh' as const })), ['append']);
  for await (const message of sampleSource.read(ctx, config, catalog, { streams: {} })) {
    if (message.kind === 'record') each(message.stream, message.data);
    else if (message.kind === 'records') for (const record of message.records) each(message.stream, record);
  }
}
