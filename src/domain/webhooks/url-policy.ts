import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { badInput } from '../errors.js';
import type { WebhookSettings } from './settings.js';

/** Longest endpoint URL accepted. */
export const MAX_URL_CHARS = 2_048;

/** IANA's global unicast space (2000::/3): an IPv6 address a webhook may reach lies in it. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
/** The NAT64 well-known prefix (RFC 6052): its last 32 bits are the IPv4 address dialled. */
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

/**
 * Whether an IPv4 address is an ordinary public one: outside every special-purpose range that
 * ipaddr.js knows (RFC 6890 and its updates: unspecified 0/8, private, shared CGNAT 100.64/10,
 * loopback, link-local 169.254/16 with the metadata services, the 192.0.0/24 protocol block,
 * documentation, benchmarking, 6to4 relay, AS112, AMT, multicast, reserved 240/4, broadcast).
 */
function isPublicV4(address: ipaddr.IPv4): boolean {
  return address.range() === 'unicast';
}

/**
 * Whether an IPv6 address is one a webhook may reach. Only two special-purpose ranges carry an
 * IPv4 address the connection really goes to, and that address decides: IPv4-mapped
 * (::ffff:0:0/96: the socket dials the IPv4 address) and the NAT64 well-known prefix
 * (64:ff9b::/96, RFC 6052: a translator dials it). Every other special-purpose range is refused
 * whole, whatever it embeds: IPv4-compatible ::/96 (deprecated, RFC 4291; so `[::127.0.0.1]`),
 * IPv4-translated ::ffff:0:0:0/96 (RFC 6145, so `[::ffff:0:127.0.0.1]`), NAT64 local-use
 * 64:ff9b:1::/48, 6to4 2002::/16 and Teredo 2001::/32 (tunnels through relays), discard,
 * documentation, benchmarking, ORCHID, unique-local, site-local, link-local (fd00:ec2::254 and
 * fe80::), multicast and the rest of 2001::/23. Anything outside 2000::/3 is not global unicast.
 */
function isPublicV6(address: ipaddr.IPv6): boolean {
  const range = address.range();
  if (range === 'ipv4Mapped') return isPublicV4(address.toIPv4Address());
  if (address.match(NAT64_WELL_KNOWN)) {
    return isPublicV4(new ipaddr.IPv4(address.toByteArray().slice(12)));
  }
  return range === 'unicast' && address.match(GLOBAL_UNICAST_V6);
}

/**
 * Whether an IP address (v4 or v6, as a URL's host or a resolver gives it) is one a webhook must
 * not reach: anything but a public unicast address (see {@link isPublicV6}). Anything that is not
 * an address at all is refused too.
 */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  const parsed = ipaddr.parse(address);
  return parsed.kind() === 'ipv4'
    ? !isPublicV4(parsed as ipaddr.IPv4)
    : !isPublicV6(parsed as ipaddr.IPv6);
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
