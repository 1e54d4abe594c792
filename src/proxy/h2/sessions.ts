/**
 * HTTP/2 client sessions by target: one multiplexed session per target (an app on loopback, an
 * app sidecar's inbound listener, or a tunnel through a remote gateway), opened on first use
 * and shared by every stream to that target. A session that got GOAWAY, closed or failed is
 * dropped at once, so the next stream opens a new one; streams already on it finish there.
 */
import type { ClientHttp2Session } from 'node:http2';
import { H2, http2 } from './http2.js';
import { CrossmeshError } from '../../errors.js';
import type { Upstream } from '../h1/proxy.js';
import { connectH2 } from './connect.js';

/** A session with no traffic for this long is closed with GOAWAY (streams still open on it finish there). */
export const H2_IDLE_TIMEOUT_MS = 60_000;

/** Settings this proxy announces to upstreams (the peer's own limits apply to what it accepts). */
const CLIENT_SETTINGS = { enablePush: false, initialWindowSize: 1024 * 1024 };

interface Entry {
  key: string;
  session?: ClientHttp2Session;
  connecting?: Promise<ClientHttp2Session>;
}

export class H2SessionRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly all = new Set<ClientHttp2Session>();
  private closed = false;
  /** Sessions opened (tests and metrics: one per target, not per stream). */
  opened = 0;

  /** The target's live session, or a promise of a new one (rejects with a before-send CrossmeshError). */
  session(up: Upstream): ClientHttp2Session | Promise<ClientHttp2Session> {
    if (this.closed) return Promise.reject(new CrossmeshError('CM_ERR_SHUTTING_DOWN', `the request to ${up.label} was not sent: this proxy is shutting down; retry it on another instance`));
    const k = up.target.tls === undefined ? up.key : `${up.key}\u0000mtls:${up.target.tls.expectedServerId ?? '*'}`;
    let e = this.entries.get(k);
    if (e === undefined) this.entries.set(k, (e = { key: up.key }));
    const s = e.session;
    if (s !== undefined && !s.closed && !s.destroyed) return s;
    e.session = undefined;
    if (e.connecting !== undefined) return e.connecting;
    const entry = e;
    const p = connectH2(up.target, up.label).then((socket) => {
      const session = http2().connect(`http://${up.target.host}:${up.target.port}`, { createConnection: () => socket, settings: CLIENT_SETTINGS, maxSessionMemory: 64 });
      this.opened++;
      this.all.add(session);
      const drop = () => {
        if (entry.session === session) entry.session = undefined;
      };
      session.on('goaway', drop);
      session.on('close', () => {
        drop();
        this.all.delete(session);
      });
      // Stream errors are reported on the streams; a session error ends the session.
      session.on('error', drop);
      session.setTimeout(H2_IDLE_TIMEOUT_MS, () => {
        drop();
        session.close();
      });
      // A session must not keep the process alive by itself.
      session.unref();
      entry.connecting = undefined;
      if (this.closed) session.close();
      else entry.session = session;
      return session;
    }, (err: unknown) => {
      entry.connecting = undefined;
      throw err;
    });
    e.connecting = p;
    return p;
  }

  /** Closes the sessions of targets whose key is not in `keys` (targets that went away). */
  retain(keys: { has(key: string): boolean }): void {
    for (const [k, e] of this.entries) {
      if (keys.has(e.key)) continue;
      this.entries.delete(k);
      e.session?.close();
    }
  }

  /**
   * Destroys the sessions through the gateway `host:port` (tunnel keys start `host:port>`): it is
   * known dead, so streams waiting on it end now (RST_STREAM CANCEL) and their callers decide.
   */
  abortTunnelsTo(gateway: string): void {
    const prefix = `${gateway}>`;
    for (const [k, e] of this.entries) {
      if (!e.key.startsWith(prefix)) continue;
      this.entries.delete(k);
      e.session?.destroy(undefined, H2.CANCEL);
    }
  }

  /** GOAWAY to every session; streams in flight finish, or are cut after `graceMs`. */
  async close(graceMs = 2000): Promise<void> {
    this.closed = true;
    this.entries.clear();
    const open = [...this.all];
    if (open.length === 0) return;
    await new Promise<void>((resolve) => {
      let left = open.length;
      const t = setTimeout(() => {
        for (const s of open) s.destroy(undefined, H2.CANCEL);
      }, graceMs);
      t.unref();
      for (const s of open) {
        const done = () => {
          if (--left === 0) {
            clearTimeout(t);
            resolve();
          }
        };
        if (s.closed || s.destroyed) done();
        else {
          s.once('close', done);
          s.close();
        }
      }
    });
  }
}
