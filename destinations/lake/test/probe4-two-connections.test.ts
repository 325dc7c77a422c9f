import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig } from '@tributary/core';
import { applyRetention, lakeDestination, openLakeReader, readStreamRows } from '../src/index.js';
import { clickStream, motoLakeConfig, startMoto, writeSession, type MotoServer } from './helpers.js';

// Two connections (two sync files, each with its own state) writing one stream of one lake.
// A `complete` log entry ended the replay window of its whole stream, whichever connection
// wrote it: connection B completing a sync cleared the window of connection A's sync that
// crashed after its commit, so A's resume stored its replayed records twice, and retention no
// longer deferred A's files. Entries now record the sync's connection (ConnectorContext's
// `connection`, from runSync), and a `complete` ends only its own connection's windows.
//
// Two sessions open at once that each add a field: the stream's schema history was saved with
// a plain write, last writer wins, so one session's version 2 replaced the other's, and the
// rows written with it lost that field in the payloads the library rebuilt. Each version is
// now claimed (created only if absent) before rows use it; the second session evolves on top
// of the first's version instead.
let moto: MotoServer;
beforeAll(async () => {
  moto = await startMoto();
}, 60_000);
afterAll(async () => {
  await moto?.stop();
});

const stream = clickStream();
const clicks = (day: string, ...ids: number[]) => ids.map((id) => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: `${day}T00:00:00Z` }));

async function countRows(config: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
  const reader = await openLakeReader(config);
  try {
    return await reader.query('SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS ids FROM events');
  } finally {
    await reader.close();
  }
}

it('another connection completing the same stream does not end the replay window of a crashed sync: its resume adds no rows', async () => {
  await moto.createBucket('two-connections');
  const config = motoLakeConfig(moto.endpoint, 'two-connections');
  await writeSession(config, stream, [clicks('2024-01-01', 1, 2, 3)], false, 'a'); // connection A: commit, then crash
  await writeSession(config, stream, [clicks('2024-01-01', 100, 101)], true, 'b'); // connection B: a whole sync
  await writeSession(config, stream, [clicks('2024-01-01', 1, 2, 3, 4)], true, 'a'); // A resumes: replays 1–3
  // Seen without the fix: [{ n: 9, ids: 6 }] (ids 1–3 stored twice).
  expect(await countRows(config)).toEqual([{ n: 6, ids: 6 }]);
}, 120_000);

it("another connection completing the same stream does not let retention drop a crashed sync's files before its resume", async () => {
  await moto.createBucket('two-connections-retention');
  const config = motoLakeConfig(moto.endpoint, 'two-connections-retention');
  await writeSession(config, stream, [clicks('2020-01-01', 1, 2, 3)], false, 'a'); // A: commit, then crash
  await writeSession(config, stream, [clicks('2024-01-01', 100)], true, 'b'); // B: a whole sync
  const retention = await applyRetention(config, { before: '2021-01-01T00:00:00Z' });
  // Seen without the fix: filesRemoved 1, filesDeferred 0 (A's expired file goes).
  expect({ removed: retention.filesRemoved, deferred: retention.filesDeferred }).toEqual({ removed: 0, deferred: 1 });
}, 120_000);

it('two sessions open at once that each add a field keep both fields in the payloads the library rebuilds', async () => {
  await moto.createBucket('two-connections-schema');
  const config = motoLakeConfig(moto.endpoint, 'two-connections-schema');
  const open = () => lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);
  const a = await open();
  const b = await open();
  await a.write({ stream: 'clicks', records: [{ ...clicks('2024-01-01', 1)[0]!, plan: 'gold' }], emittedAt: Date.now() });
  await b.write({ stream: 'clicks', records: [{ ...clicks('2024-01-01', 2)[0]!, seats: 5 }], emittedAt: Date.now() });
  await a.commit();
  await b.commit();
  await a.close({ completed: true });
  await b.close({ completed: true });
  const payloads = (await readStreamRows(config, { stream: 'clicks' })).map((r) => r.payload);
  // Seen before: row 1's payload was { …, seats: null } — `plan: 'gold'` gone (the file's `plan` column held it).
  expect(payloads.map((p) => [p.id, p.plan ?? null, p.seats ?? null])).toEqual([
    [1, 'gold', null],
    [2, null, 5],
  ]);
}, 120_000);
