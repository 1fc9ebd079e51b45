// Child process that hosts Aedes, so it gets its own event loop and CPU like the
// other brokers instead of competing with the bench client in the same process.
// Prints the same ready line shape as Eddy so brokers.ts can parse both alike.
// With a certificate and key file after the host, it serves MQTT over TLS instead (`mqtts=`).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Aedes } from 'aedes';

const [host = '127.0.0.1', certFile, keyFile] = process.argv.slice(2);

const aedes = await Aedes.createBroker();
const server = certFile && keyFile
  // TCP_NODELAY like Eddy's and Mosquitto's (set_tcp_nodelay) sockets, so that no broker's latency carries Nagle delays.
  ? tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2', noDelay: true }, aedes.handle)
  : net.createServer({ noDelay: true }, aedes.handle);

server.listen(0, host, () => {
  const addr = server.address() as net.AddressInfo;
  process.stdout.write(`aedes ready ${certFile ? 'mqtts' : 'mqtt'}=${host}:${addr.port}\n`);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  // Open client sockets would keep server.close() waiting forever.
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  aedes.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
