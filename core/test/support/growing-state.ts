import type { SyncState } from '@tributary/core';

/**
 * The i-th state of the crash test: deterministic, and larger for every i, so that a file
 * mixing two writes (or cut short) cannot pass for a valid state.
 */
export function growingState(i: number): SyncState {
  return {
    streams: {
      // Hundreds of KB and more: several write chunks, so a non-atomic write would be seen torn.
      'crm.contacts': { cursor: i, pad: `${i}:`.repeat(100_000 + 2_000 * i) },
      deals: { cursor: `2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`, seen: Array.from({ length: i % 500 }, (_, n) => n + i) },
    },
  };
}
