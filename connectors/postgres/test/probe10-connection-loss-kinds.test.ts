/**
 * A dropped connection is a transient failure, wherever it happens: found by the connection
 * fault probe (probe10-connection-faults.test.ts), which saw
 * - a connection cut during startup/authentication reported as a `config` error ("Cannot
 *   connect to PostgreSQL …: Connection terminated unexpectedly": exit code 2 and
 *   `config_error` for the CLI, i.e. "fix your configuration", so schedulers do not retry);
 * - the snapshot's connection cut mid-COPY reported as an unexplained `fatal` error (the raw
 *   "Connection terminated unexpectedly" reached the runtime: "The sync failed").
 * And the replication connection lost while the snapshot is read (it idles then) failed the
 * sync instead of being re-established like any other loss of the stream.
 *
 * Real embedded PostgreSQL behind a small TCP proxy that cuts chosen connections at a chosen
 * protocol point; deterministic (the cut is placed by bytes of the wire protocol, not by time).
 */
import { createServer, connect as netConnect, type Server as NetServer, type Socket } from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectorContext } from '@tributary/core';
import { postgresSource } from '../src/index.js';
import { catalogFor, cdcConfigFor, readAll, usePostgres, type EmbeddedPostgresServer } from './support.js';

let server: EmbeddedPostgresServer;
let sql: pg.Client;
usePostgres((started, client) => {
  server = started;
  sql = client;
});

/** How the proxy treats one new connection, told whether it is a replication connection. */
type Plan = (replication: boolean) => 'pass' | 'cut-after-first-byte' | 'cut-mid-copy';

interface CuttingProxy {
  port: number;
  plan: Plan;
  /** Called when a passed-through query connection receives its first CopyData. */
  onCopy: (() => void) | undefined;
  /** Live replication connections' client sockets, to cut them from outside. */
  replication: Set<Socket>;
  cuts: number;
  close(): Promise<void>;
}

let proxy: CuttingProxy;
beforeAll(async () => {
  proxy = await startProxy(server.port);
});
afterAll(async () => {
  await proxy?.close();
});

/**
 * Forwards bytes both ways. The client's startup message says whether the connection is a
 * replication one; the server's messages are followed by their framing (type byte, length)
 * so a cut can land inside the first CopyData (`d`) of a COPY … TO STDOUT.
 */
async function startProxy(target: number): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  const self: CuttingProxy = {
    port: 0,
    plan: () => 'pass',
    onCopy: undefined,
    replication: new Set(),
    cuts: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
  const listener: NetServer = createServer((client) => {
    const upstream = netConnect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    let plan: ReturnType<Plan> | undefined;
    let replication = false;
    let startup = Buffer.alloc(0);
    /** Server→client bytes not yet forwarded whole: an incomplete message header (< 5 bytes). */
    let carry = Buffer.alloc(0);
    /** How many bytes of the current message's body are still to pass before the next header. */
    let bodyLeft = 0;
    let copySeen = false;
    const cut = (): void => {
      self.cuts++;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (plan === undefined) {
        startup = Buffer.concat([startup, chunk]);
        if (startup.length < 4 || startup.length < startup.readInt32BE(0)) return;
        replication = startup.includes(Buffer.from('\0replication\0'));
        plan = self.plan(replication);
        if (replication) self.replication.add(client);
        upstream.write(startup);
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (plan === 'cut-after-first-byte') {
        client.write(chunk.subarray(0, 1));
        cut();
        return;
      }
      const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let at = 0;
      for (;;) {
        if (bodyLeft > 0) {
          const n = Math.min(bodyLeft, data.length - at);
          at += n;
          bodyLeft -= n;
          if (bodyLeft > 0) break;
        }
        if (data.length - at < 5) break;
        const type = String.fromCharCode(data[at]!);
        const length = data.readInt32BE(at + 1);
        if (type === 'd' && !replication && !copySeen) {
          copySeen = true;
          if (plan === 'cut-mid-copy') {
            // Forward the CopyData's header and one byte of its row, then cut.
            client.write(data.subarray(0, at + 6));
            cut();
            return;
          }
          self.onCopy?.();
        }
        at += 5;
        bodyLeft = length - 4;
      }
      carry = Buffer.from(data.subarray(at));
      client.write(data.subarray(0, at));
    });
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      self.replication.delete(client);
    };
    for (const s of [client, upstream]) {
      s.on('error', closeBoth);
      s.on('close', closeBoth);
    }
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const address = listener.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  self.port = address.port;
  return self;
}

it('a connection cut while it authenticates is a transient error, not a configuration error', async () => {
  const config = cdcConfigFor({ ...server, port: proxy.port }, 'kinds_startup');
  proxy.plan = () => 'cut-after-first-byte';
  try {
    await expect(postgresSource.check(createConnectorContext({}), config)).rejects.toMatchObject({ kind: 'transient' });
  } finally {
    proxy.plan = () => 'pass';
  }
  expect(proxy.cuts).toBeGreaterThan(0);
});

it("the snapshot's connection cut in the middle of its COPY fails the read as transient, naming the lost connection", async () => {
  await sql.query('CREATE TABLE kinds_copy (id int PRIMARY KEY, v text)');
  await sql.query(`INSERT INTO kinds_copy SELECT g, 'v' || g FROM generate_series(1, 200) g`);
  const config = cdcConfigFor({ ...server, port: proxy.port }, 'kinds_copy');
  const catalog = await catalogFor(cdcConfigFor(server, 'kinds_copy'), ['kinds_copy']);
  proxy.plan = (replication) => (replication ? 'pass' : 'cut-mid-copy');
  try {
    await expect(readAll(config, catalog)).rejects.toMatchObject({ kind: 'transient', userMessage: expect.stringMatching(/connection to PostgreSQL .* was lost/) });
  } finally {
    proxy.plan = () => 'pass';
  }
  await sql.query(`SELECT pg_drop_replication_slot('kinds_copy_slot') FROM pg_replication_slots WHERE slot_name = 'kinds_copy_slot' AND NOT active`);
});

it('the replication connection lost while the snapshot is read is re-established: the read completes with every row and change', async () => {
  await sql.query('CREATE TABLE kinds_idle (id int PRIMARY KEY, v int)');
  await sql.query('INSERT INTO kinds_idle SELECT g, g FROM generate_series(1, 300) g');
  const config = cdcConfigFor({ ...server, port: proxy.port }, 'kinds_idle', { chunk_size: 100 });
  const catalog = await catalogFor(cdcConfigFor(server, 'kinds_idle'), ['kinds_idle']);
  // When the snapshot's COPY starts, the slot exists and its exported snapshot is imported:
  // the replication connection now only waits for START_REPLICATION. Cut it there.
  proxy.onCopy = () => {
    for (const socket of proxy.replication) socket.destroy();
    proxy.onCopy = undefined;
  };
  let result;
  try {
    result = await readAll({ ...config, cdc_until: 'caught_up' }, catalog);
  } finally {
    proxy.onCopy = undefined;
  }
  expect(result.records.filter((r) => r.data._tributary_op === 'r').map((r) => r.data.id)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  // A second read from the committed state streams what was written meanwhile.
  await sql.query('UPDATE kinds_idle SET v = -v WHERE id <= 3');
  const next = await readAll(config, catalog, result.state);
  expect(next.records.map((r) => [r.data._tributary_op, r.data.id, r.data.v])).toEqual([
    ['u', 1, -1],
    ['u', 2, -2],
    ['u', 3, -3],
  ]);
  await sql.query(`SELECT pg_drop_replication_slot('kinds_idle_slot')`);
});
