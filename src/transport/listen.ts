import type net from 'node:net';
import { ListenError } from '../util/errors.js';

/** Binds a server and turns bind failures into one-line errors a user can act on. */
export function listen(server: net.Server, host: string, port: number, what: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = `${host}:${port}`;
      if (err.code === 'EADDRINUSE') reject(new ListenError(`${what} port ${where} is already in use`, err));
      else if (err.code === 'EACCES') reject(new ListenError(`no permission to listen on ${what} port ${where}`, err));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new ListenError(`${what} host ${host} is not an address of this machine`, err));
      else reject(new ListenError(`cannot listen for ${what} on ${where}: ${err.message}`, err));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
