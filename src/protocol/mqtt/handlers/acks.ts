import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet';
import type { PacketContext } from './context.js';

/**
 * The acknowledgements a subscriber sends for what the broker delivered: PUBACK (QoS 1), PUBREC
 * and PUBCOMP (QoS 2). An MQTT 5 PUBACK or PUBREC with a reason code >= 0x80 is a negative
 * acknowledgement: the session redelivers with backoff, then dead-letters.
 */
export class AckHandler {
  constructor(private readonly c: PacketContext) {}

  ack(packet: IPubackPacket | IPubrecPacket): void {
    const id = packet.messageId!;
    if ((packet.reasonCode ?? 0) >= 0x80) this.c.session.rejected(id, this.describeRefusal(packet.reasonCode!, packet.properties?.reasonString));
    else if (packet.cmd === 'puback') this.c.session.completed(id);
    else this.c.session.received(id);
  }

  pubcomp(packet: IPubcompPacket): void {
    this.c.session.completed(packet.messageId!);
  }

  /** How a consumer's refusal reads in logs and in a dead letter's `eddy-dlq-reason`. */
  private describeRefusal(reasonCode: number, reasonString: string | undefined): string {
    const code = `0x${reasonCode.toString(16).padStart(2, '0')}`;
    return `refused by ${this.c.clientId} with ${code}${reasonString ? `: ${reasonString}` : ''}`;
  }
}
