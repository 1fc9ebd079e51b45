import net from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

/**
 * A bare MQTT client over a socket, for tests that must see or send exact packets
 * (reason codes, flags, properties, malformed bytes) that a full client library hides.
 */
export class RawClient {
  readonly packets: Packet[] = [];
  private waiters: Array<{ match: (p: Packet) => boolean; resolve: (p: Packet) => void }> = [];
  private closedResolve!: () => void;
  readonly closed: Promise<void>;
  isClosed = false;
  private parser = mqttPacket.parser({ protocolVersion: 5 });

  private constructor(
    readonly socket: net.Socket,
    public protocolVersion: 4 | 5,
  ) {
    this.closed = new Promise((r) => (this.closedResolve = r));
    this.parser = mqttPacket.parser({ protocolVersion });
    this.parser.on('packet', (p: Packet) => this.onPacket(p));
    socket.on('data', (d) => this.parser.parse(d));
    socket.on('close', () => {
      this.isClosed = true;
      this.closedResolve();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, protocolVersion: 4 | 5 = 5): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket, protocolVersion);
  }

  /** Opens a socket and completes CONNECT/CONNACK. */
  static async open(port: number, connect: Partial<Extract<Packet, { cmd: 'connect' }>> = {}, protocolVersion: 4 | 5 = 5): Promise<{ client: RawClient; connack: Extract<Packet, { cmd: 'connack' }> }> {
    const client = await RawClient.connect(port, protocolVersion);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId: '', clean: true, keepalive: 60, ...connect } as Packet);
    const connack = (await client.next('connack')) as Extract<Packet, { cmd: 'connack' }>;
    return { client, connack };
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  private onPacket(p: Packet): void {
    const i = this.waiters.findIndex((w) => w.match(p));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w!.resolve(p);
    } else this.packets.push(p);
  }

  /** The next packet of the given kind (already received ones first). Rejects after `timeoutMs`. */
  next(cmd?: Packet['cmd'], timeoutMs = 5000): Promise<Packet> {
    const match = (p: Packet): boolean => cmd === undefined || p.cmd === cmd;
    const i = this.packets.findIndex(match);
    if (i >= 0) return Promise.resolve(this.packets.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (p: Packet) => { clearTimeout(timer); resolve(p); } };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${cmd ?? 'packet'} within ${timeoutMs} ms; got ${this.packets.map((p) => p.cmd).join(',') || 'nothing'}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * The sentinel pattern (see helpers/sentinel.ts): waits for the first packet `isMarker` accepts
   * and resolves with the packets not yet taken that arrived before it, of any kind, in order.
   * Both those and the marker are taken. Rejects after `timeoutMs` when no marker comes.
   */
  until(isMarker: (p: Packet) => boolean, timeoutMs = 5000): Promise<Packet[]> {
    const i = this.packets.findIndex(isMarker);
    if (i >= 0) {
      const before = this.packets.splice(0, i);
      this.packets.shift();
      return Promise.resolve(before);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match: isMarker,
        resolve: () => {
          clearTimeout(timer);
          // Called as the marker arrives: what is unclaimed now all came before it.
          resolve(this.packets.splice(0));
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no marker within ${timeoutMs} ms; got ${this.packets.map((p) => p.cmd).join(',') || 'nothing'}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Resolves true if nothing of the kind arrives within `ms`. Passes just the same when nothing
   * would ever arrive: to show that something is not sent, prefer `until` with a marker.
   */
  async nothing(cmd: Packet['cmd'], ms = 300): Promise<boolean> {
    try {
      await this.next(cmd, ms);
      return false;
    } catch {
      return true;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
