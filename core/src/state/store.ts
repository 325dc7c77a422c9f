import type { SyncState } from '../connector/state.js';

/**
 * Where committed checkpoints live, one entry per connection (a named sync).
 * Contract: `save` is atomic and durable — after it resolves, a crash of this process
 * (or machine) leaves either the previous state or the new one, never a mix; `load`
 * validates what it reads and throws a `config` TributaryError naming the store and
 * connection when the stored state is unreadable.
 */
export interface StateStore {
  /** Human-readable location, e.g. `file:/path` or `postgres:host/db`. Never includes secrets. */
  readonly location: string;
  load(connection: string): Promise<SyncState | undefined>;
  save(connection: string, state: SyncState): Promise<void>;
  /** Drops the state of a connection, or of some of its streams (by stream key). */
  reset(connection: string, streams?: readonly string[]): Promise<void>;
  list(): Promise<string[]>;
  close(): Promise<void>;
}
