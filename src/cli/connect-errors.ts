/**
 * One line for a failed connection, TLS above all: Node and OpenSSL report certificate and
 * handshake problems as codes and multi-line library messages; the user needs to know what was
 * wrong and which flag fixes it. `cafileFlag` names the flag that gives the CA (--cafile).
 */
export function describeConnectError(err: Error & { code?: string | number }, host: string, cafileFlag = '--cafile'): string {
  const code = typeof err.code === 'string' ? err.code : '';
  const reason = opensslReason(err.message);
  switch (code) {
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'CERT_UNTRUSTED':
      return `TLS: the broker's certificate is not trusted (${reason}); give the CA that signed it with ${cafileFlag} FILE, or --insecure to skip the check`;
    case 'CERT_HAS_EXPIRED':
      return `TLS: the broker's certificate has expired (${reason})`;
    case 'CERT_NOT_YET_VALID':
      return `TLS: the broker's certificate is not valid yet (${reason})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS: the broker's certificate is not for ${host}: ${reason}`;
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'TLS: the broker requires a client certificate; give one with --cert FILE --key FILE';
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN':
    case 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED':
      return `TLS: the broker refused the client certificate (${reason})`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
      return `TLS handshake failed: ${host} does not answer in TLS (a plain port?)`;
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
      return `TLS handshake failed: no TLS version in common with the broker (${reason})`;
    case 'ECONNRESET':
      // What Node says when the other side closes during the handshake, as a plain MQTT port does on a ClientHello.
      if (/before secure TLS connection/.test(err.message)) return `TLS handshake failed: ${host} closed the connection before the handshake completed (a plain port?)`;
      return reason;
    default:
      if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code.startsWith('ERR_OSSL_')) return `TLS handshake failed: ${reason}`;
      return reason || code || 'connection failed';
  }
}

/**
 * The reason of an OpenSSL error line (`…:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/…`
 * → `tlsv1 alert unknown ca`); other messages as their first line.
 */
export function opensslReason(message: string): string {
  const line = message.split('\n')[0]!.trim();
  const routine = /:(?:SSL|X509|PEM) routines:[^:]*:([^:]+)/.exec(line);
  return routine ? routine[1]! : line;
}

/** A URL as it may be shown: without its password (and user name), which belong to no error message. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}
