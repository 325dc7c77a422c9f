/**
 * A moment as both of this machine's clocks saw it, for the durations that bound how stale
 * a writer's knowledge of the store may be (the log freshness of commit-log.ts, commit
 * leases). The monotonic clock (`performance.now()`: CLOCK_MONOTONIC) stands still while
 * the machine is suspended (a laptop asleep, a paused VM), but the store's clock, by which
 * log entries and leases age, moves on; the wall clock moves on too, but can be set back.
 * The larger of the two elapsed times errs towards "too old" in both cases: a writer judged
 * by the monotonic clock alone woke from two hours asleep believing its view seconds old.
 */
export interface Moment {
  monotonicMs: number;
  wallMs: number;
}

export function momentNow(): Moment {
  return { monotonicMs: performance.now(), wallMs: Date.now() };
}

/** Milliseconds since `moment`: the larger of the two clocks' elapsed times. */
export function msSince(moment: Moment): number {
  return Math.max(performance.now() - moment.monotonicMs, Date.now() - moment.wallMs);
}
