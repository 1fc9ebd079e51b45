import type { IPublishPacket, MqttClient } from 'mqtt';
import { sleep } from './mqtt.js';

/**
 * The sentinel pattern, for assertions that something must NOT arrive.
 *
 * Waiting a while and then finding nothing proves nothing: the test passes just the same when
 * delivery is broken altogether. Instead, after the action that must not deliver, send a marker
 * that MUST arrive by the same path (same subscriber, a topic it does match) and that is ordered
 * after the unwanted message (same publisher connection, or QoS >= 1 with its acknowledgement
 * awaited first). Once the marker is there, anything the action delivered is there too, before it.
 *
 * `beforeMarker` waits for the first item of `list` (an inbox that is only appended to, in arrival
 * order) that `isMarker` accepts, and resolves with the items that came before it. It rejects when
 * no marker comes within `timeoutMs`, so a broken delivery path fails the test.
 */
export async function beforeMarker<T>(list: readonly T[], isMarker: (item: T) => boolean, timeoutMs = 5000, show: (item: T) => string = summary): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = list.findIndex(isMarker);
    if (i >= 0) return list.slice(0, i);
    if (Date.now() > deadline) throw new Error(`the marker never arrived within ${timeoutMs} ms; got ${list.map(show).join(', ') || 'nothing'}`);
    await sleep(10);
  }
}

/** A marker test for a PUBLISH packet (mqtt.js or raw): this topic, and this payload when given. */
export function isPublish(topic: string, payload?: string): (m: { cmd?: string; topic?: string; payload?: Buffer | string }) => boolean {
  return (m) => (m.cmd === undefined || m.cmd === 'publish') && m.topic === topic && (payload === undefined || m.payload?.toString() === payload);
}

/**
 * Every PUBLISH an mqtt.js client receives, in the order it came off the wire. mqtt.js emits
 * 'message' for QoS 2 only at PUBREL, after QoS 0 and 1 messages that the broker sent later; when a
 * QoS 2 copy may come before a marker, look for it here rather than in `collect(client).messages`.
 * Attach it before the messages can arrive (before CONNECT for what a resumed session resends).
 */
export function wireInbox(client: MqttClient): IPublishPacket[] {
  const list: IPublishPacket[] = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') list.push(packet as IPublishPacket);
  });
  return list;
}

function summary(item: unknown): string {
  if (typeof item === 'string') return item;
  const m = item as { topic?: string; payload?: Buffer | string; event?: string; data?: string; packet?: { topic?: string; payload?: Buffer } };
  if (m.packet) return `${m.packet.topic}=${m.packet.payload?.toString()}`;
  if (m.topic !== undefined) return `${m.topic}=${m.payload?.toString()}`;
  if (m.event !== undefined) return `${m.event}=${m.data}`;
  return JSON.stringify(item);
}
