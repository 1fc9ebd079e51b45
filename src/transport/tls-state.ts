import type { HttpListener } from '../http/server.js';
import { EddyError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { TlsListener } from './tls.js';
import { DEFAULT_TLS_PORT, type CertificateSummary, type TlsCredentials } from './tls-credentials.js';

/** The TLS side of a running server (src/server.ts). */
export interface TlsState {
  credentials: TlsCredentials;
  listener: TlsListener;
  mqtts: { host: string; port: number };
  /** The second, HTTPS listener (`tls.httpPort`). */
  https: { host: string; port: number } | undefined;
  /** The HTTP port itself serves HTTPS (`tls.http`). */
  httpIsHttps: boolean;
}

/** What a reload did to TLS: the certificate now in force, or why the files did not load (the old ones stay). */
export type TlsReloadResult = { certificate: CertificateSummary } | { error: string };

/** Opens the TLS listeners (MQTT, and the second HTTPS one when asked for) and logs what is in force. */
export async function listenTls(host: string, credentials: TlsCredentials, listener: TlsListener, http: HttpListener, logger: Logger): Promise<TlsState> {
  const settings = credentials.settings;
  const mqtts = await listener.listen(host, settings.port ?? DEFAULT_TLS_PORT);
  const https = settings.httpPort !== undefined ? await http.listenHttps(host, settings.httpPort, credentials) : undefined;
  const state: TlsState = { credentials, listener, mqtts: { host, port: mqtts.port }, https: https && { host, port: https.port }, httpIsHttps: settings.http === true };
  logger.info({ tls: credentials.describe(), mqtts: state.mqtts, https: state.https ?? (state.httpIsHttps ? 'on the HTTP port' : undefined) }, 'TLS listeners open');
  if (Date.parse(credentials.certificate.notAfter) < Date.now()) {
    logger.warn({ notAfter: credentials.certificate.notAfter }, 'the TLS certificate has expired: clients that verify it will refuse to connect');
  }
  return state;
}

/**
 * Re-reads the certificate, key and CA files into every TLS listener (SIGHUP): handshakes from now on
 * use them, connections already open keep theirs. A file that does not load is logged, and the
 * certificate in force stays.
 */
export function reloadTls(state: TlsState, logger: Logger): TlsReloadResult {
  try {
    const certificate = state.credentials.reload();
    logger.info(
      { tls: state.credentials.describe() },
      `reloaded the TLS certificate (${certificate.subject}, serial ${certificate.serial}, valid until ${certificate.notAfter})${state.credentials.settings.ca ? ' and the client CA' : ''}`,
    );
    return { certificate };
  } catch (err) {
    if (!(err instanceof EddyError)) throw err;
    logger.error({ err: err.message }, `TLS reload failed, keeping the current certificate and key: ${err.message}`);
    return { error: err.message };
  }
}
