/** The operations the activity log and the metrics know. */
export const OPERATIONS = [
  'start',
  'verify',
  'refresh',
  'revoke',
  'revoke_all',
  'update_data',
  'merge_data',
  'set_value',
  'remove_value',
  'clear_data',
  'touch',
  'extend',
  'set_expiration',
  'revoke_started_before',
  'mark_fresh',
  'set_device_name',
] as const;
/**
 * One of {@link OPERATIONS}: the `operation` of an activity log entry and the label of its metrics.
 */
export type Operation = (typeof OPERATIONS)[number];

/** What the sweep counts: sessions that ran out (not an API operation, so not in the log). */
export const EXPIRE_OPERATION = 'expire';
