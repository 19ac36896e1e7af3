import { webcrypto } from 'node:crypto';
import type { JWK } from 'jose';

/**
 * The keys of the signed token format (a JWS nested in a JWE) for one product, env, tag and key
 * id. The encryption key is handed to local verifiers with the public half of the signing key;
 * the private half never leaves the server, so holding what a verifier holds does not let anyone
 * make a token that a verifier or the server accepts.
 */
export interface SignedTokenKeys {
  readonly kid: string;
  /** AES-256 key wrapping (A256KW): opens and (for the server) seals the token. */
  readonly encryptionKey: CryptoKey;
  /** Ed25519 private key: signs the claims inside the encryption. Server only. */
  readonly signingKey: CryptoKey;
  /** Ed25519 public key: checks who made the claims. */
  readonly verificationKey: CryptoKey;
  /** What a verifier receives: the encryption key and the public key, as JWKs. */
  readonly verifierJwks: { readonly encryption: JWK; readonly verification: JWK };
}

/** The DER prefix of a PKCS #8 Ed25519 private key; the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Builds the keys from two 32-byte secrets derived by the keyring (an AES key and an Ed25519 seed). */
export async function signedTokenKeys(
  kid: string,
  encryptionBytes: Uint8Array,
  signingSeed: Uint8Array,
): Promise<SignedTokenKeys> {
  const subtle = webcrypto.subtle;
  const encryptionKey = await subtle.importKey('raw', encryptionBytes, 'AES-KW', false, [
    'wrapKey',
    'unwrapKey',
  ]);
  const pkcs8 = Buffer.concat([ED25519_PKCS8_PREFIX, signingSeed]);
  // Extractable only long enough to read the public half; the kept private key is not.
  const exportable = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
  const privateJwk = (await subtle.exportKey('jwk', exportable)) as JWK;
  const signingKey = await subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
  const publicJwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: privateJwk.x! };
  const verificationKey = await subtle.importKey('jwk', publicJwk, { name: 'Ed25519' }, true, [
    'verify',
  ]);
  return {
    kid,
    encryptionKey,
    signingKey,
    verificationKey,
    verifierJwks: {
      encryption: {
        kty: 'oct',
        k: Buffer.from(encryptionBytes).toString('base64url'),
        alg: 'A256KW',
        kid,
      },
      verification: { ...publicJwk, alg: 'EdDSA', kid, use: 'sig' },
    },
  };
}
