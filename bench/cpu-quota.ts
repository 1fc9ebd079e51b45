// CPU quotas for the bench's Eddy processes (--eddy-cpu): each process gets a cgroup of its own
// with a CFS quota of a fraction of one core. On a 2-core machine this is how scaling over cores is
// simulated: 1 worker on 0.4 of a core against 2 workers on 0.4 each, with the rest of the machine
// left to the clients and the nats-servers, which are never limited.
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const PERIOD_US = 100_000;
/** cgroup v1's cpu controller, then a cgroup v2 hierarchy with the cpu controller. */
const V1_ROOT = '/sys/fs/cgroup/cpu';
const V2_ROOT = '/sys/fs/cgroup';

export class CpuQuotaUnavailable extends Error {}

export interface CpuQuota {
  /** Removes the cgroups (their processes must have exited). */
  release(): void;
}

/** Puts each pid in a cgroup of its own limited to `cores` of a core (0 < cores). */
export function limitCpu(pids: number[], cores: number): CpuQuota {
  const quotaUs = Math.max(1000, Math.round(cores * PERIOD_US));
  const v1 = existsSync(path.join(V1_ROOT, 'cpu.cfs_quota_us'));
  const v2 = !v1 && existsSync(path.join(V2_ROOT, 'cgroup.controllers'));
  if (!v1 && !v2) throw new CpuQuotaUnavailable('--eddy-cpu needs a cgroup cpu controller (/sys/fs/cgroup/cpu or cgroup v2) and root');
  const dirs: string[] = [];
  try {
    for (const pid of pids) {
      const dir = path.join(v1 ? V1_ROOT : V2_ROOT, `eddy-bench-${process.pid}-${pid}`);
      mkdirSync(dir);
      dirs.push(dir);
      if (v1) {
        writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
        writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
      } else {
        writeFileSync(path.join(dir, 'cpu.max'), `${quotaUs} ${PERIOD_US}`);
      }
      // cgroup.procs moves every thread of the process (tasks would move one).
      writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    }
  } catch (err) {
    release(dirs);
    throw new CpuQuotaUnavailable(`--eddy-cpu: ${(err as Error).message}`);
  }
  return { release: () => release(dirs) };
}

function release(dirs: string[]): void {
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch {
      // A process still inside (it outlived its stop): the empty group goes at the next reboot.
    }
  }
}
