/**
 * The rules the session controls add to verify and refresh, in one place: the not-before
 * watermark (bulk revocation takes effect at once) and freshness (`maxAge`); their errors are in
 * ../errors.ts.
 */
import { sql } from 'drizzle-orm';
import { sessions } from '../../db/schema.js';
import { checkWholeNumber } from '../validation.js';
import type { Device } from './types.js';

/** The tag of a watermark that covers every session of the env. */
export const WHOLE_ENV = '*';

/**
 * The not-before watermark over a session row (its tag's or its env's, the later): a scalar
 * subquery by primary key, so verify keeps its one query per batch.
 */
export const notBeforeOfSession = sql<Date | null>`(
  select max(w.not_before) from session_revocation_watermarks w
  where w.product_id = ${sessions.productId} and w.env = ${sessions.env}
    and w.tag in (${sessions.tag}, ${WHOLE_ENV}))`.mapWith(sessions.createdAt);

/** Started before its watermark: revoked, even before the batches mark the row. */
export function revokedBeforeWatermark(row: {
  readonly createdAt: Date;
  readonly notBefore: Date | null;
}): boolean {
  return row.notBefore !== null && row.createdAt < row.notBefore;
}

/** Largest `maxAge` accepted: the longest a session can live. */
export const MAX_AGE_LIMIT_SECONDS = 400 * 24 * 3600;

/** Checks a `maxAge` argument (whole seconds, 0 to 400 days); null when absent. */
export function checkMaxAge(maxAge: number | null | undefined): number | null {
  if (maxAge == null) return null;
  return checkWholeNumber(
    'maxAge',
    maxAge,
    { min: 0, max: MAX_AGE_LIMIT_SECONDS },
    `expected whole seconds from 0 to ${MAX_AGE_LIMIT_SECONDS}`,
  );
}

/** How many earlier devices a session keeps. */
export const DEVICE_HISTORY_LIMIT = 5;

/**
 * The SET clause that moves a session to the device of a refresh: a part the refresh does not
 * know stays as it was (a refresh without a device keeps the session's), and the device it
 * replaces goes first into the bounded history, unless nothing of it was known.
 */
export function deviceMove(device: Device) {
  const userAgent = sql`coalesce(${device.userAgent ?? null}::text, ${sessions.userAgent})`;
  const ip = sql`coalesce(${device.ip ?? null}::text, ${sessions.ip})`;
  return {
    userAgent,
    ip,
    deviceHistory: sql`case
      when (${sessions.userAgent}, ${sessions.ip}) is distinct from (${userAgent}, ${ip})
        and (${sessions.userAgent} is not null or ${sessions.ip} is not null)
      then jsonb_path_query_array(
        jsonb_build_array(jsonb_build_object('userAgent', ${sessions.userAgent}, 'ip', ${sessions.ip},
                                             'until', now()))
          || ${sessions.deviceHistory},
        ${`$[0 to ${DEVICE_HISTORY_LIMIT - 1}]`}::jsonpath)
      else ${sessions.deviceHistory} end`,
  };
}
