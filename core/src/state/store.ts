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
  /**
   * Takes the connection's sync lock, or throws a `config` TributaryError saying who holds
   * it: two syncs of one connection would read the same state, deliver the same records
   * twice and overwrite each other's checkpoints. Freed by `release`, and when its holder is
   * gone (a dead process on this host; a closed database session). `runSync` holds it for
   * the whole sync. Optional, so that stores written before it keep working (unlocked).
   * A holder may lose the lock while it runs (its database session ended, its lock file
   * deleted or taken for stale); another sync may then take it, save and finish. The
   * holder's next `save` must then not write its own older state over that one: the built-in
   * stores refuse it with a `fatal` error (nothing written), and save as usual when the
   * stored state did not change meanwhile.
   */
  lock?(connection: string): Promise<ConnectionLock>;
  close(): Promise<void>;
}

/** A connection's sync lock, held (see `StateStore.lock`). */
export interface ConnectionLock {
  release(): Promise<void>;
}
