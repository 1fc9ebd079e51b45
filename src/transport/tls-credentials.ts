import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import tls from 'node:tls';
import { ConfigError } from '../util/errors.js';

/** TLS for the broker's listeners (`tls:` in the config file, the `--tls-*` flags). Paths are PEM files. */
export interface TlsSettings {
  /** The server certificate, optionally followed by its intermediate CA certificates. */
  cert: string;
  /** The private key of `cert`, unencrypted. */
  key: string;
  /** CA certificate(s) that client certificates are verified against; with it, clients are asked for one. */
  ca?: string;
  /** MQTT over TLS; default 8883, 0 = any free port. */
  port?: number;
  /** Refuse the handshake of a client without a certificate that `ca` verifies (on every TLS listener). */
  requireClientCert?: boolean;
  /** The HTTP port itself serves HTTPS (and MQTT over WSS at /mqtt). */
  http?: boolean;
  /** A second listener, HTTPS, on this port beside the plain HTTP one. */
  httpPort?: number;
}

/** What the logs say of a certificate in force. */
export interface CertificateSummary {
  subject: string;
  serial: string;
  notAfter: string;
  altNames: string | undefined;
}

/** The files as read, checked, and ready for a secure context. */
interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  certificate: CertificateSummary;
  /** How many CA certificates `ca` holds. */
  caCertificates: number;
}

export const DEFAULT_TLS_PORT = 8883;
/** TLS 1.0 and 1.1 are deprecated (RFC 8996); Node's default minimum is 1.2 too, but a NODE_OPTIONS flag could lower it. */
const MIN_VERSION = 'TLSv1.2';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The certificate, key and CA of every TLS listener of one broker. Each listener's server is
 * attached here, so that a reload (SIGHUP) re-reads the files once and puts the new secure
 * context on every server with `setSecureContext`: handshakes from then on use it, connections
 * already open keep theirs. A file that does not load throws a one-line ConfigError and changes nothing.
 */
export class TlsCredentials {
  private material: TlsMaterial;
  private readonly servers: tls.Server[] = [];

  constructor(readonly settings: TlsSettings) {
    this.material = loadMaterial(settings);
  }

  get certificate(): CertificateSummary {
    return this.material.certificate;
  }

  /** Whether clients are asked for a certificate (a CA is configured to verify it against). */
  get requestsClientCert(): boolean {
    return this.settings.ca !== undefined;
  }

  /**
   * Options for `tls.createServer` / `https.createServer`. `handshakeTimeoutMs` bounds a handshake
   * that never completes: Node's default, 120 s, would let idle sockets hold descriptors that long.
   */
  serverOptions(handshakeTimeoutMs: number): tls.TlsOptions {
    const requireCert = this.settings.requireClientCert === true;
    return {
      ...this.contextOptions(),
      // Without a CA there is nothing to verify a client certificate against, so none is asked for.
      requestCert: this.requestsClientCert,
      // Asked for but not required: the handshake completes, and PeerInfo says whether it verified.
      rejectUnauthorized: requireCert,
      ...(handshakeTimeoutMs > 0 ? { handshakeTimeout: handshakeTimeoutMs } : {}),
    };
  }

  /** Keeps `server` for reloads. */
  attach(server: tls.Server): void {
    this.servers.push(server);
  }

  /**
   * Re-reads the files and puts them in force on every attached server. Throws a ConfigError (and
   * keeps the current context) when one does not load.
   */
  reload(): CertificateSummary {
    const next = loadMaterial(this.settings);
    this.material = next;
    // setSecureContext rebuilds the context from what it is given alone: the minimum version goes again.
    for (const server of this.servers) server.setSecureContext(this.contextOptions());
    return next.certificate;
  }

  /** For the logs: the certificate, and the CA when there is one. */
  describe(): Record<string, unknown> {
    return {
      certificate: this.material.certificate,
      ...(this.settings.ca ? { ca: this.settings.ca, caCertificates: this.material.caCertificates } : {}),
      clientCertificates: this.settings.requireClientCert ? 'required' : this.requestsClientCert ? 'requested' : 'not asked',
    };
  }

  private contextOptions(): tls.SecureContextOptions {
    const { cert, key, ca } = this.material;
    return { cert, key, ...(ca ? { ca } : {}), minVersion: MIN_VERSION };
  }
}

/** Reads and checks the files; each problem is one line naming the file. */
function loadMaterial(settings: TlsSettings): TlsMaterial {
  const cert = readPem(settings.cert, 'TLS certificate');
  const key = readPem(settings.key, 'TLS key');
  const ca = settings.ca === undefined ? undefined : readPem(settings.ca, 'TLS CA');
  const certificates = parseCertificates(cert, settings.cert, 'TLS certificate');
  try {
    createPrivateKey(key);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE') throw new ConfigError(`TLS key ${settings.key} is encrypted: Eddy needs it without a passphrase`);
    throw new ConfigError(`TLS key ${settings.key} is not a PEM private key: ${firstLine(err)}`);
  }
  const caCertificates = ca === undefined ? 0 : parseCertificates(ca, settings.ca!, 'TLS CA').length;
  try {
    // Builds the context once to find what only OpenSSL can tell: a key that does not match the certificate.
    tls.createSecureContext({ cert, key, ...(ca ? { ca } : {}), minVersion: MIN_VERSION });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
      throw new ConfigError(`TLS key ${settings.key} does not belong to the certificate ${settings.cert}`);
    }
    throw new ConfigError(`TLS certificate ${settings.cert} with key ${settings.key}: ${firstLine(err)}`);
  }
  const leaf = certificates[0]!;
  return {
    cert,
    key,
    ca,
    caCertificates,
    certificate: { subject: leaf.subject.replace(/\n/g, ', '), serial: leaf.serialNumber, notAfter: new Date(leaf.validTo).toISOString(), altNames: leaf.subjectAltName },
  };
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? firstLine(err)}`);
  }
}

/** Every certificate of a PEM file; OpenSSL itself would accept a CA file with none, and verify nothing. */
function parseCertificates(pem: Buffer, file: string, what: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${what} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`${what} ${file}: certificate ${i + 1} does not parse: ${firstLine(err)}`);
    }
  });
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
