import { parseArgs } from 'node:util';
import { parseConfig, planSync, readSyncFile, TributaryError, type PluginCommand } from '@tributary/core';
import { loadLakeConfig, readLatestAsOf } from '@tributary/destination-lake';
import { redisConfigSchema, resolveMapping } from './config.js';
import { compareOnlineOffline, offlineRowFromLake, type ParityReport } from './parity.js';
import { closeRedisClient, connectRedisClient, createRedisClient, toRedisError } from './redis-client.js';

const USAGE = `Usage:
  tributary parity <redis-sync.yaml> --lake <lake config .json | lake sync .yaml> [--stream S] [--tenant T] [--as-of <ISO>] [--samples N] [--json]

Compares the online feature store (Redis, as written by the sync file) with the event lake:
per entity, the latest lake row as of the given time (default now) must be what Redis serves
(same event time, same feature values); an entity whose latest row is a delete must be absent. Streams default to every stream of the sync file.
Exit code 0 when both agree, 1 when there are differences, 2 on a usage or config error.`;

/**
 * `tributary parity`: online/offline parity of the feature store. The Redis side's mapping
 * (entity id, tenant, event time, feature group, features) is resolved from the Redis sync
 * file exactly as `tributary sync` resolves it; the lake side is its point-in-time read.
 */
const parityCommand: PluginCommand = async (args) => {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        lake: { type: 'string' },
        stream: { type: 'string', multiple: true },
        tenant: { type: 'string' },
        'as-of': { type: 'string' },
        samples: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new TributaryError('config', { userMessage: `${(error as Error).message}\n\n${USAGE}` });
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const syncPath = positionals[0];
  if (!syncPath || !values.lake || positionals.length > 1) throw new TributaryError('config', { userMessage: USAGE });
  const asOf = values['as-of'] === undefined ? Date.now() : Date.parse(values['as-of']);
  if (!Number.isFinite(asOf)) throw new TributaryError('config', { userMessage: `--as-of ${values['as-of']} is not an ISO-8601 date-time` });
  // The writer never stores an empty tenant (an empty tenant field is default_tenant), nor does the lake.
  if (values.tenant === '') throw new TributaryError('config', { userMessage: `--tenant '' selects nothing: records with an empty tenant field are stored under default_tenant; give that tenant, or leave --tenant out for all` });
  const samples = values.samples === undefined ? 20 : Number(values.samples);
  if (!Number.isInteger(samples) || samples < 0) throw new TributaryError('config', { userMessage: `--samples must be a whole number` });

  const plan = await planSync(await readSyncFile(syncPath));
  if (plan.destination.name !== 'redis') {
    throw new TributaryError('config', { userMessage: `${syncPath} writes to "${plan.destination.name}", not to redis: give the sync file that feeds the feature store` });
  }
  const redis = parseConfig(redisConfigSchema, plan.destinationConfig, 'redis config');
  const lake = await loadLakeConfig(values.lake);
  const wanted = values.stream;
  const streams = wanted ? plan.streams.filter((s) => wanted.includes(s.key) || wanted.includes(s.name)) : plan.streams;
  if (wanted && streams.length !== wanted.length) {
    throw new TributaryError('config', { userMessage: `Unknown stream(s) ${wanted.filter((w) => !streams.some((s) => s.key === w || s.name === w)).join(', ')}; the sync file has ${plan.streams.map((s) => s.key).join(', ')}` });
  }

  const client = createRedisClient(redis);
  client.on('error', () => undefined); // classified where the calls fail
  const reports: ParityReport[] = [];
  try {
    await connectRedisClient(client, 'parity');
    for (const stream of streams) {
      const rows = await readLatestAsOf(lake, {
        stream: stream.key,
        asOf,
        // A key whose latest row is a delete comes back as that delete: Redis must not serve it
        // (it holds a tombstone, or nothing), which the report counts as deleted.
        includeDeleted: true,
        ...(values.tenant !== undefined ? { tenant: values.tenant } : {}),
      });
      reports.push(
        await compareOnlineOffline({
          client,
          prefix: redis.key_prefix ?? 'trib',
          mapping: resolveMapping(redis, stream),
          offline: rows.map(offlineRowFromLake),
          ...(values.tenant !== undefined ? { tenant: values.tenant } : {}),
          sampleLimit: samples,
        }),
      );
    }
  } catch (error) {
    throw toRedisError(error, 'parity');
  } finally {
    await closeRedisClient(client);
  }

  if (values.json) {
    for (const report of reports) process.stdout.write(`${JSON.stringify({ as_of: new Date(asOf).toISOString(), ...report })}\n`);
  } else {
    for (const report of reports) process.stdout.write(describe(report, asOf));
  }
  return reports.every((r) => r.ok) ? 0 : 1;
};

export default parityCommand;

function describe(report: ParityReport, asOf: number): string {
  const lines = [
    `${report.stream} (entity type ${report.entityType}, feature group ${report.featureGroup}) as of ${new Date(asOf).toISOString()}: ${report.ok ? 'IN PARITY' : 'DIFFERENCES'}`,
    `  lake entities ${report.offlineEntities}, redis entities ${report.onlineEntities}, matching ${report.matching}` +
      (report.expired ? `, expired by TTL ${report.expired}` : '') +
      (report.expiryUnknown ? `, gone from redis with their TTL passed since their event time (expired, or never written: cannot tell) ${report.expiryUnknown}` : '') +
      (report.deleted ? `, deleted ${report.deleted}` : '') +
      (report.unmapped ? `, lake rows without entity id/tenant/event time ${report.unmapped}` : ''),
  ];
  for (const [kind, count] of Object.entries(report.counts)) if (count > 0) lines.push(`  ${kind}: ${count}`);
  for (const d of report.samples) {
    const detail = [
      d.offlineEventTime ? `lake ${d.offlineEventTime}` : undefined,
      d.onlineEventTime ? `redis ${d.onlineEventTime}` : undefined,
      d.offlinePosition ? `lake position ${d.offlinePosition}` : undefined,
      d.onlinePosition ? `redis position ${d.onlinePosition}` : undefined,
      d.features ? `features ${d.features.join(', ')}` : undefined,
    ].filter(Boolean);
    lines.push(`    ${d.kind} ${d.tenant}/${d.entityId}${detail.length ? ` (${detail.join('; ')})` : ''}`);
  }
  for (const e of report.expiryUnknownSamples) lines.push(`    expiry unknown (not a difference) ${e.tenant}/${e.entityId} (lake ${e.offlineEventTime})`);
  return `${lines.join('\n')}\n`;
}
