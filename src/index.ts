/** Eddy's public surface for embedding the broker. */
export { EddyServer, type EddyServerOptions, type Endpoint, type ReloadOptions, type ReloadResult } from './server.js';
export { Broker, type BrokerOptions, type BrokerStats } from './core/broker.js';
export { DEFAULT_LIMITS, type BrokerLimits, type AccessRules } from './core/limits.js';
export { DEFAULT_MAX_DELIVERIES, parseChannelPolicies, type ChannelPolicy, type RetentionPolicy } from './core/channels.js';
export { DEFAULT_REDELIVERY, type RedeliveryOptions } from './core/redelivery.js';
export { parseReplayStart, type ReplayStart } from './core/replay.js';
export type { PublishRefusal, PublishValidator } from './core/validation.js';
export type { Message, MessageProperties, QoS, UserProperties } from './core/message.js';
export { topicMatches, isValidTopicFilter, isValidTopicName } from './core/topics.js';
export { TopicTree } from './core/topic-tree.js';
export { MemoryStorage } from './storage/memory.js';
export { DiskStorage, type DiskStorageOptions } from './storage/disk/disk-storage.js';
export type { Storage, SessionQueue, SessionRecord, SubscriptionRecord } from './core/storage.js';
export { AsyncApiError, ChannelRegistry, loadDocument, loadRegistry, type LoadedDocument } from './asyncapi/index.js';
export { generateClient } from './asyncapi/codegen/generate.js';
export { EddyError, ConfigError, ListenError, ProtocolError, StorageError } from './util/errors.js';
export { createLogger, type LogLevel } from './util/logger.js';
