import type http from 'node:http';
import type { BrokerLimits } from '../core/limits.js';
import { ConfigError } from '../util/errors.js';

/**
 * How often Node checks for requests past `headersTimeout` / `requestTimeout`, at most. Node does
 * not run a timer per connection: it walks the unfinished requests on this interval (30 s by
 * default, so a 10 s limit could hold a socket for 40 s). A quarter of the shortest timeout, between
 * 100 ms and 1 s, lets a 2 s timeout fire by 2.5 s; the walk is over unfinished requests only.
 */
export function checkingIntervalMs(limits: BrokerLimits): number {
  const timeouts = [limits.httpHeadersTimeout, limits.httpRequestTimeout].filter((t) => t > 0).map((t) => t * 1000);
  if (timeouts.length === 0) return 1000;
  return Math.min(1000, Math.max(100, Math.floor(Math.min(...timeouts) / 4)));
}

/**
 * The options of the HTTP listener's `http.Server` from the broker limits (seconds in, ms out).
 * A timeout of 0 (possible in the config file) turns it off, as in Node. Throws a ConfigError for
 * limits Node would refuse: it insists that the headers timeout is not longer than the request's.
 */
export function httpServerOptions(limits: BrokerLimits): http.ServerOptions {
  checkHttpLimits(limits);
  return {
    headersTimeout: limits.httpHeadersTimeout * 1000,
    requestTimeout: limits.httpRequestTimeout * 1000,
    keepAliveTimeout: limits.httpIdleTimeout * 1000,
    connectionsCheckingInterval: checkingIntervalMs(limits),
  };
}

/** Throws a ConfigError naming the limits when the HTTP limits cannot work together. */
export function checkHttpLimits(limits: BrokerLimits): void {
  if (limits.maxHttpConnections < 1) {
    throw new ConfigError(`maxHttpConnections must be at least 1, got ${limits.maxHttpConnections}`);
  }
  const { httpHeadersTimeout: headers, httpRequestTimeout: request } = limits;
  if (headers > 0 && request > 0 && headers > request) {
    throw new ConfigError(
      `httpHeadersTimeout (${headers} s) must not be longer than httpRequestTimeout (${request} s): the request's time includes its headers`,
    );
  }
}
