/**
 * The PostgreSQL state store retries a save that failed transiently: the server ended the
 * store's session (pg_terminate_backend, a restart, a failover, idle_session_timeout) while
 * the save's upsert ran, or before it reached the server. A save is one upsert of the whole
 * state, so repeating it leaves the same row. Before, the sync failed on the first such error
 * although the next attempt would have succeeded.
 *
 * Deterministic: the test holds the state row locked from its own session, so the sync's
 * upsert is seen waiting in pg_stat_activity, and ends exactly that backend.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStateStore, runSync, type SourceMessage, type StateStore, type SyncEvent } from '@tributary/core';
import { startPostgres, withClient, type EmbeddedPostgresServer } from './support/embedded-postgres.js';
import { discardingDestination, itemsSource } from './support/sync-fixtures.js';

let server: EmbeddedPostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.stop());

const catalog = { streams: [{ stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental' as const] }, sync_mode: 'incremental' as const, destination_sync_mode: 'append' as const }] };

function withAdmin<T>(task: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(server, task);
}

/** Waits (polling) until a session of `appName` waits on a lock in an INSERT, and ends that backend. */
async function terminateBlockedUpsert(appName: string): Promise<number> {
  return withAdmin(async (admin) => {
    for (;;) {
      const { rows } = await admin.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%'`,
        [appName],
      );
      if (rows[0]) {
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
        return rows[0].pid;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  });
}

describe('PostgreSQL state store: a save whose session the server ends is retried', () => {
  it('the sync completes with the last checkpoint stored, after its backend was terminated mid-save', async () => {
    const appName = `probe3-retry-${process.pid}`;
    const store: StateStore = createPostgresStateStore({ connectionString: `${server.url}?application_name=${appName}`, table: 'retry_state' });
    /** Resolves once the first checkpoint is stored. */
    let firstSaved!: () => void;
    const saved = new Promise<void>((resolve) => (firstSaved = resolve));
    let terminated: Promise<number> | undefined;
    const locker = new pg.Client({ connectionString: server.url });
    await locker.connect();
    try {
      const source = itemsSource('two-steps', async function* (): AsyncGenerator<SourceMessage> {
        yield { kind: 'record', stream: 'items', data: { id: 1 } };
        yield { kind: 'checkpoint', stream: 'items', state: { after: 1 } };
        await saved;
        // Between the commits: the row is locked, so the next save's upsert waits, and is ended.
        await locker.query('BEGIN');
        await locker.query('SELECT * FROM retry_state WHERE connection = $1 FOR UPDATE', ['c']);
        terminated = terminateBlockedUpsert(appName).finally(() => locker.query('ROLLBACK'));
        yield { kind: 'record', stream: 'items', data: { id: 2 } };
        yield { kind: 'checkpoint', stream: 'items', state: { after: 2 } };
      });
      const result = await runSync({
        connection: 'c',
        source,
        sourceConfig: {},
        destination: discardingDestination(),
        destinationConfig: {},
        catalog,
        stateStore: store,
        batching: { commitIntervalMs: 0 },
        onEvent: (event: SyncEvent) => {
          if (event.type === 'state') firstSaved();
        },
      });
      expect(await terminated).toBeGreaterThan(0);
      expect(result.error?.userMessage).toBeUndefined();
      expect(result.outcome).toBe('completed');
      expect(result.state).toEqual({ streams: { items: { after: 2 } } });
      expect(await store.load('c')).toEqual({ streams: { items: { after: 2 } } });
    } finally {
      await locker.end();
      await store.close();
    }
  });

  it('a released lock\'s session that the server ends later, idle in the pool, is not released twice (no error thrown from the event)', async () => {
    const appName = `probe3-idle-${process.pid}`;
    const store = createPostgresStateStore({ connectionString: `${server.url}?application_name=${appName}`, table: 'idle_state' });
    try {
      const lock = await store.lock!('c');
      await lock.release();
      // The lock's session now idles in the pool; the server ends it (restart, idle_session_timeout, an admin).
      await withAdmin((c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [appName]));
      // The store goes on working on a new session once the client learned about the ended one.
      let saved = false;
      while (!saved) saved = await store.save('c', { streams: { items: { after: 1 } } }).then(() => true, () => false);
      expect(await store.load('c')).toEqual({ streams: { items: { after: 1 } } });
    } finally {
      await store.close();
    }
  });

  it('a save refused for a reason a retry cannot fix (another sync holds the lock) is not retried', async () => {
    const url = `${server.url}?application_name=probe3-noretry`;
    const syncing = createPostgresStateStore({ connectionString: url, table: 'noretry_state' });
    const other = createPostgresStateStore({ connectionString: url, table: 'noretry_state' });
    try {
      const lock = await syncing.lock!('c');
      await withAdmin((c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted`));
      let taken;
      while (!taken) taken = await other.lock!('c').catch(() => undefined);
      let refused: unknown;
      // The client learns asynchronously that its lock session ended; then the save must fail at once, as config.
      while (refused === undefined) {
        refused = await syncing.save('c', { streams: { items: { after: 1 } } }).then(
          () => undefined,
          (error: unknown) => error,
        );
        if (refused === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      expect(refused).toMatchObject({ kind: 'config' });
      await taken.release();
      await lock.release();
    } finally {
      await syncing.close();
      await other.close();
    }
  });
});
