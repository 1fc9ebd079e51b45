import type { IPublishPacket } from 'mqtt-packet';
import type { Message } from '../../core/message.js';

/** The message properties Eddy keeps end to end, taken from an inbound PUBLISH. */
export function messagePropertiesOf(props: NonNullable<IPublishPacket['properties']>): Message['properties'] {
  const out: Message['properties'] = {};
  if (props.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) out.contentType = props.contentType;
  if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) out.correlationData = props.correlationData;
  if (props.userProperties !== undefined) out.userProperties = props.userProperties;
  return out;
}

/** Counts an event under its reason code, as `0x97`. */
export function countBy(counters: Record<string, number>, reasonCode: number): void {
  const key = `0x${reasonCode.toString(16).padStart(2, '0')}`;
  counters[key] = (counters[key] ?? 0) + 1;
}
