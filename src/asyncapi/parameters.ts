import type { ChannelInterface } from '@asyncapi/parser';

/**
 * A channel parameter (`{fridgeId}` in `fridge/{fridgeId}/level`) as the registry checks it. An
 * AsyncAPI 3 parameter constrains its values with `enum` only (the parser refuses a `pattern` there,
 * and the 2.x converter drops a `schema.pattern`). When several declarations of one address
 * constrain it differently, a value any of them allows is allowed (the union): each service's
 * document says which values that service uses, and the broker carries the traffic of all of them.
 */
export interface ChannelParameter {
  name: string;
  /** The values allowed; undefined: any value (a declaration does not limit it). */
  values: string[] | undefined;
}

/** `{name}` placeholders of a channel address, in order. */
export function parameterNames(address: string): string[] {
  return [...address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
}

/** The parameters one channel declares, one for each placeholder of its address. */
export function readParameters(channel: ChannelInterface, address: string): ChannelParameter[] {
  return parameterNames(address).map((name) => {
    const values = (channel.parameters().get(name)?.json() as { enum?: unknown[] } | undefined)?.enum;
    return { name, values: Array.isArray(values) ? values.map(String) : undefined };
  });
}

/** The parameters of two declarations of the same address, united (see ChannelParameter). */
export function uniteParameters(a: ChannelParameter[], b: ChannelParameter[]): ChannelParameter[] {
  return a.map((p, i) => {
    const other = b[i]!.values;
    return { name: p.name, values: p.values && other ? [...new Set([...p.values, ...other])] : undefined };
  });
}

export function parameterAccepts(p: ChannelParameter, value: string): boolean {
  return !p.values || p.values.includes(value);
}

/** `parameter fridgeId must be one of kitchen, garage`. */
export function describeParameter(p: ChannelParameter): string {
  return `parameter ${p.name} must be one of ${(p.values ?? []).join(', ')}`;
}
