/**
 * A single-consumer queue with a capacity: `push` waits while the queue is
 * full, which is how the reader feels the destination's pace (backpressure) and why memory
 * stays flat on unbounded streams.
 */
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private closed = false;
  private failure: unknown = undefined;
  // Producers wait in FIFO order, so batches pushed by the reader and by the age timer
  // keep their per-stream order.
  private readonly waitingProducers: Array<() => void> = [];
  private wakeConsumer: (() => void) | undefined;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

  /** Resolves once the item is queued. Rejects if the consumer failed. */
  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && this.failure === undefined) {
      await new Promise<void>((resolve) => this.waitingProducers.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
    this.items.push(item);
    const consumer = this.wakeConsumer;
    this.wakeConsumer = undefined;
    consumer?.();
  }

  /** Next item, or undefined once the queue is closed and drained. */
  async shift(): Promise<T | undefined> {
    while (this.items.length === 0 && !this.closed) {
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
    const item = this.items.shift();
    this.waitingProducers.shift()?.();
    return item;
  }

  /** No more items will come; the consumer drains what is left. */
  close(): void {
    this.closed = true;
    const consumer = this.wakeConsumer;
    this.wakeConsumer = undefined;
    consumer?.();
  }

  /** The consumer died: pending and future pushes reject with `error`. */
  fail(error: unknown): void {
    this.failure = error;
    this.items.length = 0;
    for (const wake of this.waitingProducers.splice(0)) wake();
  }
}
