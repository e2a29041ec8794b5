/** `n` full-length IPv6 addresses (39 characters each) to pin on a NIC: the alias fills fast. */
export const longIpv6s = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `fd00:1234:5678:9abc:def0:1234:5678:${i + 1}`);

/** The most such addresses `fits` accepts, counting up from none; 20 (800 bytes) means it never refused. */
export function mostThatFit(fits: (n: number) => boolean): number {
  let most = 0;
  while (most < 20 && fits(most + 1)) most++;
  return most;
}
