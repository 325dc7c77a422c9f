/**
 * The PostgreSQL state store keeps every state the file store keeps. A checkpoint's state is
 * any JSON object, and a source may put a string copied from its data into it (a cursor, a
 * page token): such a string can hold a NUL character or an unpaired UTF-16 surrogate, which
 * JSON.stringify writes as the escapes `\u0000` / `\ud800`. jsonb refuses both (22P05,
 * 22P02), so the save failed as "Cannot write state … (PostgreSQL error 22P02)", and since
 * the next sync reached the same checkpoint, every sync of the connection failed there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStateStore, runSync, type SourceMessage, type SyncState } from '@tributary/core';
import { startPostgres, withClient, type EmbeddedPostgresServer } from './support/embedded-postgres.js';
import { discardingDestination, itemsSource } from './support/sync-fixtures.js';

let server: EmbeddedPostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.stop());

const catalog = {
  streams: [
    {
      stream: { name: 'items', json_schema: { type: 'object' }, supported_sync_modes: ['incremental' as const] },
      sync_mode: 'incremental' as const,
      destination_sync_mode: 'append' as const,
    },
  ],
};

function columnType(table: string, connection: string): Promise<string> {
  return withClient(server, async (client) => {
    const { rows } = await client.query<{ kind: string }>(`SELECT jsonb_typeof(state) AS kind FROM ${client.escapeIdentifier(table)} WHERE connection = $1`, [connection]);
    return rows[0]!.kind;
  });
}

describe('PostgreSQL state store: states holding strings jsonb cannot hold', () => {
  it.each([
    ['a NUL character', 'tok\u0000en'],
    ['an unpaired high surrogate', 'abc\ud800'],
    ['an unpaired low surrogate', '\udc00xyz'],
  ])('saves and loads a state whose cursor holds %s unchanged', async (_what, cursor) => {
    const store = createPostgresStateStore({ connectionString: server.url, table: 'text_state' });
    try {
      const state: SyncState = { streams: { items: { cursor, [`key ${cursor}`]: 1 } }, shared: { token: cursor } };
      await store.save('odd-strings', state);
      expect(await store.load('odd-strings')).toEqual(state);
      // Resetting one stream rewrites the row through the same path.
      await store.save('odd-strings', { streams: { items: { cursor }, other: { cursor } } });
      await store.reset('odd-strings', ['other']);
      expect(await store.load('odd-strings')).toEqual({ streams: { items: { cursor } } });
    } finally {
      await store.close();
    }
  });

  it('keeps an ordinary state a jsonb array (readable in SQL), and a literal backslash-u text round-trips', async () => {
    const store = createPostgresStateStore({ connectionString: server.url, table: 'text_state' });
    try {
      await store.save('plain', { streams: { items: { cursor: '2024-01-01T00:00:00Z', emoji: 'ok \ud83d\ude00' } } });
      expect(await columnType('text_state', 'plain')).toBe('array');
      const literal: SyncState = { streams: { items: { cursor: 'C:\\u0000\\ud800 path' } } };
      await store.save('literal', literal);
      expect(await store.load('literal')).toEqual(literal);
    } finally {
      await store.close();
    }
  });

  it('a sync whose checkpoint holds an unpaired surrogate completes, and the next one resumes from it', async () => {
    const store = createPostgresStateStore({ connectionString: server.url, table: 'text_state_sync' });
    const seen: Array<Record<string, unknown> | undefined> = [];
    const source = itemsSource('surrogates', async function* (): AsyncGenerator<SourceMessage> {
      yield { kind: 'record', stream: 'items', data: { id: 'a\ud800' } };
      yield { kind: 'checkpoint', stream: 'items', state: { last_id: 'a\ud800' } };
    });
    const resuming = { ...source, read: async function* (...args: Parameters<typeof source.read>): AsyncGenerator<SourceMessage> {
      seen.push(args[3].streams.items);
      yield* source.read(...args);
    } };
    try {
      const options = { connection: 'surrogate-sync', source: resuming, sourceConfig: {}, destination: discardingDestination(), destinationConfig: {}, catalog, stateStore: store };
      const first = await runSync(options);
      expect(first.error?.userMessage).toBeUndefined();
      expect(first.outcome).toBe('completed');
      const second = await runSync(options);
      expect(second.outcome).toBe('completed');
      expect(seen).toEqual([undefined, { last_id: 'a\ud800' }]);
    } finally {
      await store.close();
    }
  });
});
