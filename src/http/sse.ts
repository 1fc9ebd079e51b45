import type http from 'node:http';
import type { Broker } from '../core/broker.js';
import type { Message } from '../core/message.js';
import type { Session, SessionLink } from '../core/session.js';
import type { QueuedDelivery } from '../core/storage.js';
import { LinkStats } from '../core/admin/link-stats.js';

/** QoS 1 deliveries written but not yet flushed to the socket, per stream: the SSE window. */
const SSE_RECEIVE_MAXIMUM = 100;
/** Above this many unsent bytes a stream counts as congested: QoS 0 is shed, replays pause. */
const CONGESTION_BYTES = 1024 * 1024;
/** A comment line this often keeps proxies and load balancers from closing an idle stream. */
export const SSE_PING_INTERVAL_MS = 15_000;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * One Server-Sent Events stream as a session's link: each delivery is written as one event, and a
 * QoS 1 delivery counts as acknowledged once its event has been flushed to the socket. Events
 * that arrive before the stream has started (a consumer group can hand over work while the
 * subscription is being made) wait until `start`.
 */
export class SseLink implements SessionLink {
  /** Deliveries carry MQTT 5 semantics (remaining expiry, properties) through the core. */
  readonly protocolVersion = 5;
  readonly receiveMaximum = SSE_RECEIVE_MAXIMUM;
  private session: Session | undefined;
  private early: Array<{ event: string; packetId: number | undefined }> | undefined = [];
  private closed = false;
  private corked = false;
  private pingTimer: NodeJS.Timeout | undefined;
  /** Events and bytes written, for the admin API. */
  readonly stats: LinkStats;

  constructor(
    private readonly res: http.ServerResponse,
    private readonly broker: Broker,
  ) {
    this.stats = new LinkStats('sse', broker.stats);
  }

  get congested(): boolean {
    return this.res.writableLength > CONGESTION_BYTES;
  }

  /** Attaches the session whose deliveries this link writes; the stream ends the session when it closes. */
  attach(session: Session): void {
    this.session = session;
    this.res.once('close', () => this.onClosed());
    // What waited while the stream was congested goes out once it has room again.
    this.res.on('drain', () => {
      try {
        this.slow = false;
        this.releaseDrainWaiters();
        this.session?.drain();
      } catch (err) {
        this.broker.reportInternalError('SSE drain', err);
      }
    });
  }

  slow = false;
  private drainWaiters: Array<() => void> = [];

  whenDrained(callback: () => void): void {
    if (this.closed || !this.congested) return callback();
    this.drainWaiters.push(callback);
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const callback of waiters) callback();
  }

  /** Sends the response head and any events that came early; from now on events are written as they come. */
  start(headers: http.OutgoingHttpHeaders, pingIntervalMs = SSE_PING_INTERVAL_MS): void {
    this.res.writeHead(200, headers);
    // A first line at once, so the client sees the stream open before the first event.
    this.write(': connected\n\n', undefined);
    const early = this.early ?? [];
    this.early = undefined;
    for (const { event, packetId } of early) this.write(event, packetId);
    this.pingTimer = setInterval(() => this.write(': ping\n\n', undefined), pingIntervalMs);
    this.pingTimer.unref();
  }

  sendPublish(delivery: QueuedDelivery, packetId: number | undefined, _dup: boolean): boolean {
    if (this.closed) return true; // the session ends with the stream
    const event = formatEvent(delivery.message);
    this.broker.stats.messagesOut++;
    this.stats.messagesOut++;
    this.broker.observer?.delivered(delivery.message);
    if (this.early) this.early.push({ event, packetId });
    else this.write(event, packetId);
    return true;
  }

  /** Never called: SSE subscriptions are QoS 1, and a QoS 2 delivery would be completed on flush like QoS 1. */
  sendPubrel(_packetId: number): void {}

  /** Broker-initiated end (takeover, shutdown): the client's EventSource reconnects with Last-Event-ID. */
  close(_reasonCode: number, reason: string): void {
    if (this.closed) return;
    if (!this.early) this.write(`: closed: ${reason.replace(/[\r\n]/g, ' ')}\n\n`, undefined);
    this.res.end();
    this.onClosed();
  }

  /**
   * Writes in one synchronous burst (a fan-out, a replay batch) leave in one syscall. A QoS 1
   * delivery is acknowledged in the write callback, which runs once its bytes are flushed.
   */
  private write(text: string, packetId: number | undefined): void {
    if (!this.corked) {
      this.corked = true;
      this.res.cork();
      process.nextTick(() => {
        this.corked = false;
        this.res.uncork();
      });
    }
    this.stats.sent(Buffer.byteLength(text));
    if (packetId === undefined) {
      this.res.write(text);
      return;
    }
    this.res.write(text, (err) => {
      if (!err && !this.closed) this.session?.completed(packetId);
    });
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pingTimer);
    this.releaseDrainWaiters();
    const session = this.session;
    if (session) this.broker.closeSession(session, this, { publishWill: false });
  }
}

/**
 * One delivery as an SSE event: `id:` the message's seq (absent when it has none), `event:` the
 * topic, and the payload as `data:` lines, one per payload line. A payload that is not valid UTF-8
 * is sent as base64 in one `data:` line, preceded by the comment line `: base64`.
 */
export function formatEvent(message: Message): string {
  let event = message.seq === undefined ? '' : `id: ${message.seq}\n`;
  event += `event: ${eventName(message.topic)}\n`;
  const text = utf8Text(message.payload);
  if (text === undefined) return `${event}: base64\ndata: ${message.payload.toString('base64')}\n\n`;
  for (const line of text.split(LINE_BREAK)) event += `data: ${line}\n`;
  return `${event}\n`;
}

const LINE_BREAK = /\r\n|\r|\n/;

/** A topic may hold line breaks, which would end the field: they are sent as %0D and %0A. */
function eventName(topic: string): string {
  return LINE_BREAK.test(topic) ? topic.replace(/\r/g, '%0D').replace(/\n/g, '%0A') : topic;
}

function utf8Text(payload: Buffer): string | undefined {
  try {
    return utf8.decode(payload);
  } catch {
    return undefined;
  }
}
