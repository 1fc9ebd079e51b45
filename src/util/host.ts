/** A host as it appears before `:port` in a URL or address: IPv6 in brackets. */
export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Whether an address (or a listen host) is this machine's loopback: nobody else can reach it. */
export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/, '');
  return a === 'localhost' || a === '::1' || a.startsWith('127.');
}
