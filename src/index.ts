/** Eddy's public surface for embedding the broker. */
export { EddyServer, type EddyServerOptions, type Endpoint } from './server.js';
export { Broker, type BrokerOptions, type BrokerStats } from './core/broker.js';
export { DEFAULT_LIMITS, type BrokerLimits, type AccessRules } from './core/limits.js';
export type { Message, MessageProperties, QoS, UserProperties } from './core/message.js';
export { topicMatches, isValidTopicFilter, isValidTopicName } from './core/topics.js';
export { TopicTree } from './core/topic-tree.js';
export { MemoryStorage } from './storage/memory.js';
export type { Storage, SessionQueue, SessionRecord, SubscriptionRecord } from './storage/types.js';
export { EddyError, ConfigError, ListenError, ProtocolError } from './util/errors.js';
export { createLogger, type LogLevel } from './util/logger.js';
