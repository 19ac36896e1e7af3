import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { badInput } from '../errors.js';
import type { WebhookSettings } from './settings.js';

/** Longest endpoint URL accepted. */
export const MAX_URL_CHARS = 2_048;

/**
 * Addresses a webhook may never reach unless private URLs are allowed: loopback, private,
 * shared (CGNAT), link-local (and so the cloud metadata services at 169.254.169.254 and
 * fd00:ec2::254), multicast, reserved and unspecified ones, in IPv4 and IPv6.
 */
const BLOCKED = (() => {
  const list = new BlockList();
  const v4: [string, number][] = [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.88.99.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ];
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  const v6: [string, number][] = [
    ['::', 128],
    ['::1', 128],
    ['64:ff9b::', 96],
    ['64:ff9b:1::', 48],
    ['100::', 64],
    ['2001::', 23],
    ['2001:db8::', 32],
    ['2002::', 16],
    ['fc00::', 7],
    ['fe80::', 10],
    ['fec0::', 10],
    ['ff00::', 8],
  ];
  for (const [net, prefix] of v6) list.addSubnet(net, prefix, 'ipv6');
  return list;
})();

/** Whether an IP address (v4, v6, or v4-mapped v6) is one a webhook must not reach. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
  // ::ffff:7f00:1 style: the last 32 bits are an IPv4 address.
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return BLOCKED.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return BLOCKED.check(address, 'ipv6');
}

/** A URL's host as an address or a name: brackets of IPv6 literals removed. */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/**
 * Checks an endpoint URL's form (scheme, no credentials, length, a host): BAD_USER_INPUT with
 * `field` otherwise. Says nothing about where it resolves: see {@link checkUrlAddresses}.
 */
export function parseEndpointUrl(text: string, settings: WebhookSettings, field: string): URL {
  if (text.length > MAX_URL_CHARS) {
    throw badInput(field, `must be at most ${MAX_URL_CHARS} characters`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badInput(field, 'expected an absolute http(s) URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw badInput(field, 'expected an https URL');
  }
  if (url.protocol === 'http:' && !settings.allowHttp) {
    throw badInput(field, 'must use https (WEBHOOK_ALLOW_HTTP is off)');
  }
  if (url.username !== '' || url.password !== '') {
    throw badInput(field, 'must not carry credentials; authenticate requests by their signature');
  }
  if (url.hash !== '') throw badInput(field, 'must not have a fragment');
  if (hostOf(url) === '') throw badInput(field, 'must name a host');
  return url;
}

/**
 * Resolves a URL's host and refuses it when any of its addresses is blocked (unless private
 * URLs are allowed) or when it does not resolve. Returns the addresses, in resolver order.
 */
export async function checkUrlAddresses(
  url: URL,
  settings: WebhookSettings,
  field: string,
): Promise<void> {
  const host = hostOf(url);
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      throw badInput(field, 'its host does not resolve');
    }
  }
  if (!settings.allowPrivateUrls && addresses.some(isBlockedAddress)) {
    throw badInput(
      field,
      'resolves to a loopback, private, link-local or metadata address, which webhooks may not reach',
    );
  }
}
