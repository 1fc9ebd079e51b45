/** Broker limits. Each is a CLI flag and a config key; README "Limits" says what happens at each. */
export interface BrokerLimits {
  /** Largest MQTT packet accepted or sent, in bytes (CONNACK Maximum Packet Size). */
  maxPacketSize: number;
  /** Open client connections; the next CONNECT gets 0x89 Server busy (v5) or 0x03 (v3.1.1). */
  maxConnections: number;
  /** QoS>0 messages in flight per direction per client (our Receive Maximum, and a cap on the client's). */
  maxInflight: number;
  /** QoS>0 messages queued per session beyond the in-flight window; further ones are dropped and counted. */
  maxQueued: number;
  /** Longest keep-alive a client may ask for, in seconds; 0 = no limit. Enforced via Server Keep Alive. */
  maxKeepAlive: number;
  /** Topic aliases a client may use towards the broker. */
  topicAliasMaximum: number;
  /** Longest session expiry granted, in seconds (0xFFFFFFFF = never expires). */
  maxSessionExpiry: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketSize: 1024 * 1024,
  maxConnections: 10_000,
  maxInflight: 1000,
  maxQueued: 100_000,
  maxKeepAlive: 0,
  topicAliasMaximum: 1024,
  maxSessionExpiry: 0xffffffff,
};

/** Access rules: filters that clients may not subscribe to or publish on. */
export interface AccessRules {
  denySubscribe: string[];
  denyPublish: string[];
}
