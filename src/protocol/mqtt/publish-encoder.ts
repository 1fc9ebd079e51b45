import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { remainingExpirySeconds, type Message } from '../../core/message.js';
import type { QueuedDelivery } from '../../core/storage.js';
import { encodeAckFast, encodePublishFast, type EncodedPublish } from './fast-path/encode.js';

/**
 * The encodings of the message delivered last, per protocol version, retain flag and QoS, shared by
 * all its subscribers. The broker hands one message to all its subscribers in one go, so one entry
 * serves a fan-out. (A WeakMap keyed by message, as before, kept every message and its encodings
 * alive through young-generation GCs, ephemerons being cleared only by a full GC: at QoS 1 that
 * made each scavenge copy megabytes, 4 ms median instead of 0.4 ms, and promoted them to the old
 * generation, six full GCs per 200,000 messages instead of one.)
 */
let sharedMessage: Message | undefined;
const sharedEncodings = new Array<EncodedPublish | undefined>(12);
/**
 * Above this size a shared QoS>0 PUBLISH goes out as a copied head (header, topic, packet id,
 * properties) and the shared payload as a second chunk of the same writev, instead of one copy of
 * the whole packet per subscriber.
 */
const COPY_WHOLE_BELOW = 4096;

/** The bytes of one PUBLISH: one buffer, or a head and the shared payload, written back to back. */
export type PublishBytes = Buffer | readonly [Buffer, Buffer];

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

  publish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): PublishBytes | undefined {
    const { message } = delivery;
    const shareable = !delivery.subscriptionIds && message.expiresAt === undefined && this.topicAliasMax === 0 && !this.includeSeq
      && (delivery.deliveryCount ?? 1) <= 1;
    if (!shareable) return this.encodePublish(delivery, packetId, dup);
    const shared = this.shared(delivery);
    if (!shared) return this.encodePublish(delivery, packetId, dup);
    return delivery.qos === 0 ? shared.bytes : patched(shared, packetId!, dup);
  }

  encode(packet: Packet): Buffer | undefined {
    try {
      const fast = encodeAckFast(packet, this.protocolVersion);
      if (fast) return fast;
      return mqttPacket.generate(packet, { protocolVersion: this.protocolVersion });
    } catch (err) {
      this.onError(packet.cmd, err as Error);
      return undefined;
    }
  }

  /**
   * A PUBLISH without per-subscriber properties is the same bytes for every subscriber of a protocol
   * version, retain flag and QoS but for the packet identifier and DUP flag, so fan-out encodes it
   * once per message rather than once per client; QoS>0 patches both into a copy.
   */
  private shared(delivery: QueuedDelivery): EncodedPublish | undefined {
    const slot = (this.protocolVersion === 5 ? 6 : 0) + (delivery.retain ? 3 : 0) + delivery.qos;
    if (sharedMessage !== delivery.message) {
      sharedMessage = delivery.message;
      sharedEncodings.fill(undefined);
    }
    return (sharedEncodings[slot] ??= this.encodeShared(delivery));
  }

  private encodeShared(delivery: QueuedDelivery): EncodedPublish | undefined {
    const packet = this.publishPacket(delivery, delivery.qos > 0 ? 0 : undefined, false);
    const fast = encodePublishFast(packet, this.protocolVersion);
    if (fast) return fast;
    const bytes = this.encode(packet);
    // mqtt-packet's encoding cannot be patched (where the packet id sits is not known): QoS 0 only.
    return bytes && delivery.qos === 0 ? { bytes, idOffset: -1, payloadOffset: bytes.length } : undefined;
  }

  private encodePublish(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): Buffer | undefined {
    const packet = this.publishPacket(delivery, packetId, dup);
    return encodePublishFast(packet, this.protocolVersion)?.bytes ?? this.encode(packet);
  }

  private publishPacket(delivery: QueuedDelivery, packetId: number | undefined, dup: boolean): IPublishPacket {
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
    return packet;
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

/** A copy of a shared QoS>0 encoding with this subscriber's packet identifier and DUP flag. */
function patched(shared: EncodedPublish, packetId: number, dup: boolean): PublishBytes {
  const { bytes, idOffset, payloadOffset } = shared;
  const whole = bytes.length < COPY_WHOLE_BELOW;
  const head = Buffer.allocUnsafe(whole ? bytes.length : payloadOffset);
  bytes.copy(head, 0, 0, head.length);
  head[0] = dup ? bytes[0]! | 0x08 : bytes[0]! & ~0x08;
  head.writeUInt16BE(packetId, idOffset);
  return whole ? head : [head, bytes.subarray(payloadOffset)];
}
