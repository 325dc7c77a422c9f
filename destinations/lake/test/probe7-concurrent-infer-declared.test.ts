import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext, parseConfig, type DestinationStream, type RecordData } from '@tributary/core';
import { lakeDestination, openLakeReader, readStreamRows } from '../src/index.js';
import { keyedStream, motoLakeConfig, startMoto, startS3Proxy, writeSession, type MotoServer, type S3Proxy } from './helpers.js';

// Companion of probe7-concurrent-infer-types: a session that lost the claim of a schema
// version to another session open at the same time keeps the other's column for a field only
// when its own type for it was inferred from a record. A type the stream schema declares is
// still a breaking change against the other's column: `fail` refuses the sync, `new_column`
// writes the field to `<field>__v<n>`, exactly as when the sessions run one after the other.
//
// The race is made deterministic on moto's S3 behind a proxy: the proxy holds session B's
// claim of version 2 (B declares `q` an integer; the claim is made while B opens) while
// session A, straight to moto, infers `q` as string from its record and claims version 2.
let moto: MotoServer;
let proxy: S3Proxy;
/** Runs once before the next claim of schema version 2 of `clicks` is passed on to moto. */
let beforeClaimOfVersion2: (() => Promise<void>) | undefined;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startS3Proxy(moto.endpoint, {
    async beforeForward(req) {
      const hook = beforeClaimOfVersion2;
      if (!hook || req.method !== 'PUT' || !req.url?.includes('/_tributary/schemas/versions/clicks/0000000002.json')) return;
      beforeClaimOfVersion2 = undefined;
      await hook();
    },
  });
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
});

const event_time = { type: 'string', format: 'date-time' };
/** A does not declare `q` (its column's type is inferred from its first value); B declares it an integer. */
const inferring = keyedStream('clicks', { event_time });
const declaring = keyedStream('clicks', { event_time, q: { type: 'integer' } });
const click = (id: number, q?: unknown): RecordData => ({ id, tenant_id: 't1', customer_id: 'c1', event_time: '2024-01-01T00:00:00Z', ...(q !== undefined ? { q } : {}) });

const open = (config: Record<string, unknown>, stream: DestinationStream) => lakeDestination.open(createConnectorContext({}), parseConfig(lakeDestination.spec.connectionSpecification, config), [stream]);

/** Opens B through the proxy; A's whole session (q: 'x') runs while B's claim of version 2 waits. */
async function openDeclaringWhileAInfers(bucket: string, mode: 'fail' | 'new_column') {
  await moto.createBucket(bucket);
  const direct = motoLakeConfig(moto.endpoint, bucket, { on_breaking_change: mode });
  await writeSession(direct, inferring, [[click(0)]]); // schema version 1
  let aRejected: unknown;
  beforeClaimOfVersion2 = async () => {
    aRejected = await writeSession(direct, inferring, [[click(1, 'x')]]);
  };
  const b = open(motoLakeConfig(proxy.endpoint, bucket, { on_breaking_change: mode }), declaring);
  return { direct, b, aRejected: () => aRejected };
}

it('on_breaking_change fail: a declared type that differs from the column another session open at the same time inferred still fails the sync', async () => {
  const { b, aRejected } = await openDeclaringWhileAInfers('concurrent-declared-fail', 'fail');
  await expect(b).rejects.toThrow('Breaking schema change in stream "clicks": field "q" was string (schema version 2) and is now integer.');
  expect(aRejected()).toEqual([]);
}, 120_000);

it('on_breaking_change new_column: a declared type that differs from the column another session open at the same time inferred goes to a new versioned column', async () => {
  const { direct, b: opening, aRejected } = await openDeclaringWhileAInfers('concurrent-declared-new-column', 'new_column');
  const b = await opening;
  expect(aRejected()).toEqual([]);
  expect((await b.write({ stream: 'clicks', records: [click(2, 5)], emittedAt: Date.now() }))?.rejected).toBeUndefined();
  await b.commit();
  await b.close({ completed: true });
  const rows = await readStreamRows(direct, { stream: 'clicks' });
  expect(rows.map((r) => [r.payload.id, r.payload.q ?? null, r.schema_version]).sort((x, y) => Number(x[0]) - Number(y[0]))).toEqual([
    [0, null, 1],
    [1, 'x', 2],
    [2, 5, 3],
  ]);
  const reader = await openLakeReader(direct);
  try {
    expect(await reader.query('SELECT id, q, q__v3, schema_version FROM events ORDER BY id')).toEqual([
      { id: 0, q: null, q__v3: null, schema_version: 1 },
      { id: 1, q: 'x', q__v3: null, schema_version: 2 },
      { id: 2, q: null, q__v3: 5, schema_version: 3 },
    ]);
  } finally {
    await reader.close();
  }
}, 120_000);
