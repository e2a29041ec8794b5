import { z } from 'zod';
import { defineMethod, type RpcMethod } from '../control/rpc/method.js';
import type { NetListEntry } from './members.js';

/** The slice of NetworkManager the RPC layer needs (so the control server can be tested without root). */
export interface NetLister {
  list(): Promise<NetListEntry[]>;
}

/** `net.list` (contract extension): networks, members and per-NIC drop counters. */
export function netMethods(net: NetLister): RpcMethod[] {
  return [
    defineMethod({
      name: 'net.list',
      params: z.strictObject({}),
      summary:
        'anonymous networks: bridge, uplink, host addresses (always empty), members with drop counters',
      handler: () => net.list(),
    }),
  ];
}
