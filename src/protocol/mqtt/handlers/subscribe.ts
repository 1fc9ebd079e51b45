import type { ISubackPacket, ISubscribePacket, IUnsubscribePacket } from 'mqtt-packet';
import { firstUserProperty } from '../../../core/message.js';
import { parseReplayStart } from '../../../core/replay.js';
import { parseSharedFilter, showTopic } from '../../../core/topics.js';
import { ProtocolError } from '../../../util/errors.js';
import { RC } from '../codes.js';
import type { PacketContext } from './context.js';

/** SUBSCRIBE (with Eddy's `eddy-from` replay) and UNSUBSCRIBE of one connection. */
export class SubscribeHandler {
  constructor(private readonly c: PacketContext) {}

  subscribe(packet: ISubscribePacket): void {
    const v5 = this.c.protocolVersion === 5;
    const subscriptionId = v5 ? packet.properties?.subscriptionIdentifier : undefined;
    if (subscriptionId === 0) throw new ProtocolError(RC.ProtocolError, 'subscription identifier 0 is not allowed');
    const requests = packet.subscriptions.map((s) => {
      if (v5 && s.nl && parseSharedFilter(s.topic)) {
        throw new ProtocolError(RC.ProtocolError, `no-local on shared subscription ${showTopic(s.topic)}`);
      }
      return {
        filter: s.topic,
        qos: s.qos,
        noLocal: v5 ? !!s.nl : false,
        retainAsPublished: v5 ? !!s.rap : false,
        retainHandling: (v5 ? (s.rh ?? 0) : 0) as 0 | 1 | 2,
        subscriptionId,
      };
    });
    const from = v5 ? firstUserProperty(packet.properties?.userProperties, 'eddy-from') : undefined;
    const replay = from === undefined ? undefined : parseReplayStart(from);
    if (from !== undefined && !replay) {
      const reason = `eddy-from must be earliest, seq:<n> or time:<RFC 3339>, got ${JSON.stringify(from)}`;
      this.c.log.info({ clientId: this.c.clientId, reason }, 'subscription refused');
      return this.c.send({ cmd: 'suback', messageId: packet.messageId!, granted: requests.map(() => RC.ImplementationSpecificError), properties: this.c.reasonProps(reason) });
    }
    // A replaying subscriber needs each message's seq to resume from, so it gets `eddy-seq` from now on.
    if (replay) this.c.includeSeq = true;
    const outcome = this.c.broker.subscribe(this.c.session, requests, replay);
    const { codes, stored } = outcome;
    const granted = v5 ? codes : codes.map((code) => (code >= 0x80 ? 0x80 : code));
    const refused = requests.filter((_, i) => codes[i]! >= 0x80).map((r) => (r.filter.length > 120 ? showTopic(r.filter) : r.filter));
    if (refused.length > 0) this.c.log.info({ clientId: this.c.clientId, refused, reason: outcome.reason }, 'subscription refused');
    let properties: ISubackPacket['properties'];
    if (v5 && refused.length > 0) properties = this.c.reasonProps(outcome.reason ?? `subscription refused for ${refused.join(', ')}`);
    if (v5 && outcome.replayUntil !== undefined) properties = { ...properties, userProperties: { 'eddy-replay-until': String(outcome.replayUntil) } };
    this.afterStored(stored, () => {
      this.c.send({ cmd: 'suback', messageId: packet.messageId!, granted, properties });
      outcome.afterSuback();
    });
  }

  unsubscribe(packet: IUnsubscribePacket): void {
    const { codes, stored } = this.c.broker.unsubscribe(this.c.session, packet.unsubscriptions);
    this.afterStored(stored, () => this.c.send({ cmd: 'unsuback', messageId: packet.messageId!, granted: this.c.protocolVersion === 5 ? codes : [] }));
  }

  /**
   * A persistent session's SUBACK/UNSUBACK goes out only once the change is durable, so a client
   * never holds a confirmation that a crash can take back. If storing fails, the connection is
   * closed unanswered: the client subscribes again when it reconnects.
   */
  private afterStored(stored: Promise<void> | void, answer: () => void): void {
    if (!stored) return answer();
    stored.then(answer, (err: Error) => {
      this.c.log.error({ clientId: this.c.clientId, err: err.message }, 'session change not stored: closing the connection');
      this.c.close(RC.UnspecifiedError, 'session change not stored');
    });
  }
}
