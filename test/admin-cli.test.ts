import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from 'mqtt-packet';
import type { EddyServer, EddyServerOptions } from '../src/server.js';
import { EDDY_BIN, run, startBroker } from './helpers/broker.js';
import { basic, JWT_SECRET, passwordFile, signToken } from './helpers/auth.js';
import { connectClient } from './helpers/mqtt.js';
import { RawClient } from './helpers/raw-client.js';
import { beforeMarker, isPublish, wireInbox } from './helpers/sentinel.js';
import { tempDirs } from './helpers/temp-dir.js';
import { tracker } from './helpers/tracker.js';
import { admin, connectWithInbox, until, type Page } from './helpers/admin.js';

type Disconnect = Extract<Packet, { cmd: 'disconnect' }>;

const t = tracker();
const tempDir = tempDirs('eddy-admin-cli-');
let server: EddyServer | undefined;
afterEach(async () => {
  await t.closeAll();
  await server?.stop();
  server = undefined;
});

async function start(options: EddyServerOptions = {}): Promise<EddyServer> {
  server = await startBroker({ sys: { interval: 0 }, redelivery: { initialBackoffMs: 20, maxBackoffMs: 200 }, ...options });
  return server;
}

/** `eddy admin …` as a child process against the test's broker. */
function eddyAdmin(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [EDDY_BIN, 'admin', ...args, '--http', server!.httpUrl]);
}

const jsonLines = (stdout: string): Array<Record<string, unknown>> => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('eddy admin with authentication', () => {
  it('lists as a table or JSON lines with -u/-P or --token, refuses without the admin role, and kicks a client (0x98)', async () => {
    const s = await start({ auth: { passwordFile: await passwordFile(tempDir(), { root: { password: 'root-pw', roles: ['admin'] }, bob: { password: 'bob-pw' } }), jwt: { secret: JWT_SECRET } } });
    const { client: kicked } = await RawClient.open(s.mqtt.port, { clientId: 'cli-v5', username: 'bob', password: Buffer.from('bob-pw'), properties: { sessionExpiryInterval: 60 } });
    t.track(kicked);

    const table = await eddyAdmin('clients', '-u', 'root', '-P', 'root-pw');
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^CLIENT\s+USER\s+ADDRESS\s+PROTOCOL/);
    assert.match(lines[1]!, /^cli-v5\s+bob\s+127\.0\.0\.1:\d+\s+mqtt 5\.0\/tcp/);
    assert.equal(lines.at(-1), '1 shown of 1');

    const token = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] }, { expiresIn: '5m' });
    const json = await eddyAdmin('sessions', '--json', '--token', token);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(jsonLines(json.stdout).map((x) => [x.clientId, x.connected]), [['cli-v5', true]]);

    const anonymous = await eddyAdmin('clients');
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /401 .*-u USER -P PASSWORD or --token/);
    const bob = await eddyAdmin('clients', '-u', 'bob', '-P', 'bob-pw');
    assert.equal(bob.code, 1);
    assert.match(bob.stderr, /403 this route needs the admin role/);
    const refusedKick = await eddyAdmin('clients', 'kick', 'cli-v5', '-u', 'bob', '-P', 'bob-pw');
    assert.equal(refusedKick.code, 1);
    assert.equal(kicked.isClosed, false);

    const kick = await eddyAdmin('clients', 'kick', 'cli-v5', '-u', 'root', '-P', 'root-pw');
    assert.equal(kick.code, 0, kick.stderr);
    assert.match(kick.stdout, /disconnected cli-v5/);
    assert.equal(((await kicked.next('disconnect')) as Disconnect).reasonCode, 0x98);
    const again = await eddyAdmin('clients', 'kick', 'cli-v5', '-u', 'root', '-P', 'root-pw');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /404 no client "cli-v5" is connected/);
    assert.equal((await admin<Page>(s, 'clients', { authorization: basic('root', 'root-pw') })).body.total, 0);
  });
});

describe('eddy admin operations', () => {
  it('sessions end: the session and its queue are gone (reconnecting: no session, none of its messages)', async () => {
    const s = await start();
    const sub = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-ender', protocolVersion: 4, clean: false }));
    await sub.subscribeAsync('cli/end', { qos: 1 });
    await sub.endAsync();
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-end-pub', protocolVersion: 5 }));
    await publisher.publishAsync('cli/end', 'queued', { qos: 1 });
    const listed = await eddyAdmin('sessions');
    assert.match(listed.stdout, /cli-ender\s+-\s+offline/);

    const end = await eddyAdmin('sessions', 'end', 'cli-ender');
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /ended session cli-ender/);
    const back = await connectWithInbox(s.mqttUrl, { clientId: 'cli-ender', protocolVersion: 4, clean: false });
    t.track(back.client);
    assert.equal(back.connack.sessionPresent, false);
    await back.client.subscribeAsync('cli/end', { qos: 1 });
    await publisher.publishAsync('cli/end', 'sentinel', { qos: 1 });
    assert.deepEqual((await beforeMarker(back.inbox, isPublish('cli/end', 'sentinel'))).map((p) => p.payload.toString()), []);
  });

  it('groups delete: the member no longer gets the group’s messages', async () => {
    const s = await start();
    const member = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-member', protocolVersion: 5 }));
    const inbox = wireInbox(member);
    await member.subscribeAsync(['$share/crew/work/#', 'cli/sentinel'], { qos: 1 });
    const shown = await eddyAdmin('groups', '--json');
    assert.deepEqual(jsonLines(shown.stdout).map((g) => g.name), ['$share/crew/work/#', '$share/eddy-dlq/$DLQ/#']);
    const refused = await eddyAdmin('groups', 'delete', '$share/eddy-dlq/$DLQ/#');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /409/);

    const deleted = await eddyAdmin('groups', 'delete', 'crew/work/#');
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /deleted group \$share\/crew\/work\/#: 1 member subscription\(s\) removed/);
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-group-pub', protocolVersion: 5 }));
    await publisher.publishAsync('work/1', 'for the group', { qos: 1 });
    await publisher.publishAsync('cli/sentinel', 'sentinel', { qos: 1 });
    assert.deepEqual((await beforeMarker(inbox, isPublish('cli/sentinel', 'sentinel'))).map((p) => p.topic), []);
  });

  it('retained clear: a new subscriber gets the other retained message, not the cleared one', async () => {
    const s = await start();
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-ret-pub', protocolVersion: 5 }));
    await publisher.publishAsync('cli/ret/gone', 'old', { qos: 1, retain: true });
    await publisher.publishAsync('cli/ret/kept', 'kept', { qos: 1, retain: true });
    const listed = await eddyAdmin('retained');
    assert.match(listed.stdout, /cli\/ret\/gone\s+3\s+1\s+\d+\s+\S+ \S+\s+old/);
    const clear = await eddyAdmin('retained', 'clear', 'cli/ret/gone');
    assert.equal(clear.code, 0, clear.stderr);
    assert.match(clear.stdout, /cleared the retained message of cli\/ret\/gone/);
    const fresh = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-ret-fresh', protocolVersion: 5 }));
    const inbox = wireInbox(fresh);
    await fresh.subscribeAsync(['cli/ret/gone', 'cli/ret/kept'], { qos: 1 });
    assert.deepEqual((await beforeMarker(inbox, isPublish('cli/ret/kept', 'kept'))).map((p) => p.topic), []);
  });

  it('dlq list, purge --topic and redrive; channels --all pages; stats; usage errors exit 2', async () => {
    const s = await start({ channels: [{ pattern: 'jobs/#', maxDeliveries: 1 }] });
    const nacker = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-nacker', protocolVersion: 5, customHandleAcks: (_t, _p, _packet, ack) => ack(0x80) }));
    await nacker.subscribeAsync('$share/w/jobs/#', { qos: 1 });
    const publisher = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-dlq-pub', protocolVersion: 5 }));
    for (const [topic, payload] of [['jobs/a', 'a1'], ['jobs/b', 'b1'], ['jobs/a', 'a2']] as const) await publisher.publishAsync(topic, payload, { qos: 1 });
    await until(() => s.broker.deadLetters.queue.pendingCount === 3, () => 'not dead-lettered');

    const list = await eddyAdmin('dlq');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /jobs\/a\s+1\s+group \$share\/w\/jobs\/#/);
    const purge = await eddyAdmin('dlq', 'purge', '--topic', 'jobs/a');
    assert.equal(purge.code, 0, purge.stderr);
    assert.equal(purge.stdout.trim(), 'purged 2');
    assert.deepEqual(jsonLines((await eddyAdmin('dlq', '--json')).stdout).map((l) => l.payload), ['b1']);
    await nacker.unsubscribeAsync('$share/w/jobs/#');
    const receiver = t.track(await connectClient(s.mqttUrl, { clientId: 'cli-dlq-receiver', protocolVersion: 5 }));
    const inbox = wireInbox(receiver);
    await receiver.subscribeAsync('jobs/#', { qos: 1 });
    const redrive = await eddyAdmin('dlq', 'redrive');
    assert.equal(redrive.code, 0, redrive.stderr);
    assert.match(redrive.stdout, /redriven 1/);
    await until(() => inbox.some((p) => p.payload.toString() === 'b1'), () => 'redriven letter not received');

    const channels = await eddyAdmin('channels', '--all', '--limit', '2', '--json');
    assert.equal(channels.code, 0, channels.stderr);
    const names = jsonLines(channels.stdout).map((c) => c.channel as string);
    for (const name of ['$DLQ/jobs/a', '$DLQ/jobs/b', 'jobs/a', 'jobs/b']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
    assert.equal(new Set(names).size, names.length);
    const stats = await eddyAdmin('stats', '--json');
    assert.equal((JSON.parse(stats.stdout) as { connections: number }).connections, 3);
    assert.match((await eddyAdmin('stats')).stdout, /^messages\.in: \d+$/m);

    for (const args of [['bogus'], ['clients', 'kick'], ['clients', 'fly'], ['clients', '--topic', 'x'], ['dlq', 'purge', 'extra']]) {
      const bad = await eddyAdmin(...args);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.match(bad.stderr, /^eddy admin: /);
    }
  });
});
