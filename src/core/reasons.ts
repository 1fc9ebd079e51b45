/** MQTT 5 reason codes the core decides on (the front ends map them to 3.1.1 where needed). */
export const Reason = {
  Success: 0x00,
  UnspecifiedError: 0x80,
  NotAuthorized: 0x87,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  SharedSubscriptionsNotSupported: 0x9e,
  ImplementationSpecificError: 0x83,
  NoSubscriptionExisted: 0x11,
} as const;
