/** Where the totals of every connection are kept as well (the broker's stats). */
export interface WireTotals {
  bytesIn: number;
  bytesOut: number;
}

/**
 * Counters of one client connection, kept by its front end where packets are read and written and
 * shown by the admin API (`/v1/admin/clients`). Bytes are those of the protocol (MQTT packets,
 * SSE events), so they also go to the broker-wide totals that `$SYS/broker/bytes/…` report.
 */
export class LinkStats {
  readonly connectedAt = Date.now();
  /** Seconds the client may stay silent (0: no keep-alive); set once the connection is accepted. */
  keepAlive = 0;
  /** PUBLISH packets (or SSE events) in each direction. */
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    /** `mqtt` for MQTT over any transport, `sse` for an HTTP event stream. */
    readonly protocol: 'mqtt' | 'sse',
    private readonly totals: WireTotals,
  ) {}

  received(bytes: number): void {
    this.bytesIn += bytes;
    this.totals.bytesIn += bytes;
  }

  sent(bytes: number): void {
    this.bytesOut += bytes;
    this.totals.bytesOut += bytes;
  }
}
