import type { IPublishPacket, MqttClient } from 'mqtt';
import { decodePayload, firstHeader, type Headers } from './codec.js';
import type { ManagedConnection } from './connection.js';
import { SubscribeError } from './errors.js';

/** What a handler (or an async iterator) gets for each message. */
export interface Delivery<T = unknown> {
  channel: string;
  /** Decoded by content type: JSON parsed, text as a string, anything else a Buffer. */
  payload: T;
  /** User properties, without the broker's own `eddy-*` ones. */
  headers: Headers;
  contentType: string | undefined;
  /** The publisher's message id (`eddy-id`), when it set one (the SDK and HTTP always do). */
  id: string | undefined;
  /** The broker's sequence number of the message, when it was stored. */
  seq: number | undefined;
  /** 1 on first delivery; more after a failure or a consumer that left with it. */
  deliveryCount: number;
  /** Present on a command that carries a response topic: sends the reply. */
  reply?: (payload: unknown, options?: { headers?: Headers; contentType?: string }) => Promise<void>;
}

/** A message from an async iterator, which the loop acknowledges by asking for the next one. */
export interface IteratedDelivery<T = unknown> extends Delivery<T> {
  /** Refuses the message now: the broker redelivers it later, then dead-letters it. */
  nack(reason?: string): void;
}

export type Handler<T> = (delivery: Delivery<T>) => unknown;

export interface SubscriptionPlan {
  filter: string;
  qos: 0 | 1;
  from: string | undefined;
  concurrency: number;
  /** Builds the `reply` function of a delivery that carries a response topic. */
  replier: (packet: IPublishPacket) => Delivery['reply'];
}

/** A message waiting for, or held by, the async iterator. */
interface QueuedDelivery<T> extends IteratedDelivery<T> {
  settle(): void;
  /** Closing: let go without acknowledging, so the broker sends it again. */
  abandon(): void;
}

interface IteratorState<T> {
  buffer: QueuedDelivery<T>[];
  ended: boolean;
  wake?: () => void;
}

type PubackSender = (packet: { cmd: 'puback'; messageId: number; reasonCode: number; properties?: { reasonString: string } }) => void;

/**
 * One subscription on its own MQTT connection, whose Receive Maximum is the subscription's
 * concurrency: the broker never has more unacknowledged messages out than handlers may run.
 * A handler that returns acknowledges its message (PUBACK 0x00); one that throws refuses it
 * (PUBACK 0x80 with the error as reason string), so the broker retries and later dead-letters it.
 */
export class Subscription<T = unknown> implements AsyncIterable<IteratedDelivery<T>> {
  private readonly running = new Set<Promise<void>>();
  private readonly waiting: IPublishPacket[] = [];
  /** Packet ids whose PUBACK is ours to send, with the connection generation they arrived on. */
  private readonly owed = new Map<number, number>();
  private sendPuback!: PubackSender;
  private closing = false;
  private lastSeq: number | undefined;
  /** Without a handler: messages wait here for the async iterator (at most `concurrency` of them, unacknowledged). */
  private readonly iterator: IteratorState<T> | undefined;

  constructor(
    private readonly connection: ManagedConnection,
    private readonly plan: SubscriptionPlan,
    private readonly handler: Handler<T> | undefined,
  ) {
    if (!handler) this.iterator = { buffer: [], ended: false };
  }

  get filter(): string {
    return this.plan.filter;
  }

  /**
   * Subscribes, and again after every reconnect that lost the session. Listeners are attached before
   * the connection is up: a persistent session's queued messages arrive right behind the CONNACK.
   */
  async start(): Promise<void> {
    const client = this.connection.client;
    this.takeOverAcks(client);
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish' && packet.qos === 1 && packet.messageId !== undefined) this.owed.set(packet.messageId, this.connection.generation);
    });
    client.on('message', (_topic, _payload, packet) => this.receive(packet));
    let first = true;
    this.connection.onConnect((connack) => {
      if (first) return; // the first subscribe is below, awaited
      if (!connack.sessionPresent) void this.subscribe().catch(() => {});
    });
    await this.connection.ready;
    first = false;
    await this.subscribe();
  }

  /** Stops taking messages, waits for the handlers running now, then disconnects. */
  async close(): Promise<void> {
    this.closing = true;
    // Waiting messages were never started: unacknowledged, the broker gives them to someone else.
    this.waiting.length = 0;
    if (this.iterator) {
      // Nor were those the loop has not taken yet.
      for (const d of this.iterator.buffer.splice(0)) d.abandon();
      this.iterator.ended = true;
      this.iterator.wake?.();
    }
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
    await this.connection.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<IteratedDelivery<T>> {
    const state = this.iterator;
    if (!state) throw new TypeError('this subscription has a handler; subscribe without one to iterate');
    let previous: QueuedDelivery<T> | undefined;
    return {
      next: async () => {
        previous?.settle(); // asking for the next message acknowledges the one before
        previous = undefined;
        while (state.buffer.length === 0 && !state.ended) await new Promise<void>((r) => (state.wake = r));
        state.wake = undefined;
        const next = state.buffer.shift();
        if (!next) return { done: true, value: undefined };
        previous = next;
        return { done: false, value: next };
      },
      return: async () => {
        previous?.settle();
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  private async subscribe(): Promise<void> {
    const from = this.lastSeq !== undefined ? `seq:${this.lastSeq + 1}` : this.plan.from;
    const properties = from ? { userProperties: { 'eddy-from': from } } : undefined;
    await new Promise<void>((resolve, reject) => {
      this.connection.client.subscribe(this.plan.filter, { qos: this.plan.qos, ...(properties ? { properties } : {}) }, (err, _granted, packet) => {
        const suback = packet as { granted?: number[]; properties?: { reasonString?: string } } | undefined;
        const code = suback?.granted?.[0];
        if (code !== undefined && code >= 0x80) return reject(new SubscribeError(this.plan.filter, code, suback?.properties?.reasonString));
        if (err && code === undefined) return reject(err);
        resolve();
      });
    });
  }

  /**
   * mqtt.js acknowledges a QoS 1 message before the next packet is read, and holding that back
   * would stall the whole connection. So the SDK sends PUBACKs itself, when the handler is done:
   * mqtt.js's automatic one is swallowed for the packet ids the SDK owes.
   */
  private takeOverAcks(client: MqttClient): void {
    const internal = client as unknown as { _sendPacket: (packet: { cmd: string; messageId?: number }, cb?: () => void, ...rest: unknown[]) => void };
    const send = internal._sendPacket.bind(client);
    internal._sendPacket = (packet, cb, ...rest) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined && this.owed.has(packet.messageId) && !(packet as { own?: boolean }).own) {
        cb?.();
        return;
      }
      send(packet, cb, ...rest);
    };
    this.sendPuback = (packet) => send({ ...packet, own: true } as { cmd: string; messageId: number });
  }

  private receive(packet: IPublishPacket): void {
    if (this.closing) return;
    if (this.running.size >= this.plan.concurrency) {
      this.waiting.push(packet);
      return;
    }
    this.run(packet);
  }

  private run(packet: IPublishPacket): void {
    const generation = this.owed.get(packet.messageId ?? -1);
    const settle = (reasonCode: number, reason?: string): void => {
      if (packet.qos !== 1 || packet.messageId === undefined) return;
      const id = packet.messageId;
      // An ack for a message of an earlier connection would name another message now: the broker resends it instead.
      if (this.owed.get(id) !== generation || generation !== this.connection.generation) return;
      this.owed.delete(id);
      if (!this.connection.connected) return;
      this.sendPuback({ cmd: 'puback', messageId: id, reasonCode, ...(reason ? { properties: { reasonString: reason.slice(0, 200) } } : {}) });
    };
    const delivery = this.toDelivery(packet);
    if (delivery.seq !== undefined) this.lastSeq = delivery.seq;
    let task: Promise<void>;
    if (this.handler) {
      const handler = this.handler;
      task = (async () => {
        try {
          await handler(delivery);
          settle(0);
        } catch (err) {
          settle(0x80, err instanceof Error ? err.message : String(err));
        }
      })();
    } else {
      task = new Promise<void>((resolve) => {
        let settled = false;
        const once = (code: number, reason?: string): void => {
          if (settled) return;
          settled = true;
          settle(code, reason);
          resolve();
        };
        const state = this.iterator!;
        state.buffer.push(
          Object.assign(delivery, {
            nack: (reason?: string) => once(0x80, reason ?? 'refused'),
            settle: () => once(0),
            abandon: () => {
              settled = true;
              resolve();
            },
          }),
        );
        state.wake?.();
      });
    }
    this.running.add(task);
    void task.finally(() => {
      this.running.delete(task);
      const next = this.waiting.shift();
      if (next && !this.closing) this.run(next);
    });
  }

  private toDelivery(packet: IPublishPacket): Delivery<T> {
    const props = packet.properties;
    const all = (props?.userProperties ?? {}) as Headers;
    const headers: Headers = {};
    for (const [key, value] of Object.entries(all)) if (!key.startsWith('eddy-')) headers[key] = value;
    const seq = firstHeader(all, 'eddy-seq');
    const count = firstHeader(all, 'eddy-delivery-count');
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const delivery: Delivery<T> = {
      channel: packet.topic,
      payload: decodePayload(payload, props?.contentType) as T,
      headers,
      contentType: props?.contentType,
      id: firstHeader(all, 'eddy-id'),
      seq: seq === undefined ? undefined : Number(seq),
      deliveryCount: count === undefined ? 1 : Number(count),
    };
    const reply = this.plan.replier(packet);
    if (reply) delivery.reply = reply;
    return delivery;
  }
}
