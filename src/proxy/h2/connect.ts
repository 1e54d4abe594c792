/**
 * One connection for an HTTP/2 session to a mesh target: plain TCP (h2c, an app on loopback or
 * a workload without a sidecar), mTLS with ALPN `h2` (another sidecar's inbound listener), or
 * a tunnel through a remote gateway's mesh port (`CONNECT service.namespace:port`, then mTLS
 * with the remote sidecar inside it: the gateway splices bytes and never sees plaintext).
 *
 * This runs once per session (sessions are long-lived and multiplexed), never per request, so
 * it favours plain code over the H1 pool's allocation-free state machine. Every failure here is
 * a CrossmeshError saying that nothing of the request was sent, which is what makes a retry on
 * another target safe.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { CrossmeshError } from '../../errors.js';
import { meshServerCheck, tlsError } from '../../identity/mesh-tls.js';
import { H1Parser, isParseError, RESPONSE, type ParserEvents } from '../h1/llhttp.js';
import { beforeSendError, tunnelRefusal, type UpstreamTarget } from '../h1/upstream.js';

/** Connect + tunnel + handshake must be done within this (the H1 pool's connect timeout). */
export const H2_CONNECT_TIMEOUT_MS = 10_000;
const MAX_REFUSAL_BODY = 4096;

/** Reads the gateway's answer to CONNECT with the same strict parser as every other head. */
class TunnelAnswer implements ParserEvents {
  status = 0;
  body = '';
  done = false;
  onHead(_minor: number, _headers: string[], _method: number, _url: string, status: number): number {
    this.status = status;
    // 2: a 200 to CONNECT has no body, the rest of the bytes are the tunnel's.
    return status === 200 ? 2 : 0;
  }
  onBody(chunk: Buffer): void {
    if (this.body.length < MAX_REFUSAL_BODY) this.body += chunk.toString('utf8', 0, Math.min(chunk.length, MAX_REFUSAL_BODY));
  }
  onComplete(): void {
    this.done = true;
  }
}

/**
 * A connected socket ready for an HTTP/2 client session to `target`: TLS targets have completed
 * their handshake with ALPN `h2` and a verified SPIFFE ID. Rejects with a CrossmeshError
 * (nothing was sent) on refusal, TLS failure, a refused tunnel or the timeout.
 */
export function connectH2(target: UpstreamTarget, label: string, timeoutMs = H2_CONNECT_TIMEOUT_MS): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    let socket: Socket;
    let settled = false;
    const fail = (err: CrossmeshError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const done = (s: Socket) => {
      if (settled) return void s.destroy();
      settled = true;
      clearTimeout(timer);
      s.removeAllListeners('timeout');
      s.setTimeout(0);
      resolve(s);
    };
    const timer = setTimeout(() => fail(new CrossmeshError('CM_ERR_TIMEOUT', `upstream ${label} did not accept the connection in time (${timeoutMs} ms); the request failed before any byte was sent`)), timeoutMs);
    timer.unref();
    const tls = target.tls;
    const startTls = (raw?: Socket) => {
      const s: TLSSocket = tlsConnect({
        ...(raw !== undefined ? { socket: raw } : { host: target.host, port: target.port }),
        secureContext: tls!.context(),
        rejectUnauthorized: true,
        checkServerIdentity: meshServerCheck(tls!.trustDomain, tls!.expectedServerId),
        ALPNProtocols: ['h2'],
      });
      s.setNoDelay(true);
      socket = s;
      s.once('error', (err) => fail(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${label}: ${tlsError(err).message}; the request failed before any byte was sent`, { cause: err })));
      s.once('close', () => fail(beforeSendError(label, undefined)));
      s.once('secureConnect', () => {
        if (s.alpnProtocol !== 'h2') return fail(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${label} does not speak HTTP/2 (TLS ALPN chose ${s.alpnProtocol || 'nothing'}); it is a sidecar of an older crossmesh, or not a sidecar; the request failed before any byte was sent`));
        s.removeAllListeners('error');
        s.removeAllListeners('close');
        done(s);
      });
    };
    if (tls !== undefined && target.tunnel === undefined) return startTls();
    const raw = connect({ host: target.host, port: target.port, noDelay: true });
    socket = raw;
    raw.once('error', (err) => fail(beforeSendError(label, err)));
    raw.once('close', () => fail(beforeSendError(label, undefined)));
    raw.once('connect', () => {
      const tunnel = target.tunnel;
      if (tunnel === undefined) {
        raw.removeAllListeners('error');
        raw.removeAllListeners('close');
        return done(raw);
      }
      const answer = new TunnelAnswer();
      const parser = new H1Parser(RESPONSE, answer);
      const onData = (d: Buffer) => {
        const r = parser.execute(d);
        if (isParseError(r)) return fail(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${label} answered the tunnel request with a malformed response (${r.code}); the request failed before any byte was sent`));
        if (answer.status === 200) {
          raw.off('data', onData);
          parser.close();
          // Nothing may come through the tunnel before we speak (TLS ClientHello or the h2 preface).
          if (r < d.length) return fail(new CrossmeshError('CM_ERR_BAD_GATEWAY', `upstream ${label} sent bytes before any request; the request failed before any byte was sent`));
          raw.removeAllListeners('error');
          raw.removeAllListeners('close');
          // A late error on the TCP socket belongs to the TLS socket (or the session) from here on.
          raw.on('error', () => undefined);
          if (tls !== undefined) return startTls(raw);
          return done(raw);
        }
        if (answer.done) {
          parser.close();
          fail(tunnelRefusal(label, answer.status, answer.body));
        }
      };
      raw.on('data', onData);
      raw.write(`CONNECT ${tunnel.authority} HTTP/1.1\r\nhost: ${tunnel.authority}\r\n${tunnel.headerLines}\r\n`);
    });
  });
}
