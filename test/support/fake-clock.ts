/**
 * A hand-driven `Clock` (src/util/backoff.ts) for tests: time moves only on `advance()`, and
 * `nextTimer()` resolves when code under test arms a timer (an event, not a guess at timing).
 */
import type { Clock } from '../../src/util/backoff.js';

interface Timer { id: number; at: number; fn: () => void }

export class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, Timer>();
  private waiters: Array<(ms: number) => void> = [];
  /** Delay of every timer armed so far, in order. */
  readonly armed: number[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), fn });
    this.armed.push(ms);
    for (const w of this.waiters.splice(0)) w(ms);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** Resolves with the delay of the next timer armed after this call. */
  nextTimer(): Promise<number> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const due = [...this.timers.values()].filter((x) => x.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers.delete(due.id);
      this.t = due.at;
      due.fn();
    }
    this.t = until;
  }

  /** Fires every pending timer (time jumps to the last one). */
  runAll(): void {
    const last = Math.max(this.t, ...[...this.timers.values()].map((x) => x.at));
    this.advance(last - this.t);
  }
}
