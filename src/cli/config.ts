import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_LIMITS, type AccessRules, type BrokerLimits } from '../core/limits.js';
import { ConfigError } from '../util/errors.js';
import { parseChannelPolicies, parseDuration, type ChannelPolicy } from '../core/channels.js';
import type { RedeliveryOptions } from '../core/redelivery.js';
import { LOG_LEVELS, type LogLevel } from '../util/logger.js';
import { parseAuthConfig, parseQuotas } from './auth-config.js';
import type { QuotaConfig } from '../core/admission/index.js';
import type { TlsSettings } from '../transport/tls-credentials.js';
import { parseTlsMapping } from './tls-config.js';
import { invalidOrigin, type HttpSecurityOptions } from '../http/origin-policy.js';
import { parseSysConfig, type SysConfig } from './sys-config.js';

/** The broker's configuration file (YAML or JSON). Command-line flags override it. */
export interface BrokerConfig {
  host?: string;
  port?: number;
  httpPort?: number;
  /** In the config file, relative to it. */
  dataDir?: string;
  memory?: boolean;
  /** always | interval:<ms> | off */
  fsync?: string;
  logLevel?: LogLevel;
  limits?: Partial<BrokerLimits>;
  access?: Partial<AccessRules>;
  /** Parsed from the file's `channels` mapping (pattern → maxDeliveries, retention). */
  channels?: ChannelPolicy[];
  redelivery?: Partial<RedeliveryOptions>;
  /** AsyncAPI document files; in the config file, relative to it. */
  asyncapi?: string[];
  strict?: boolean;
  /** Password file, ACL, anonymous access, JWT (design note "Security files"); paths relative to the file. */
  auth?: ReturnType<typeof parseAuthConfig>;
  quotas?: QuotaConfig;
  /** TLS listeners; in the config file, paths relative to it. Complete once checked (`checkTlsSettings`). */
  tls?: Partial<TlsSettings>;
  /** `http: { allowedOrigins: [...], protectStatus: true }`: the HTTP port against other sites' pages. */
  http?: HttpSecurityOptions;
  /** `$SYS/…` topics: `interval` in seconds (0: off). */
  sys?: SysConfig;
  /** `cluster: { servers: [nats://H:P, ...], replicas: 3 }`: the JetStream engine (docs/cluster.md). */
  cluster?: ClusterConfig;
  /** With `cluster`: worker processes on the same ports, each a node (`--workers`). */
  workers?: number;
}

export interface ClusterConfig {
  servers: string[];
  replicas?: number;
  /**
   * Where this node's MQTT 5 clients go when it stops (SIGTERM/SIGINT): DISCONNECT 0x9C "use another
   * server" with this Server Reference, one or more space-separated `host[:port]` (MQTT 5 §4.11).
   */
  serverReference?: string;
}

/** Most worker processes of one broker (`workers`): well past the cores of one machine. */
export const MAX_WORKERS = 64;

/** Longest MQTT UTF-8 string (two length bytes), the Server Reference's bound. */
const MAX_MQTT_STRING_BYTES = 65_535;

/**
 * A Server Reference: `host[:port]` references separated by single spaces, as MQTT 5 §4.11 suggests
 * (the spec leaves the format to the server; clients such as mqtt.js hand it to the application).
 * A host is a name, an IPv4 address or a bracketed IPv6 address; a port is 1..65535.
 */
export function parseServerReference(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new ConfigError(`${where} must be a string: host[:port], several separated by spaces`);
  const refs = value.trim().split(/\s+/).filter((r) => r.length > 0);
  if (refs.length === 0) throw new ConfigError(`${where} must name at least one server: host[:port], several separated by spaces`);
  for (const ref of refs) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(ref);
    if (!m || (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535))) {
      throw new ConfigError(`${where}: ${JSON.stringify(ref)} is not host[:port] (a name, an IPv4 address or [IPv6], and a port 1..65535)`);
    }
  }
  const reference = refs.join(' ');
  if (Buffer.byteLength(reference) > MAX_MQTT_STRING_BYTES) throw new ConfigError(`${where} is longer than an MQTT string (${MAX_MQTT_STRING_BYTES} bytes)`);
  return reference;
}

/** `nats://H:P` URLs, each checked, from a list or a comma-separated string (the flag's form). */
export function parseClusterServers(value: unknown, where: string): string[] {
  const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : value;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string')) throw new ConfigError(`${where} must be one or more nats://HOST:PORT URLs`);
  for (const url of list as string[]) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`${where}: ${JSON.stringify(url)} is not a URL (nats://HOST:PORT)`);
    }
    if (parsed.protocol !== 'nats:' || !parsed.hostname) throw new ConfigError(`${where}: ${JSON.stringify(url)} is not a nats://HOST:PORT URL`);
  }
  return list as string[];
}

function parseCluster(raw: unknown, source: string): ClusterConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: cluster must be a mapping (servers, replicas)`);
  const c = raw as Record<string, unknown>;
  for (const key of Object.keys(c)) if (!CLUSTER_KEYS.includes(key)) throw new ConfigError(`${source}: unknown key "cluster.${key}" (known: ${CLUSTER_KEYS.join(', ')})`);
  const result: ClusterConfig = { servers: parseClusterServers(c.servers, `${source}: cluster.servers`) };
  if (c.replicas !== undefined) {
    if (!isIntIn(c.replicas, 1, 5)) throw new ConfigError(`${source}: cluster.replicas must be 1 to 5`);
    result.replicas = c.replicas as number;
  }
  if (c.serverReference !== undefined) result.serverReference = parseServerReference(c.serverReference, `${source}: cluster.serverReference`);
  return result;
}

const CLUSTER_KEYS = ['servers', 'replicas', 'serverReference'];

const TOP_KEYS = new Set(['asyncapi', 'strict', 'host', 'port', 'httpPort', 'dataDir', 'memory', 'fsync', 'logLevel', 'limits', 'access', 'channels', 'redelivery', 'auth', 'quotas', 'tls', 'http', 'sys', 'cluster', 'workers']);
const ACCESS_KEYS = new Set(['denySubscribe', 'denyPublish']);

export function loadConfigFile(path: string): BrokerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateConfig(raw ?? {}, path);
}

export function validateConfig(raw: unknown, source: string): BrokerConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: the configuration must be a mapping`);
  const config = raw as Record<string, unknown>;
  for (const key of Object.keys(config)) {
    if (!TOP_KEYS.has(key)) throw new ConfigError(`${source}: unknown key "${key}" (known: ${[...TOP_KEYS].join(', ')})`);
  }
  expectType(config, 'host', 'string', source);
  expectType(config, 'dataDir', 'string', source);
  expectType(config, 'memory', 'boolean', source);
  expectType(config, 'fsync', 'string', source);
  expectType(config, 'strict', 'boolean', source);
  // Every path in the file is relative to the file, whatever the working directory: a user reading
  // the file expects that, and a broker started from elsewhere (a service manager) finds the same files.
  if (config.asyncapi !== undefined) {
    const files = typeof config.asyncapi === 'string' ? [config.asyncapi] : config.asyncapi;
    if (!Array.isArray(files) || files.some((f) => typeof f !== 'string')) throw new ConfigError(`${source}: asyncapi must be a file name or a list of them`);
    config.asyncapi = (files as string[]).map((f) => relativeToFile(source, f));
  }
  if (typeof config.dataDir === 'string') config.dataDir = relativeToFile(source, config.dataDir);
  for (const key of ['port', 'httpPort'] as const) {
    if (config[key] !== undefined && !isIntIn(config[key], 0, 65535)) throw new ConfigError(`${source}: ${key} must be a port number 0..65535`);
  }
  if (config.workers !== undefined && !isIntIn(config.workers, 1, MAX_WORKERS)) throw new ConfigError(`${source}: workers must be a whole number 1..${MAX_WORKERS}`);
  if (config.logLevel !== undefined && !LOG_LEVELS.includes(config.logLevel as LogLevel)) {
    throw new ConfigError(`${source}: logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (config.limits !== undefined) {
    if (typeof config.limits !== 'object' || config.limits === null) throw new ConfigError(`${source}: limits must be a mapping`);
    for (const [key, value] of Object.entries(config.limits)) {
      if (!(key in DEFAULT_LIMITS)) throw new ConfigError(`${source}: unknown limit "${key}" (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
      if (!isIntIn(value, 0, 0xffffffff)) throw new ConfigError(`${source}: limits.${key} must be a non-negative whole number`);
    }
  }
  if (config.access !== undefined) {
    if (typeof config.access !== 'object' || config.access === null) throw new ConfigError(`${source}: access must be a mapping`);
    for (const [key, value] of Object.entries(config.access)) {
      if (!ACCESS_KEYS.has(key)) throw new ConfigError(`${source}: unknown access rule "${key}" (known: ${[...ACCESS_KEYS].join(', ')})`);
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new ConfigError(`${source}: access.${key} must be a list of topic filters`);
    }
  }
  const result = { ...config } as BrokerConfig;
  if (config.auth !== undefined) result.auth = parseAuthConfig(config.auth, source);
  if (config.quotas !== undefined) result.quotas = parseQuotas(config.quotas, source);
  if (config.channels !== undefined) result.channels = parseChannelPolicies(config.channels, source);
  if (config.redelivery !== undefined) result.redelivery = parseRedelivery(config.redelivery, source);
  if (config.tls !== undefined) result.tls = parseTlsMapping(config.tls, source);
  if (config.http !== undefined) result.http = parseHttp(config.http, source);
  if (config.cluster !== undefined) result.cluster = parseCluster(config.cluster, source);
  if (config.sys !== undefined) result.sys = parseSysConfig(config.sys, source);
  return result;
}

/** `http: { allowedOrigins: [https://app.example.com, ...] | ['*'], protectStatus: true }` */
function parseHttp(raw: unknown, source: string): HttpSecurityOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: http must be a mapping with allowedOrigins and/or protectStatus`);
  const options: HttpSecurityOptions = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'protectStatus') {
      if (typeof value !== 'boolean') throw new ConfigError(`${source}: http.protectStatus must be true or false`);
      options.protectStatus = value;
    } else if (key === 'allowedOrigins') {
      if (!Array.isArray(value)) throw new ConfigError(`${source}: http.allowedOrigins must be a list of origins (https://app.example.com) or ['*']`);
      const bad = value.map(invalidOrigin).find((why) => why !== undefined);
      if (bad) throw new ConfigError(`${source}: http.allowedOrigins: ${bad}`);
      options.allowedOrigins = value as string[];
    } else throw new ConfigError(`${source}: unknown key http.${key} (known: allowedOrigins, protectStatus)`);
  }
  return options;
}

/** `redelivery: { initialBackoff: 1s, maxBackoff: 1m }` */
function parseRedelivery(raw: unknown, source: string): Partial<RedeliveryOptions> {
  if (typeof raw !== 'object' || raw === null) throw new ConfigError(`${source}: redelivery must be a mapping with initialBackoff and/or maxBackoff`);
  const options: Partial<RedeliveryOptions> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'initialBackoff') options.initialBackoffMs = parseDuration(value, `${source}: redelivery.initialBackoff`);
    else if (key === 'maxBackoff') options.maxBackoffMs = parseDuration(value, `${source}: redelivery.maxBackoff`);
    else throw new ConfigError(`${source}: unknown key redelivery.${key} (known: initialBackoff, maxBackoff)`);
  }
  return options;
}

/** A path from the config file `source`, made absolute against the file's directory. */
function relativeToFile(source: string, file: string): string {
  return resolve(dirname(resolve(source)), file);
}

function expectType(config: Record<string, unknown>, key: string, type: string, source: string): void {
  if (config[key] !== undefined && typeof config[key] !== type) throw new ConfigError(`${source}: ${key} must be a ${type}`);
}

function isIntIn(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}
