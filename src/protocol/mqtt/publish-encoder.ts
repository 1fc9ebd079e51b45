import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { remainingExpirySeconds, type Message } from '../../core/message.js';
import type { QueuedDelivery } from '../../core/storage.js';

const sharedEncodings = new WeakMap<Message, Array<Buffer | undefined>>();

/**
 * Turns deliveries into PUBLISH bytes for one connection: its protocol version, the topic aliases
 * it allows, and whether it asked for `eddy-seq`. Per-delivery properties (message expiry left,
 * subscription ids, delivery count) are added here.
 */
export class PublishEncoder {
  protocolVersion = 4;
  /** The client's Topic Alias Maximum: aliases we may set towards it. */
  topicAliasMax = 0;
  /** Deliveries carry the user property `eddy-seq` (asked for at CONNECT, or by a replay). */
  includeSeq = false;
  private readonly aliases = new Map<string, number>();

  constructor(private readonly onError: (cmd: string, err: Error) => void) {}

  publish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): Buffer | undefined {
    const { message } = delivery;
    const shareable = delivery.qos === 0 && !delivery.subscriptionIds && message.expiresAt === undefined && this.topicAliasMax === 0 && !this.includeSeq;
    return shareable ? this.shared(delivery) : this.encodePublish(delivery, packetId, dup);
  }

  encode(packet: Packet): Buffer | undefined {
    try {
      return mqttPacket.generate(packet, { protocolVersion: this.protocolVersion });
    } catch (err) {
      this.onError(packet.cmd, err as Error);
      return undefined;
    }
  }

  /**
   * A QoS 0 PUBLISH without per-subscriber properties is the same bytes for every subscriber
   * of a protocol version, so fan-out encodes it once per message rather than once per client.
   */
  private shared(delivery: QueuedDelivery): Buffer | undefined {
    const slot = (this.protocolVersion === 5 ? 2 : 0) + (delivery.retain ? 1 : 0);
    let cache = sharedEncodings.get(delivery.message);
    if (!cache) {
      cache = [undefined, undefined, undefined, undefined];
      sharedEncodings.set(delivery.message, cache);
    }
    return (cache[slot] ??= this.encodePublish(delivery, undefined, false));
  }

  private encodePublish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): Buffer | undefined {
    const { message } = delivery;
    const packet: IPublishPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: message.payload,
      qos: delivery.qos,
      retain: delivery.retain,
      dup,
      messageId: packetId,
    };
    if (this.protocolVersion === 5) {
      const properties: NonNullable<IPublishPacket['properties']> = { ...message.properties };
      const left = remainingExpirySeconds(message, Date.now());
      if (left !== undefined) properties.messageExpiryInterval = Math.max(left, 0);
      if (delivery.subscriptionIds) properties.subscriptionIdentifier = delivery.subscriptionIds;
      if ((delivery.deliveryCount ?? 1) > 1) {
        properties.userProperties = { ...properties.userProperties, 'eddy-delivery-count': String(delivery.deliveryCount) };
      }
      if (this.includeSeq && message.seq !== undefined) {
        properties.userProperties = { ...properties.userProperties, 'eddy-seq': String(message.seq) };
      }
      if (this.topicAliasMax > 0) this.applyAlias(packet, properties);
      packet.properties = properties;
    }
    return this.encode(packet);
  }

  private applyAlias(packet: IPublishPacket, properties: NonNullable<IPublishPacket['properties']>): void {
    const alias = this.aliases.get(packet.topic);
    if (alias !== undefined) {
      properties.topicAlias = alias;
      packet.topic = '';
    } else if (this.aliases.size < this.topicAliasMax) {
      const next = this.aliases.size + 1;
      this.aliases.set(packet.topic, next);
      properties.topicAlias = next;
    }
  }
}
