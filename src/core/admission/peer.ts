/** What a transport knows of the client at the other end, before any packet: where it is and how it came. */
export interface PeerInfo {
  /** `host:port` as seen by the broker (for logs, failure counting and the admin API). */
  remote: string;
  /** The IP address alone (failures are counted, and slowed down, per address). */
  address: string;
  transport: 'tcp' | 'tls' | 'ws' | 'wss' | 'http' | 'https';
  /** The client's certificate, on TLS with client certificates. */
  certificate?: PeerCertificate;
}

/** A client certificate as TLS presented it. */
export interface PeerCertificate {
  /** True when it verified against the configured CA (`--tls-ca`). */
  authorized: boolean;
  /** Why it did not verify, when it did not. */
  authorizationError?: string;
  /** Subject common name. */
  commonName?: string;
  /** Subject alternative names, as `DNS:…`, `email:…`, `URI:…`, `IP Address:…`. */
  altNames: string[];
  fingerprint256?: string;
}
