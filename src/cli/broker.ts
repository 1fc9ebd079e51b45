import { EddyServer, formatHost } from '../server.js';
import path from 'node:path';
import { MemoryStorage } from '../storage/memory.js';
import { DiskStorage } from '../storage/disk/disk-storage.js';
import { parseFsyncPolicy } from '../storage/disk/segmented-log.js';
import { ConfigError, EddyError } from '../util/errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../util/logger.js';
import type { BrokerLimits } from '../core/limits.js';
import { parseFlags, parseInteger } from './args.js';
import { loadConfigFile, MAX_WORKERS, parseClusterServers, parseServerReference, type BrokerConfig } from './config.js';
import { runUntilStopped } from './broker-lifecycle.js';
import { LIMIT_FLAGS, LIMIT_OPTIONS, limitFlagsHelp } from './limit-flags.js';
import { TLS_FLAGS, TLS_HELP, checkTlsSettings, mergeTlsFlags } from './tls-config.js';
import { parseSysInterval } from './sys-config.js';
import { runWorkers } from './workers.js';
import { linkWorker, workerIndex } from './worker-link.js';

export const BROKER_HELP = `Usage: eddy broker [options]

Runs the Eddy broker: MQTT 3.1.1/5.0 over TCP, MQTT over WebSocket at /mqtt on the HTTP port,
and with --tls-cert/--tls-key MQTT over TLS (and optionally HTTPS/WSS).
When listening it prints:  eddy ready mqtt=HOST:PORT http=HOST:PORT [mqtts=HOST:PORT] [https=HOST:PORT]
SIGTERM/SIGINT stop it gracefully; SIGHUP reloads the AsyncAPI documents, channel policies,
the password file, ACL and JWT keys, and the TLS files.
Paths in the config file are relative to the file; paths in flags, to the working directory.

Options:
  --config FILE             YAML or JSON configuration; flags override it
  --host HOST               address to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --port PORT               MQTT TCP port (default 1883; 0 = any free port)
  --http-port PORT          HTTP/WebSocket port (default 8080; 0 = any free port)
  --memory                  keep all state in memory (lost at exit)
  --data-dir DIR            durable storage directory (default ./eddy-data)
  --cluster URLS            keep all state in a NATS JetStream cluster: nats://H:P[,nats://H:P...]
                            (config cluster.servers, cluster.replicas, default 3; docs/cluster.md)
  --server-reference REF    with --cluster: at SIGTERM/SIGINT, tell MQTT 5 clients to use REF instead
                            (DISCONNECT 0x9C with Server Reference; host[:port], several space-separated;
                            config cluster.serverReference); without it they are told 0x8B
  --workers N               with --cluster: run N worker processes on the same ports, each a node of
                            the cluster, to use N cores (config workers; default 1; docs/performance.md)
  --fsync POLICY            always (default; group commit) | interval:<ms> | off
  --log-level LEVEL         fatal|error|warn|info|debug|trace|silent (default info)
${limitFlagsHelp()}
  --deny-subscribe FILTER   refuse subscriptions matching FILTER (repeatable)
  --deny-publish FILTER     refuse publishes on topics matching FILTER (repeatable)
  --password-file FILE      users and their salted password hashes (written by eddy passwd)
  --acl FILE                the ACL: an ordered YAML list of rules (README "Securing a broker")
  --allow-anonymous         let clients without credentials in, although authentication is configured
  --protect-status          /metrics and /healthz need credentials too (config http.protectStatus)
  --asyncapi FILE           AsyncAPI 3 document whose channels and message schemas are enforced
                            (repeatable: one per service)
  --strict                  refuse publishes and subscriptions on channels no document declares
${TLS_HELP}
  --sys-interval SECONDS    seconds between rounds of $SYS/broker/… topics (default 10; 0 = off)
`;

const FLAGS = {
  config: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'http-port': { type: 'string' },
  memory: { type: 'boolean' },
  'data-dir': { type: 'string' },
  cluster: { type: 'string' },
  'server-reference': { type: 'string' },
  workers: { type: 'string' },
  fsync: { type: 'string' },
  'log-level': { type: 'string' },
  ...LIMIT_OPTIONS,
  'deny-subscribe': { type: 'string', multiple: true },
  'deny-publish': { type: 'string', multiple: true },
  asyncapi: { type: 'string', multiple: true },
  strict: { type: 'boolean' },
  'password-file': { type: 'string' },
  acl: { type: 'string' },
  'allow-anonymous': { type: 'boolean' },
  ...TLS_FLAGS,
  'protect-status': { type: 'boolean' },
  'sys-interval': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Resolves flags over the config file into one configuration. Exported for tests. */
export function brokerConfigFromArgs(args: string[]): BrokerConfig | 'help' {
  const { values, positionals } = parseFlags(args, FLAGS, 'eddy broker');
  if (values.help) return 'help';
  if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}"`, { command: 'eddy broker' });
  const config: BrokerConfig = values.config ? loadConfigFile(values.config) : {};
  if (values.host !== undefined) config.host = values.host;
  config.port = parseInteger(values.port, '--port', 0, 65535) ?? config.port;
  config.httpPort = parseInteger(values['http-port'], '--http-port', 0, 65535) ?? config.httpPort;
  if (values.memory) config.memory = true;
  if (values['data-dir'] !== undefined) config.dataDir = values['data-dir'];
  if (values.fsync !== undefined) config.fsync = values.fsync;
  if (config.fsync !== undefined && !parseFsyncPolicy(config.fsync)) {
    throw new ConfigError(`--fsync must be always, off or interval:<ms>, got ${JSON.stringify(config.fsync)}`);
  }
  if (config.memory && values['data-dir'] !== undefined) throw new ConfigError('--memory and --data-dir exclude each other');
  if (values.cluster !== undefined) config.cluster = { ...config.cluster, servers: parseClusterServers(values.cluster, '--cluster') };
  if (config.cluster && (values.memory || values['data-dir'] !== undefined)) throw new ConfigError('--cluster excludes --memory and --data-dir');
  if (config.cluster && values.cluster === undefined && (config.memory || config.dataDir !== undefined)) throw new ConfigError('cluster excludes memory and dataDir in the configuration');
  if (values['server-reference'] !== undefined) {
    // A redirect is the drain of a cluster node: a node of its own has no other server holding its sessions.
    if (!config.cluster) throw new ConfigError('--server-reference applies to --cluster only (a draining cluster node sends its clients there)');
    config.cluster = { ...config.cluster, serverReference: parseServerReference(values['server-reference'], '--server-reference') };
  }
  config.workers = parseInteger(values.workers, '--workers', 1, MAX_WORKERS) ?? config.workers;
  if ((config.workers ?? 1) > 1 && !config.cluster) {
    // Workers share one broker's state through JetStream; a data directory belongs to one process.
    throw new ConfigError('--workers needs --cluster: the workers are nodes of one JetStream cluster (the disk and memory engines belong to one process)');
  }
  if (values['log-level'] !== undefined) {
    if (!LOG_LEVELS.includes(values['log-level'] as LogLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
    config.logLevel = values['log-level'] as LogLevel;
  }
  const limits: Partial<BrokerLimits> = { ...config.limits };
  for (const { key, flag, min, max } of LIMIT_FLAGS) {
    const value = parseInteger((values as Record<string, unknown>)[flag] as string | undefined, `--${flag}`, min, max);
    if (value !== undefined) limits[key] = value;
  }
  config.limits = limits;
  config.access = {
    denySubscribe: [...(config.access?.denySubscribe ?? []), ...(values['deny-subscribe'] ?? [])],
    denyPublish: [...(config.access?.denyPublish ?? []), ...(values['deny-publish'] ?? [])],
  };
  if (values.asyncapi) config.asyncapi = [...(config.asyncapi ?? []), ...values.asyncapi];
  if (values.strict) config.strict = true;
  const auth = { ...config.auth };
  if (values['password-file'] !== undefined) auth.passwordFile = values['password-file'];
  if (values.acl !== undefined) auth.acl = values.acl;
  if (values['allow-anonymous']) auth.allowAnonymous = true;
  config.auth = auth;
  if (values['protect-status']) config.http = { ...config.http, protectStatus: true };
  if (values['sys-interval'] !== undefined) config.sys = { interval: parseSysInterval(values['sys-interval'], '--sys-interval') };
  if (config.strict && (config.asyncapi ?? []).length === 0) throw new ConfigError('--strict needs at least one --asyncapi document');
  config.tls = checkTlsSettings(mergeTlsFlags(config.tls, values), config);
  return config;
}

/** `eddy ready mqtt=… http=…`, then `mqtts=…` with TLS on and `https=…` for a second, HTTPS listener. */
function readyLine(server: EddyServer): string {
  const at = (e: { host: string; port: number }): string => `${formatHost(e.host)}:${e.port}`;
  return [`eddy ready mqtt=${at(server.mqtt)}`, `http=${at(server.http)}`, ...(server.mqtts ? [`mqtts=${at(server.mqtts)}`] : []), ...(server.https ? [`https=${at(server.https)}`] : [])].join(' ');
}

export async function runBroker(args: string[]): Promise<number | 'forever'> {
  const config = brokerConfigFromArgs(args);
  if (config === 'help') {
    process.stdout.write(BROKER_HELP);
    return 0;
  }
  const worker = workerIndex();
  // A worker's every line names it, so that N workers' logs on one stderr can be told apart.
  const base = createLogger(config.logLevel ?? 'info');
  const logger = worker === undefined ? base : base.child({ worker: Number(worker) });
  if (worker === undefined && (config.workers ?? 1) > 1) {
    runWorkers(config.workers!, logger, (line) => process.stdout.write(`${line}\n`));
    return 'forever';
  }
  const fsync = parseFsyncPolicy(config.fsync ?? 'always')!;
  // The JetStream engine (and the NATS client under it) is loaded only for a cluster node.
  const storage = config.cluster
    ? new (await import('../storage/jetstream/jetstream-storage.js')).JetStreamStorage({ servers: config.cluster.servers, replicas: config.cluster.replicas, logger })
    : config.memory
      ? new MemoryStorage()
      : new DiskStorage({ dir: path.resolve(config.dataDir ?? './eddy-data'), fsync, logger });
  const server = await EddyServer.start({
    host: config.host ?? '127.0.0.1',
    port: config.port ?? 1883,
    httpPort: config.httpPort ?? 8080,
    storage,
    limits: config.limits,
    access: config.access,
    channels: config.channels,
    redelivery: config.redelivery,
    asyncapi: config.asyncapi,
    strict: config.strict,
    auth: { ...config.auth, ...(config.quotas ? { quotas: config.quotas } : {}) },
    tls: checkTlsSettings(config.tls, config),
    ...(config.http ? { http: config.http } : {}),
    ...(config.sys ? { sys: config.sys } : {}),
    logger,
  }).catch((err: unknown) => {
    // A document that does not load is a configuration error (exit 2), reported with its diagnostics.
    if (err instanceof EddyError && err.code === 'EDDY_ASYNCAPI') {
      throw new ConfigError(err.message, { details: (err as EddyError & { diagnostics: string[] }).diagnostics, cause: err });
    }
    throw err;
  });
  logger.info({ mqtt: server.mqtt, http: server.http, storage: server.broker.storage.kind }, 'broker started');
  const stopper = runUntilStopped(server, logger, config, () => brokerConfigFromArgs(args) as BrokerConfig, { watchParent: worker === undefined });
  if (worker !== undefined) linkWorker(server, readyLine(server), logger, () => stopper('the primary process exited'));
  else process.stdout.write(`${readyLine(server)}\n`);
  return 'forever';
}
