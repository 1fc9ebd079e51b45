/** Broker limits. Each is a config key (`limits:`), most also a CLI flag; README "Limits" says what happens at each. */
export interface BrokerLimits {
  /** Largest MQTT packet accepted or sent, in bytes (CONNACK Maximum Packet Size). */
  maxPacketSize: number;
  /** Open MQTT sockets, counted from accept (before CONNECT too); the next one is closed at once, a CONNECT past it gets 0x89. */
  maxConnections: number;
  /** QoS>0 messages in flight per direction per client (our Receive Maximum, and a cap on the client's). */
  maxInflight: number;
  /** QoS>0 messages queued per session beyond the in-flight window. */
  maxQueued: number;
  /** Payload bytes queued per session (and per consumer group), in memory or on disk. */
  maxQueuedBytes: number;
  /** Bytes written to one connection that it has not read yet: past this, QoS 0 is shed and QoS>0 waits in the queue. */
  maxOutboundBytes: number;
  /** Bytes held by all connections' unfinished inbound packets together; past this, reading pauses. */
  maxInboundBytes: number;
  /** Seconds a packet may take from its first byte to its last. */
  packetTimeout: number;
  /** Longest keep-alive a client may ask for, in seconds; 0 = no limit. Enforced via Server Keep Alive. */
  maxKeepAlive: number;
  /** Topic aliases a client may use towards the broker. */
  topicAliasMaximum: number;
  /** Longest session expiry granted, in seconds (0xFFFFFFFF = never expires). */
  maxSessionExpiry: number;
  /** Levels of a topic name or filter a client may use. */
  maxTopicLevels: number;
  /** Bytes of a topic name or filter a client may use (MQTT's own limit is 65535). */
  maxTopicLength: number;
  /** Retained messages kept; a new retained topic past it is refused (0x97). */
  maxRetained: number;
  /** Payload bytes of all retained messages together. */
  maxRetainedBytes: number;
  /** Open HTTP connections (publish, SSE, admin); the next one is closed at once. */
  maxHttpConnections: number;
  /** Seconds an HTTP client has to send its request headers. */
  httpHeadersTimeout: number;
  /** Seconds an HTTP client has to send its whole request, body included. */
  httpRequestTimeout: number;
  /** Seconds an idle keep-alive HTTP connection stays open. */
  httpIdleTimeout: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketSize: 1 * MiB,
  maxConnections: 10_000,
  maxInflight: 1000,
  maxQueued: 100_000,
  maxQueuedBytes: 256 * MiB,
  maxOutboundBytes: 8 * MiB,
  maxInboundBytes: 64 * MiB,
  packetTimeout: 30,
  maxKeepAlive: 0,
  topicAliasMaximum: 1024,
  maxSessionExpiry: 0xffffffff,
  maxTopicLevels: 128,
  maxTopicLength: 65535,
  maxRetained: 100_000,
  maxRetainedBytes: 1024 * MiB,
  maxHttpConnections: 1000,
  httpHeadersTimeout: 10,
  httpRequestTimeout: 30,
  httpIdleTimeout: 5,
};

/** Access rules: filters that clients may not subscribe to or publish on. */
export interface AccessRules {
  denySubscribe: string[];
  denyPublish: string[];
}
