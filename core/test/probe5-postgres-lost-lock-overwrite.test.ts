/**
 * The PostgreSQL state store's connection lock is an advisory lock of one database session.
 * When the server ends that session (pg_terminate_backend, a restart, idle_session_timeout)
 * while sync A runs, another sync B of the connection can take the lock, save its (further
 * advanced) state and finish. A's next save then took the lock again and upserted A's own,
 * older state: the stored state moved backwards and B's progress was forgotten. Now the save
 * sees that the row changed since A last read or saved it, and refuses (fatal) without writing.
 *
 * Two stores in one process stand for the two syncs; A's lock session is ended from an admin
 * session. The conditional write itself is also checked against a concurrent writer that
 * ignores the lock. Nothing here depends on timing: every wait polls for a state of the server.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStateStore, type ConnectionLock, type StateStore, type SyncState } from '@tributary/core';
import { startPostgres, withClient, type EmbeddedPostgresServer } from './support/embedded-postgres.js';

let server: EmbeddedPostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.stop());

const at = (after: number): SyncState => ({ streams: { items: { after } } });

function withAdmin<T>(task: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(server, task);
}

/**
 * Ends the sessions of `appName`: with `lockOnly`, the one holding an advisory lock (the
 * store's connection lock), which must exist; else all of them (whether the store already
 * took its lock again after an earlier loss depends on when its client noticed that loss).
 */
async function endSessions(appName: string, lockOnly: boolean): Promise<void> {
  const ended = await withAdmin(async (admin) => {
    const { rows } = await admin.query<{ ended: boolean }>(
      lockOnly
        ? `SELECT pg_terminate_backend(a.pid) AS ended FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
           WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted`
        : `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = $1`,
      [appName],
    );
    return rows.length;
  });
  if (lockOnly) expect(ended).toBe(1);
}

/** Takes the lock with `store`, polling while the server has not yet freed the ended session's lock. */
async function lockWhenFree(store: StateStore, connection: string): Promise<ConnectionLock> {
  for (;;) {
    const lock = await store.lock!(connection).catch(() => undefined);
    if (lock) return held(lock);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Locks still held when a test ends (it failed): released by `releaseHeld`, else closing their store would wait for them. */
const holding = new Set<ConnectionLock>();
function held(lock: ConnectionLock): ConnectionLock {
  holding.add(lock);
  return { release: () => (holding.delete(lock), lock.release()) };
}
async function releaseHeld(): Promise<void> {
  for (const lock of holding) await lock.release().catch(() => undefined);
  holding.clear();
}

async function refusal(task: Promise<unknown>): Promise<unknown> {
  return task.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('PostgreSQL state store: a sync that lost its lock never writes over the state of a sync that ran meanwhile', () => {
  it('refuses (fatal) the save of sync A after sync B took the lost lock, saved further progress and finished; B\'s state stays', async () => {
    const table = 'lost_lock_state';
    const urlA = `${server.url}?application_name=probe5-a-${process.pid}`;
    const a = createPostgresStateStore({ connectionString: urlA, table });
    const b = createPostgresStateStore({ connectionString: `${server.url}?application_name=probe5-b-${process.pid}`, table });
    try {
      const lockA = held(await a.lock!('c'));
      expect(await a.load('c')).toBeUndefined();
      await a.save('c', at(1));

      await endSessions(`probe5-a-${process.pid}`, true);
      const lockB = await lockWhenFree(b, 'c');
      expect(await b.load('c')).toEqual(at(1));
      await b.save('c', at(5));
      await lockB.release();

      // A goes on with its own, older progress.
      const error = await refusal(a.save('c', at(2)));
      expect(error).toMatchObject({ kind: 'fatal' });
      expect((error as Error).message).toMatch(/another sync of this connection ran while this one had lost its lock/);
      expect(await b.load('c')).toEqual(at(5));
      // And it keeps refusing: no later checkpoint of A gets through either.
      expect(await refusal(a.save('c', at(3)))).toMatchObject({ kind: 'fatal' });
      expect(await b.load('c')).toEqual(at(5));
      await lockA.release();

      // The next sync resumes from B's state and saves normally.
      const lockNext = held(await a.lock!('c'));
      expect(await a.load('c')).toEqual(at(5));
      await a.save('c', at(6));
      await lockNext.release();
      expect(await b.load('c')).toEqual(at(6));
    } finally {
      await releaseHeld();
      await a.close();
      await b.close();
    }
  });

  it('refuses the save of sync A when B reset the state (deleted the row) while A had lost its lock', async () => {
    const table = 'lost_lock_reset';
    const a = createPostgresStateStore({ connectionString: `${server.url}?application_name=probe5-ra-${process.pid}`, table });
    const b = createPostgresStateStore({ connectionString: server.url, table });
    try {
      const lockA = held(await a.lock!('c'));
      await a.load('c');
      await a.save('c', at(1));
      await endSessions(`probe5-ra-${process.pid}`, true);
      const lockB = await lockWhenFree(b, 'c');
      await b.reset('c');
      await lockB.release();

      expect(await refusal(a.save('c', at(2)))).toMatchObject({ kind: 'fatal' });
      expect(await b.load('c')).toBeUndefined();
      await lockA.release();
    } finally {
      await releaseHeld();
      await a.close();
      await b.close();
    }
  });

  it('saves normally after the lock was lost when nobody changed the state meanwhile (also when another sync only took the lock, or saved the same state)', async () => {
    const table = 'lost_lock_quiet';
    const app = `probe5-q-${process.pid}`;
    const a = createPostgresStateStore({ connectionString: `${server.url}?application_name=${app}`, table });
    const b = createPostgresStateStore({ connectionString: server.url, table });
    try {
      const lockA = held(await a.lock!('c'));
      expect(await a.load('c')).toBeUndefined();
      // Lost before the first save (no row yet), nobody else ran: A creates the row.
      await endSessions(app, false);
      await a.save('c', at(1));
      expect(await b.load('c')).toEqual(at(1));

      // Lost again; B takes the lock and gives it back without saving.
      await endSessions(app, false);
      const lockB = await lockWhenFree(b, 'c');
      await lockB.release();
      await a.save('c', at(2));
      expect(await b.load('c')).toEqual(at(2));

      // Lost again; B saves exactly the state A last saved (no progress of its own).
      await endSessions(app, false);
      const lockB2 = await lockWhenFree(b, 'c');
      await b.save('c', await b.load('c') as SyncState);
      await lockB2.release();
      await a.save('c', at(3));
      expect(await b.load('c')).toEqual(at(3));
      await lockA.release();
    } finally {
      await releaseHeld();
      await a.close();
      await b.close();
    }
  });

  for (const change of ['UPDATE lost_lock_race SET updated_at = now() - interval \'1 day\', state = \'[]\'::jsonb', 'DELETE FROM lost_lock_race']) {
    it(`the conditional write is atomic: a save waiting on a concurrent write (${change.split(' ')[0]}) of the row does not write after it`, async () => {
      const app = `probe5-race-${process.pid}`;
      const a = createPostgresStateStore({ connectionString: `${server.url}?application_name=${app}`, table: 'lost_lock_race' });
      const other = new pg.Client({ connectionString: server.url });
      await other.connect();
      try {
        const lockA = held(await a.lock!('c'));
        await a.load('c');
        await a.save('c', at(1));
        // A writer that ignores the lock (standing for a sync whose lost lock A has not noticed yet) holds the row changed, uncommitted.
        await other.query('BEGIN');
        await other.query(`${change} WHERE connection = 'c'`);
        const saving = refusal(a.save('c', at(2)));
        await withAdmin(async (admin) => {
          for (;;) {
            const { rows } = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [app]);
            if (rows.length > 0) return;
            await new Promise((r) => setTimeout(r, 20));
          }
        });
        await other.query('COMMIT');
        expect(await saving).toMatchObject({ kind: 'fatal' });
        const { rows } = await other.query<{ state: unknown }>(`SELECT state FROM lost_lock_race WHERE connection = 'c'`);
        expect(rows).toEqual(change.startsWith('DELETE') ? [] : [{ state: [] }]);
        await lockA.release();
      } finally {
        await releaseHeld();
        await other.end();
        await a.close();
      }
    });
  }

  it('a store saving without holding the lock (no sync) still writes whatever is stored, as before', async () => {
    const table = 'lost_lock_unlocked';
    const a = createPostgresStateStore({ connectionString: server.url, table });
    const b = createPostgresStateStore({ connectionString: server.url, table });
    try {
      await a.save('c', at(1));
      expect(await a.load('c')).toEqual(at(1));
      await b.save('c', at(5));
      await a.save('c', at(2));
      expect(await b.load('c')).toEqual(at(2));
    } finally {
      await releaseHeld();
      await a.close();
      await b.close();
    }
  });
});
