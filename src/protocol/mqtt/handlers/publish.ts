import type { IPublishPacket } from 'mqtt-packet';
import type { Message, QoS } from '../../../core/message.js';
import { answerFor } from '../../../core/refusals.js';
import { isValidTopicName, quoteTopic, showTopic } from '../../../core/topics.js';
import { ProtocolError } from '../../../util/errors.js';
import { RC, isValidUtf8 } from '../codes.js';
import { countBy, messagePropertiesOf } from '../properties.js';
import type { PacketContext } from './context.js';

/**
 * Inbound PUBLISH and PUBREL of one connection: topic aliases, the client's unacknowledged
 * publishes against our Receive Maximum, the checks a publish passes (topic limits, UTF-8, access,
 * AsyncAPI), and its answer once the broker has stored it, or why not.
 */
export class PublishHandler {
  private readonly aliases = new Map<number, string>();
  /** Inbound QoS>0 publishes not yet acknowledged, checked against our Receive Maximum. */
  private unacked = 0;

  constructor(private readonly c: PacketContext) {}

  publish(packet: IPublishPacket): void {
    const { broker } = this.c;
    const v5 = this.c.protocolVersion === 5;
    const props = packet.properties;
    let topic = packet.topic;
    if (v5 && props?.topicAlias !== undefined) {
      const alias = props.topicAlias;
      if (alias === 0 || alias > broker.limits.topicAliasMaximum) {
        throw new ProtocolError(RC.TopicAliasInvalid, `topic alias ${alias} outside 1..${broker.limits.topicAliasMaximum}`);
      }
      if (topic.length > 0) this.aliases.set(alias, topic);
      else {
        const known = this.aliases.get(alias);
        if (known === undefined) throw new ProtocolError(RC.ProtocolError, `topic alias ${alias} was never set`);
        topic = known;
      }
    }
    if (!isValidTopicName(topic)) throw new ProtocolError(RC.TopicNameInvalid, `invalid topic name ${quoteTopic(topic)}`);
    if (props?.subscriptionIdentifier !== undefined) throw new ProtocolError(RC.ProtocolError, 'PUBLISH from a client must not carry a subscription identifier');

    const qos = packet.qos;
    const id = packet.messageId!;
    if (qos === 2 && this.c.session.inboundQos2.has(id)) {
      // A resend of a QoS 2 publish we already took: acknowledge again, do not route twice.
      return this.c.send({ cmd: 'pubrec', messageId: id });
    }
    if (qos > 0 && ++this.unacked > broker.limits.maxInflight) {
      throw new ProtocolError(RC.ReceiveMaximumExceeded, `more than ${broker.limits.maxInflight} unacknowledged QoS>0 publishes`);
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (v5 && props?.payloadFormatIndicator && !isValidUtf8(payload)) {
      return this.refuse(qos, id, RC.PayloadFormatInvalid, `${showTopic(topic)}: payload format indicator says UTF-8 but the payload is not valid UTF-8`);
    }
    const now = Date.now();
    const identity = this.c.session.identity;
    const message: Message = {
      topic,
      payload,
      qos,
      retain: packet.retain,
      properties: v5 && props ? messagePropertiesOf(props) : {},
      publishedAt: now,
      origin: this.c.clientId,
    };
    if (identity.user !== undefined) message.originUser = identity.user;
    if (v5 && props?.messageExpiryInterval !== undefined) message.expiresAt = now + props.messageExpiryInterval * 1000;
    const refusal = broker.admitPublish(identity, message);
    if (refusal) {
      if (refusal.kind === 'topic') return this.refuse(qos, id, RC.TopicNameInvalid, refusal.reason);
      if (refusal.kind === 'not-authorized') return this.refuse(qos, id, RC.NotAuthorized, refusal.reason);
      if (refusal.kind === 'rate') {
        // 0x96 is a DISCONNECT reason only: a QoS 1/2 publish over the rate is refused with 0x97 and
        // may be sent again later; a QoS 0 flood, which cannot be refused, ends the connection with 0x96.
        if (qos === 0) return this.c.fail(new ProtocolError(RC.MessageRateTooHigh, refusal.reason));
        return this.refuse(qos, id, RC.QuotaExceeded, `message rate too high: ${refusal.reason}`);
      }
      if (v5 && qos > 0) return this.refuse(qos, id, refusal.kind === 'undeclared' ? RC.TopicNameInvalid : RC.PayloadFormatInvalid, refusal.reason);
      // 3.1.1 (or QoS 0) cannot be told: the message is not delivered but kept on $DLQ/invalid/<topic>.
      broker.publishInvalid(message, refusal);
      if (qos === 0) return;
      return this.refuse(qos, id, RC.PayloadFormatInvalid, refusal.reason);
    }
    if (qos === 0) return broker.publish(message);
    if (qos === 2) this.c.session.inboundQos2.add(id);
    broker.publish(message, (err) => (err ? this.failed(qos, id, topic, err) : this.acknowledge(qos, id, message.seq)));
  }

  pubrel(id: number): void {
    const known = this.c.session.inboundQos2.delete(id);
    if (known && this.unacked > 0) this.unacked--;
    if (!known && this.c.protocolVersion === 5) {
      return this.c.send({ cmd: 'pubcomp', messageId: id, reasonCode: RC.PacketIdentifierNotFound });
    }
    this.c.send({ cmd: 'pubcomp', messageId: id });
  }

  private acknowledge(qos: QoS, id: number, seq: number | undefined): void {
    // A QoS 2 publish counts against our Receive Maximum until PUBCOMP, not PUBREC (MQTT 5 §4.9).
    if (qos === 1) this.unacked--;
    // A client that asked for seqs (the SDK) learns where its message landed.
    const properties = this.c.includeSeq && seq !== undefined ? { userProperties: { 'eddy-seq': String(seq) } } : undefined;
    this.c.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, ...(properties ? { properties } : {}) });
  }

  /** The broker did not store it (a full queue or disk, no descriptor left, ...). */
  private failed(qos: QoS, id: number, topic: string, err: Error): void {
    const { reasonCode, reason, unexpected } = answerFor(err, topic);
    if (unexpected) this.c.log.error({ clientId: this.c.clientId, topic: showTopic(topic), err: err.message }, 'publish not stored');
    if (qos === 2) this.c.session.inboundQos2.delete(id);
    if (this.c.protocolVersion !== 5) {
      // 3.1.1 cannot refuse, and acknowledging would confirm what was not stored: close instead,
      // so the client resends once it reconnects.
      countBy(this.c.broker.stats.refusedPublishes, reasonCode);
      this.c.log.warn({ clientId: this.c.clientId, reason }, 'publish not stored: closing the 3.1.1 connection so the client resends');
      return this.c.close();
    }
    this.refuse(qos, id, reasonCode, reason);
  }

  /** Answers a refused publish: a reason code on MQTT 5; on 3.1.1 a plain ack, since it cannot refuse. */
  private refuse(qos: QoS, id: number, reasonCode: number, reason: string): void {
    // Quota, rate and storage refusals are logged where they arise (rate-limited there), not once per message here.
    this.c.log[reasonCode === RC.QuotaExceeded || reasonCode === RC.UnspecifiedError || reasonCode === RC.MessageRateTooHigh ? 'debug' : 'warn']({ clientId: this.c.clientId, reasonCode, reason }, 'publish refused');
    countBy(this.c.broker.stats.refusedPublishes, reasonCode);
    if (qos === 0) {
      if (reasonCode === RC.PayloadFormatInvalid) this.c.fail(new ProtocolError(reasonCode, reason));
      return;
    }
    this.unacked--;
    if (this.c.protocolVersion !== 5) return this.c.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id });
    if (qos === 2) this.c.session.inboundQos2.delete(id);
    this.c.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id, reasonCode, properties: this.c.reasonProps(reason) });
  }
}
