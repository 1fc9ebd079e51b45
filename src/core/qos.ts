import type { Message, QoS } from './message.js';

/** The QoS a delivery goes out at: the lower of the message's and the subscription's (MQTT 5 §3.8.4). */
export function effectiveQos(message: Message, qos: QoS): QoS {
  return (message.qos < qos ? message.qos : qos) as QoS;
}
