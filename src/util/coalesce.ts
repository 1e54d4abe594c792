/**
 * Runs a rebuild once per burst of triggers. The next run waits at least as long as the last
 * one took: a rebuild whose cost grows with the table (a full gateway route compile, a full
 * export validation) then takes at most about half of the CPU while changes stream in, instead
 * of running once per change (O(n) per change is O(n²) for a bulk load). A cheap rebuild runs
 * on the next microtask, as before.
 */
export class Coalescer {
  private pending = false;
  private stopped = false;
  private lastCostMs = 0;
  private lastEnd = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly run: () => void) {}

  trigger(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    const wait = this.lastCostMs - (performance.now() - this.lastEnd);
    if (wait < 1) queueMicrotask(this.fire);
    else this.timer = setTimeout(this.fire, wait);
  }

  private readonly fire = (): void => {
    this.pending = false;
    this.timer = undefined;
    if (this.stopped) return;
    const start = performance.now();
    try {
      this.run();
    } finally {
      this.lastEnd = performance.now();
      this.lastCostMs = this.lastEnd - start;
    }
  };

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
