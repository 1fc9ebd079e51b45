import { isUtf8 } from 'node:buffer';

/** MQTT 5 reason codes used by the front end (spec §2.4), named for readability at call sites. */
export const RC = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  DisconnectWithWill: 0x04,
  NoSubscriptionExisted: 0x11,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerBusy: 0x89,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicNameInvalid: 0x90,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  MessageRateTooHigh: 0x96,
  MaximumConnectTime: 0xa0,
} as const;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const V3Connack = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;

/** The 3.1.1 CONNACK code closest to an MQTT 5 CONNACK reason. */
export function v3ConnackCode(reason: number): number {
  switch (reason) {
    case RC.Success:
      return V3Connack.Accepted;
    case RC.UnsupportedProtocolVersion:
      return V3Connack.UnacceptableProtocolVersion;
    case RC.ClientIdentifierNotValid:
      return V3Connack.IdentifierRejected;
    case RC.BadUserNameOrPassword:
      return V3Connack.BadUserNameOrPassword;
    case RC.NotAuthorized:
    case RC.BadAuthenticationMethod:
      return V3Connack.NotAuthorized;
    default:
      return V3Connack.ServerUnavailable;
  }
}

/** Without a throw for invalid input (a fatal TextDecoder throws, which costs far more than the check). */
export function isValidUtf8(payload: Buffer): boolean {
  return isUtf8(payload);
}

/** Bytes of the fixed header for a packet whose remaining length is `length`. */
export function fixedHeaderSize(length: number): number {
  return length < 128 ? 2 : length < 16384 ? 3 : length < 2097152 ? 4 : 5;
}
