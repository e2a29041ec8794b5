export type { Counter, GuardedPort, RulesetSpec } from './firewall.js';
export { dropCounterName, HOST_COUNTER, renderRuleset, TABLE } from './firewall.js';
export { NetHost } from './ip.js';
export type { NetworkManagerOptions, ReconcileReport, TapInfo } from './manager.js';
export { NetworkManager } from './manager.js';
export type { NetListEntry, NetListMember } from './members.js';
export { bridgeName, guestMac, tapName, vethName } from './names.js';
