import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with a fixed key, for values kept at rest (session data, the successor pair of a
 * spent refresh token). The associated data binds a ciphertext to its row, so one row's
 * ciphertext cannot be pasted into another.
 */
export class SealedBox {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new Error('SealedBox needs a 32-byte key');
    this.#key = Buffer.from(key);
  }

  /** Derives a box from input keying material with HKDF-SHA256. */
  static derive(ikm: Uint8Array | string, salt: string, info: string): SealedBox {
    return new SealedBox(new Uint8Array(hkdfSync('sha256', ikm, salt, info, 32)));
  }

  seal(plaintext: string, associatedData: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** Returns the plaintext, or throws when the ciphertext was altered or sealed elsewhere. */
  open(sealed: string, associatedData: string): string {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 1 + IV_BYTES + TAG_BYTES || raw[0] !== VERSION) {
      throw new Error('sealed value is malformed');
    }
    const iv = raw.subarray(1, 1 + IV_BYTES);
    const tag = raw.subarray(raw.length - TAG_BYTES);
    const body = raw.subarray(1 + IV_BYTES, raw.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv);
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  }
}
