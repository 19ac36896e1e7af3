import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { WebhookSettings } from '../domain/webhooks/settings.js';
import { hostOf, isBlockedAddress } from '../domain/webhooks/url-policy.js';

/** Bytes of a response body read (then the connection is dropped): receivers' bodies are noise. */
export const RESPONSE_BODY_LIMIT = 4_096;

/** Why an attempt failed, as a bounded label (metrics) and words (the attempt log). */
export type FailureReason = 'timeout' | 'address_refused' | 'connection' | 'http_status';

/**
 * How one attempt went, as the attempt log and the metrics record it: `succeeded` on a 2xx only;
 * `responseCode` null when no answer came; `latencyMs` from the call to the answer or the failure.
 */
export interface SendResult {
  readonly succeeded: boolean;
  readonly responseCode: number | null;
  readonly latencyMs: number;
  readonly reason: FailureReason | null;
  /** A few words, never the body nor the URL: `HTTP 500`, `timeout after 10000 ms`. */
  readonly error: string | null;
}

class AddressRefused extends Error {}

/**
 * A DNS lookup that refuses blocked addresses (unless allowed) and hands the connection only
 * the addresses it checked: the socket connects to what was checked, so a second resolution
 * (DNS rebinding) cannot slip another address in.
 */
function checkedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 4);
      const usable = allowPrivate
        ? addresses
        : addresses.filter((a) => !isBlockedAddress(a.address));
      if (usable.length === 0 || usable.length !== addresses.length) {
        return callback(new AddressRefused('address refused'), '', 4);
      }
      const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
      const matching = wanted === 0 ? usable : usable.filter((a) => a.family === wanted);
      if (matching.length === 0) return callback(new AddressRefused('no address'), '', 4);
      if (options.all) {
        (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, matching);
      } else callback(null, matching[0]!.address, matching[0]!.family);
    });
  };
}

/**
 * POSTs one webhook: no redirect followed (a 3xx is a failure), at most `timeoutMs` for the
 * whole exchange, at most {@link RESPONSE_BODY_LIMIT} bytes of the answer read. Succeeds on 2xx.
 */
export function sendWebhook(
  urlText: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  settings: Pick<WebhookSettings, 'allowPrivateUrls' | 'timeoutMs'>,
): Promise<SendResult> {
  const startedAt = performance.now();
  const elapsed = () => Math.round((performance.now() - startedAt) * 10) / 10;
  const fail = (reason: FailureReason, error: string, responseCode: number | null = null) => ({
    succeeded: false,
    responseCode,
    latencyMs: elapsed(),
    reason,
    error,
  });
  return new Promise<SendResult>((resolve) => {
    let url: URL;
    try {
      url = new URL(urlText);
    } catch {
      resolve(fail('connection', 'invalid URL'));
      return;
    }
    const host = hostOf(url);
    if (isIP(host) !== 0 && !settings.allowPrivateUrls && isBlockedAddress(host)) {
      resolve(fail('address_refused', 'address refused'));
      return;
    }
    let settled = false;
    const settle = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, {
      method: 'POST',
      agent: false,
      lookup: checkedLookup(settings.allowPrivateUrls),
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'session-service-webhooks/1',
      },
    });
    const timer = setTimeout(() => {
      settle(fail('timeout', `timeout after ${settings.timeoutMs} ms`));
      request.destroy();
    }, settings.timeoutMs);
    request.on('error', (error: Error & { code?: string }) => {
      if (error instanceof AddressRefused) settle(fail('address_refused', error.message));
      else settle(fail('connection', `connection failed${error.code ? ` (${error.code})` : ''}`));
    });
    request.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      let read = 0;
      const done = () => {
        if (status >= 200 && status < 300) {
          settle({
            succeeded: true,
            responseCode: status,
            latencyMs: elapsed(),
            reason: null,
            error: null,
          });
        } else {
          const note = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
          settle(fail('http_status', `HTTP ${status}${note}`, status));
        }
        request.destroy();
      };
      response.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read >= RESPONSE_BODY_LIMIT) done();
      });
      response.on('end', done);
      response.on('error', done);
    });
    request.end(body);
  });
}
