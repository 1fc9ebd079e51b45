import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import mqttPacket, { type Packet } from 'mqtt-packet';

/** A certificate and its private key, as PEM files. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Subject common name. */
  cn: string;
  serial: number;
  /** subjectAltName entries, e.g. `IP:127.0.0.1`, `DNS:localhost`, `email:a@b`. */
  altNames?: string[];
  usage: 'server' | 'client';
}

/**
 * A throwaway PKI made with the `openssl` command line, as an operator would make one: a CA, the
 * certificates it signs (server and client), all P-256 keys (fast to generate). Files go into `dir`.
 * Used by the tests and by `npm run bench -- --tls`.
 */
export class TestPki {
  readonly ca: CertificateFiles;

  constructor(
    readonly dir: string,
    readonly name = 'ca',
  ) {
    const key = path.join(dir, `${name}.key`);
    const cert = path.join(dir, `${name}.crt`);
    newKey(key);
    openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=Eddy test CA ${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    this.ca = { cert, key };
  }

  /** A certificate for 127.0.0.1 and localhost (what the tests connect to), with this CN and serial. */
  server(file: string, cn = 'eddy-test-server', serial = 1000): CertificateFiles {
    return this.issue(file, { cn, serial, altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'server' });
  }

  client(file: string, cn: string, serial = 2000): CertificateFiles {
    return this.issue(file, { cn, serial, altNames: [`email:${cn}@example.com`, `URI:spiffe://eddy.test/${cn}`], usage: 'client' });
  }

  issue(file: string, options: IssueOptions): CertificateFiles {
    const key = path.join(this.dir, `${file}.key`);
    const cert = path.join(this.dir, `${file}.crt`);
    const csr = path.join(this.dir, `${file}.csr`);
    const ext = path.join(this.dir, `${file}.ext`);
    newKey(key);
    openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${options.cn}`]);
    writeFileSync(ext, [
      'basicConstraints=CA:FALSE',
      `extendedKeyUsage=${options.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      ...(options.altNames?.length ? [`subjectAltName=${options.altNames.join(',')}`] : []),
      '',
    ].join('\n'));
    openssl(['x509', '-req', '-in', csr, '-CA', this.ca.cert, '-CAkey', this.ca.key, '-set_serial', String(options.serial), '-days', '2', '-out', cert, '-extfile', ext]);
    return { cert, key };
  }
}

/** The PEM text of a file, for clients that take contents rather than paths. */
export function pem(file: string): Buffer {
  return readFileSync(file);
}

/** The serial number of a PEM certificate, as openssl prints it (hex). */
export function serialOf(certPem: Buffer | string): string {
  return openssl(['x509', '-noout', '-serial'], certPem).trim().replace(/^serial=/, '');
}

function newKey(file: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

function openssl(args: string[], input?: Buffer | string): string {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8' });
}

/** What a CONNECT over TLS came to: a CONNACK, or the error that ended the connection first. */
export interface TlsAttempt {
  connack: boolean;
  /** The socket's error code (ERR_SSL_…, ECONNRESET), when it failed. */
  error: string | undefined;
  /** The TLS version negotiated, when the handshake completed on the client's side. */
  protocol: string | null;
  /** The server certificate's serial (hex), when the handshake completed. */
  serverSerial: string | undefined;
  localPort: number | undefined;
  socket: tls.TLSSocket;
}

/**
 * Opens a TLS connection to `port`, sends an MQTT 5 CONNECT and resolves with the CONNACK or the
 * error that came first. A refused handshake is an event (an alert, a reset), not a silence: in
 * TLS 1.3 the client's side of the handshake completes before the server has checked the client
 * certificate, so only the CONNACK proves that the server accepted it.
 */
export function attemptTls(port: number, options: tls.ConnectionOptions, timeoutMs = 10_000): Promise<TlsAttempt> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    let protocol: string | null = null;
    let serverSerial: string | undefined;
    let localPort: number | undefined;
    let settled = false;
    const done = (connack: boolean, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ connack, error, protocol, serverSerial, localPort, socket });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`neither CONNACK nor an error within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      protocol = socket.getProtocol();
      serverSerial = socket.getPeerCertificate().serialNumber;
      localPort = socket.localPort;
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: '', clean: true, keepalive: 30 } as Packet, { protocolVersion: 5 }));
    });
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connack') done(true);
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    socket.on('close', () => done(false, 'closed'));
  });
}
