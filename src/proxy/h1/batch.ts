/**
 * Writes of one socket gathered while a batch is held (one read's worth of work) and sent as ONE
 * buffer: a response head and its body, or a request head and the body that arrived with it,
 * cost one write instead of a corked writev of several chunks (each of which goes through the
 * stream machinery). Strings here are latin1 (HTTP heads as llhttp gives them, our own ASCII).
 */
import type { Socket } from 'node:net';

export class WriteBatch {
  private parts: (string | Buffer)[] = [];
  private bytes = 0;
  private depth = 0;

  constructor(private readonly socket: Socket) {}

  hold(): void {
    this.depth++;
  }

  release(): void {
    if (this.depth > 0 && --this.depth === 0 && this.parts.length !== 0) this.flush();
  }

  /** Queues (or writes, when no batch is held); false when the socket asks the writer to wait for 'drain'. */
  write(part: string | Buffer): boolean {
    if (this.depth === 0) {
      const s = this.socket;
      if (s.destroyed) return true;
      return typeof part === 'string' ? s.write(part, 'latin1') : s.write(part);
    }
    this.parts.push(part);
    this.bytes += part.length;
    return !this.socket.writableNeedDrain;
  }

  /** Sends what is queued, then ends the socket (what comes after is dropped). */
  end(last?: string): void {
    if (last !== undefined) this.parts.push(last), (this.bytes += last.length);
    if (this.parts.length !== 0) this.flush();
    this.depth = 0;
    this.socket.end();
  }

  flush(): void {
    const parts = this.parts;
    const s = this.socket;
    this.parts = [];
    const bytes = this.bytes;
    this.bytes = 0;
    if (s.destroyed) return;
    if (parts.length === 1) {
      const p = parts[0];
      if (typeof p === 'string') s.write(p, 'latin1');
      else s.write(p);
      return;
    }
    const buf = Buffer.allocUnsafe(bytes);
    let off = 0;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (typeof p === 'string') off += buf.write(p, off, 'latin1');
      else off += p.copy(buf, off);
    }
    s.write(buf);
  }
}
