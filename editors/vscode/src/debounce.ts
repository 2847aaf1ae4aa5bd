// Runs an async query after the input has been quiet for `delayMs`, and delivers only the answer to
// the latest input: typing "pars", "parse" must never end with the results for "pars" on screen.

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A cancellation flag handed to each run; `cancelled` turns true once a newer input arrives. */
export interface RunSignal {
  readonly cancelled: boolean;
  onCancel(listener: () => void): void;
}

class Signal implements RunSignal {
  cancelled = false;
  private listeners: Array<() => void> = [];
  onCancel(listener: () => void): void {
    if (this.cancelled) {
      listener();
    } else {
      this.listeners.push(listener);
    }
  }
  cancel(): void {
    if (!this.cancelled) {
      this.cancelled = true;
      for (const listener of this.listeners.splice(0)) {
        listener();
      }
    }
  }
}

export interface LatestOnlyCallbacks<R> {
  /** A run started (after the quiet period). */
  onStart?(input: string): void;
  /** The latest run finished with a result. */
  onResult(input: string, result: R): void;
  /** The latest run failed. */
  onError?(input: string, error: unknown): void;
  /** No run is pending or in flight any more (busy indicator off). */
  onIdle?(): void;
}

export class LatestOnly<R> {
  private timer: unknown = undefined;
  private current: Signal | undefined;
  private generation = 0;
  private disposed = false;

  constructor(
    private readonly run: (input: string, signal: RunSignal) => Promise<R>,
    private readonly callbacks: LatestOnlyCallbacks<R>,
    private readonly delayMs: number,
    private readonly clock: Clock = realClock,
  ) {}

  /** New input: restart the quiet period and cancel the run in flight. */
  push(input: string): void {
    if (this.disposed) {
      return;
    }
    this.generation += 1;
    this.current?.cancel();
    this.current = undefined;
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
    }
    const generation = this.generation;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.start(input, generation);
    }, this.delayMs);
  }

  private async start(input: string, generation: number): Promise<void> {
    if (this.disposed || generation !== this.generation) {
      return;
    }
    const signal = new Signal();
    this.current = signal;
    this.callbacks.onStart?.(input);
    try {
      const result = await this.run(input, signal);
      if (!this.disposed && generation === this.generation) {
        this.callbacks.onResult(input, result);
      }
    } catch (error) {
      if (!this.disposed && generation === this.generation && !signal.cancelled) {
        this.callbacks.onError?.(input, error);
      }
    } finally {
      if (!this.disposed && generation === this.generation) {
        this.current = undefined;
        this.callbacks.onIdle?.();
      }
    }
  }

  /** Drop the pending input and the run in flight (e.g. the query was erased); reusable after. */
  cancel(): void {
    this.generation += 1;
    this.current?.cancel();
    this.current = undefined;
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  dispose(): void {
    this.disposed = true;
    this.current?.cancel();
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
    }
  }
}
