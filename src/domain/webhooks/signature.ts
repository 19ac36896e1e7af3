import { createHmac, randomBytes } from 'node:crypto';

/** The prefix of signing secrets, as Standard Webhooks writes them. */
export const SECRET_PREFIX = 'whsec_';
/** Random bytes in a signing secret: 256 bits. */
const SECRET_BYTES = 32;

/** A new signing secret: `whsec_` and 32 random bytes, base64 (what `standardwebhooks` reads). */
export function newWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/**
 * The `webhook-signature` header of Standard Webhooks: `v1,<base64 HMAC-SHA256>` of
 * `<id>.<timestamp>.<body>` under each secret, space-separated (two during a rotation's overlap).
 */
export function signatureHeader(
  secrets: readonly string[],
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const signed = `${messageId}.${timestampSeconds}.${body}`;
  return secrets
    .map((secret) => {
      const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
      return `v1,${createHmac('sha256', key).update(signed, 'utf8').digest('base64')}`;
    })
    .join(' ');
}
