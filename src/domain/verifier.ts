import { and, inArray, sql } from 'drizzle-orm';
import { type Database, rowsOf } from '../db/client.js';
import { sessionRevocationWatermarks, type SessionEventRow } from '../db/schema.js';
import type { Keyring } from '../tokens/keyring.js';
import { CLOCK_TOLERANCE_SECONDS, ISSUER, audienceOf } from '../tokens/session-token.js';
import { ownedBy, type Scope } from './callers.js';
import { checkTagConfig, readTagConfigs } from './configs.js';
import { badInput, ServiceError } from './errors.js';
import { latestEventId } from './events.js';
import { WHOLE_ENV } from './sessions/controls-rules.js';
import { TAG_PATTERN, UUID_PATTERN, checkWholeNumber } from './validation.js';

/** Most tags one local verifier follows. */
export const MAX_VERIFIER_TAGS = 20;
/** Largest page of the snapshot of sessions a local verifier must refuse or not judge. */
export const MAX_SNAPSHOT_PAGE = 1_000;
/** The default page, as every paged field of the API (the client asks for the largest). */
export const DEFAULT_SNAPSHOT_PAGE = 20;

/** One tag's key material for one key id: the encryption key and the public signing key. */
export interface VerifierKey {
  readonly tag: string;
  readonly kid: string;
  /** New tokens are minted under this kid. */
  readonly current: boolean;
  /** JWK (`oct`, A256KW): opens the tag's tokens. */
  readonly encryptionKey: Record<string, unknown>;
  /** JWK (`OKP`, Ed25519, EdDSA): checks who made them. Its private half never leaves the server. */
  readonly verificationKey: Record<string, unknown>;
}

/**
 * What a local verifier needs to check tokens itself ({@link verifierKeySet}): the claims it must
 * find (`iss`, `aud`), the clock skew it may accept, the oldest token it may judge, and the keys.
 */
export interface VerifierKeySet {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  /**
   * Tokens issued longer ago than this are left to the server: the sweep may have deleted their
   * ended session (SESSION_RETENTION_DAYS) or its events (EVENT_RETENTION_DAYS) by then.
   */
  readonly maxTokenAgeSeconds: number;
  readonly keys: readonly VerifierKey[];
}

/** The sweep's horizons, which bound what a snapshot and a feed can still show. */
export interface VerifierHorizons {
  readonly sessionRetentionSeconds: number;
  readonly eventRetentionSeconds: number;
}

/** The configuration's defaults (SESSION_RETENTION_DAYS 7, EVENT_RETENTION_DAYS 30). */
export const DEFAULT_VERIFIER_HORIZONS: VerifierHorizons = {
  sessionRetentionSeconds: 7 * 86_400,
  eventRetentionSeconds: 30 * 86_400,
};

/**
 * Checks a verifier's list of tags: 1 to 20 distinct tags the scope may use, in one read
 * (NOT_FOUND with `extensions.tag` for the first that names no config of the scope, live or
 * deleted; FORBIDDEN for another env's).
 */
export async function checkVerifierTags(
  db: Database,
  scope: Scope,
  tags: readonly string[],
): Promise<string[]> {
  const unique = [...new Set(tags)];
  if (unique.length === 0 || unique.length > MAX_VERIFIER_TAGS) {
    throw badInput('tags', `expected 1 to ${MAX_VERIFIER_TAGS} tags`);
  }
  for (const [i, tag] of unique.entries()) {
    if (!TAG_PATTERN.test(tag)) throw badInput(`tags[${i}]`, 'is not a session config tag');
  }
  const found = await readTagConfigs(db, scope, unique);
  for (const tag of unique) checkTagConfig(found.get(tag), scope, tag);
  return unique;
}

/**
 * What a local verifier needs to open and check the tokens of some tags: for each tag and each
 * key id in service (TOKEN_KEY_IDS), the encryption key and the public half of the signing key.
 * Nothing here can sign a token: the private keys stay on the server.
 */
export async function verifierKeySet(
  keyring: Keyring,
  scope: Scope,
  tags: readonly string[],
  horizons: VerifierHorizons,
): Promise<VerifierKeySet> {
  const keys: VerifierKey[] = [];
  for (const tag of tags) {
    for (const kid of keyring.keyIds) {
      const material = await keyring.signedKeys(scope.productId, scope.env, tag, kid);
      keys.push({
        tag,
        kid,
        current: kid === keyring.currentKid,
        encryptionKey: { ...material.verifierJwks.encryption },
        verificationKey: { ...material.verifierJwks.verification },
      });
    }
  }
  return {
    issuer: ISSUER,
    audience: audienceOf(scope),
    clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
    maxTokenAgeSeconds: Math.min(horizons.sessionRetentionSeconds, horizons.eventRetentionSeconds),
    keys,
  };
}

/** Why a local verifier must not call a session's tokens valid from the tokens alone. */
export type VerifierEntryState = 'REVOKED' | 'EXPIRED' | 'CHANGED';

/** A session a local verifier must refuse (revoked, ended) or leave to the server (changed). */
export interface VerifierEntry {
  readonly sessionId: string;
  readonly tag: string;
  readonly state: VerifierEntryState;
  /** No token of the session is valid after this: the entry can be forgotten then. */
  readonly tokensValidUntil: Date;
  /** CHANGED: when its data or expiry last changed; tokens minted before it go to the server. */
  readonly changedAt: Date | null;
}

/**
 * One page of {@link verifierSnapshotPage}: the sessions a local verifier must not judge from a
 * token alone, by session id.
 */
export interface VerifierSnapshotPage {
  /**
   * The newest event id when this page was read (null: no event yet). Follow the feed after the
   * first page's position: whatever changed after it is in the feed.
   */
  readonly position: number | null;
  readonly entries: readonly VerifierEntry[];
  /** Pass as `after` for the next page. */
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

interface EntryRow {
  id: string;
  tag: string;
  state: VerifierEntryState;
  valid_until_ms: number;
  changed_ms: number | null;
}

const toEntry = (r: EntryRow): VerifierEntry => ({
  sessionId: r.id,
  tag: r.tag,
  state: r.state,
  tokensValidUntil: new Date(Number(r.valid_until_ms)),
  changedAt: r.changed_ms === null ? null : new Date(Number(r.changed_ms)),
});

/**
 * One page (by session id) of the sessions of some tags whose tokens may still be unexpired and
 * that a local verifier must not judge from a token alone: revoked, ended, or whose data or
 * expiry changed. The position is read before the rows, so a change committed after it is in
 * the feed that follows it, and one committed before it is in the rows.
 */
export async function verifierSnapshotPage(
  db: Database,
  scope: Scope,
  tags: readonly string[],
  args: { after?: string | null; first?: number | null },
): Promise<VerifierSnapshotPage> {
  const first = checkWholeNumber(
    'first',
    args.first ?? DEFAULT_SNAPSHOT_PAGE,
    { min: 1, max: MAX_SNAPSHOT_PAGE },
    `expected a whole number from 1 to ${MAX_SNAPSHOT_PAGE}`,
  );
  if (args.after != null && !UUID_PATTERN.test(args.after)) {
    throw badInput('after', 'is not a cursor this API returned');
  }
  const position = await latestEventId(db, scope);
  const tagList = sql.join(
    tags.map((t) => sql`${t}`),
    sql`, `,
  );
  const after = args.after == null ? sql`` : sql`and s.id > ${args.after.toLowerCase()}::uuid`;
  const rows = rowsOf<EntryRow>(
    await db.execute(sql`
      select s.id, s.tag,
             case when s.revoked_at is not null then 'REVOKED'
                  when s.expired_at is not null then 'EXPIRED'
                  else 'CHANGED' end as state,
             (extract(epoch from s.refresh_expires_at) * 1000)::float8 as valid_until_ms,
             (extract(epoch from ch.at) * 1000)::float8 as changed_ms
      from sessions s
      left join lateral (
        select max(e.at) as at from session_events e
        where e.session_id = s.id and e.type in ('DATA_UPDATED', 'EXTENDED')
      ) ch on true
      where s.product_id = ${scope.productId} and s.env = ${scope.env} and s.tag in (${tagList})
        -- Tokens pass their own expiry check up to the clock tolerance after it.
        and s.refresh_expires_at > now() - make_interval(secs => ${CLOCK_TOLERANCE_SECONDS})
        ${after}
        and (s.revoked_at is not null or s.expired_at is not null or ch.at is not null)
      order by s.id
      limit ${first + 1}`),
  );
  const page = rows.slice(0, first).map(toEntry);
  return {
    position: position === 0 ? null : position,
    entries: page,
    endCursor: page.length > 0 ? page[page.length - 1]!.sessionId : (args.after ?? null),
    hasNextPage: rows.length > first,
  };
}

/** A not-before watermark: sessions of `tag` (null: of the whole env) started before it are revoked. */
export interface VerifierNotBefore {
  readonly tag: string | null;
  readonly notBefore: Date;
}

/**
 * The not-before watermarks that cover some tags: each tag's and the env's. Verify refuses a
 * session started before them at once, before the batches mark its row and write its REVOKED
 * event; so a local verifier must know them too (each feed heartbeat carries them). They only
 * ever move later, so one read late still refuses rightly.
 */
export async function verifierNotBefore(
  db: Database,
  scope: Scope,
  tags: readonly string[],
): Promise<VerifierNotBefore[]> {
  const rows = await db
    .select({
      tag: sessionRevocationWatermarks.tag,
      notBefore: sessionRevocationWatermarks.notBefore,
    })
    .from(sessionRevocationWatermarks)
    .where(
      and(
        ownedBy(sessionRevocationWatermarks, scope),
        inArray(sessionRevocationWatermarks.tag, [...tags, WHOLE_ENV]),
      ),
    );
  return rows.map((r) => ({ tag: r.tag === WHOLE_ENV ? null : r.tag, notBefore: r.notBefore }));
}

/** What a feed event means to a local verifier (null: nothing, it only advances the position). */
export function verifierStateOf(type: SessionEventRow['type']): VerifierEntryState | null {
  switch (type) {
    case 'REVOKED':
      return 'REVOKED';
    case 'EXPIRED':
      return 'EXPIRED';
    case 'DATA_UPDATED':
    case 'EXTENDED':
      return 'CHANGED';
    default:
      return null;
  }
}

/**
 * The entries of a batch of feed events, in their order, with each session's token horizon read
 * in one query. A session already deleted is left out: its tokens are older than the sweep's
 * retention, which a verifier leaves to the server anyway.
 */
export async function verifierEntriesOf(
  db: Database,
  events: readonly SessionEventRow[],
): Promise<Array<{ event: SessionEventRow; entry: VerifierEntry }>> {
  const relevant = events.filter((e) => verifierStateOf(e.type) !== null);
  if (relevant.length === 0) return [];
  const ids = [...new Set(relevant.map((e) => e.sessionId))];
  const idList = sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  );
  const rows = rowsOf<{ id: string; valid_until_ms: number }>(
    await db.execute(sql`
      select id, (extract(epoch from refresh_expires_at) * 1000)::float8 as valid_until_ms
      from sessions where id in (${idList})`),
  );
  const until = new Map(rows.map((r) => [r.id, new Date(Number(r.valid_until_ms))]));
  const out: Array<{ event: SessionEventRow; entry: VerifierEntry }> = [];
  for (const event of relevant) {
    const tokensValidUntil = until.get(event.sessionId);
    if (!tokensValidUntil) continue;
    const state = verifierStateOf(event.type)!;
    out.push({
      event,
      entry: {
        sessionId: event.sessionId,
        tag: event.tag,
        state,
        tokensValidUntil,
        changedAt: state === 'CHANGED' ? event.at : null,
      },
    });
  }
  return out;
}

/** What a feed heartbeat is built from, read once for every feed of the same scope and tags. */
export interface HeartbeatRead {
  /** When the read was asked for: everything committed before it is in what was read. */
  readonly at: Date;
  /** The scope's newest event id. */
  readonly latest: number;
  /**
   * Whether the scope had committed events not yet numbered: the sequencer has not reached them,
   * so no heartbeat may claim that everything committed before `at` was delivered.
   */
  readonly pending: boolean;
  readonly notBefore: readonly VerifierNotBefore[];
}

/** How long a heartbeat read waits for the sequencer to number what was committed before it. */
const NUMBERING_WAIT_MS = 2_000;
/** Between two looks at whether those events have their ids yet. */
const NUMBERING_POLL_MS = 20;

/**
 * Reads what a heartbeat needs without sweeping (the sequencer's sweep takes a database-wide
 * lock; a heartbeat only waits for it): the newest id, the not-before watermarks, and whether
 * events committed before the read still wait for their id. Only those events are waited for
 * (the sequencer numbers them within moments; at most {@link NUMBERING_WAIT_MS}, then the read
 * says `pending`): events committed after the read do not concern its `at`, so a product that
 * writes without pause still gets its heartbeats.
 */
export async function readHeartbeat(
  db: Database,
  scope: Scope,
  tags: readonly string[],
): Promise<HeartbeatRead> {
  const at = new Date();
  const first = rowsOf<{ latest: string | number | null; unnumbered: string | number | null }>(
    await db.execute(sql`select
      (select max(seq) from session_events
        where product_id = ${scope.productId} and env = ${scope.env}) as latest,
      (select max(id) from session_events
        where seq is null and product_id = ${scope.productId} and env = ${scope.env}) as unnumbered`),
  )[0];
  const notBefore = await verifierNotBefore(db, scope, tags);
  let latest = Number(first?.latest ?? 0);
  const unnumbered = first?.unnumbered ?? null;
  if (unnumbered !== null) {
    const until = performance.now() + NUMBERING_WAIT_MS;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, NUMBERING_POLL_MS));
      const again = rowsOf<{ latest: string | number | null; pending: boolean }>(
        await db.execute(sql`select
          (select max(seq) from session_events
            where product_id = ${scope.productId} and env = ${scope.env}) as latest,
          exists (select 1 from session_events
            where seq is null and product_id = ${scope.productId} and env = ${scope.env}
              and id <= ${String(unnumbered)}::bigint) as pending`),
      )[0];
      // Numbered now, in commit order: the newest id covers them.
      if (again?.pending !== true) {
        latest = Number(again?.latest ?? latest);
        break;
      }
      if (performance.now() >= until) return { at, latest, pending: true, notBefore };
    }
  }
  return { at, latest, pending: false, notBefore };
}

/** How long one heartbeat read serves every feed that asks for the same scope and tags. */
const SHARED_READ_MS = 250;

/**
 * One heartbeat read per scope and tags at a time, fanned out to every feed that shares them: a
 * read asked for within {@link SHARED_READ_MS} of another (or while it runs) gets its answer.
 * An older `at` only makes a heartbeat claim less, never more, so sharing is always correct.
 */
export class SharedHeartbeatReads {
  readonly #db: Database;
  readonly #reads = new Map<string, Promise<HeartbeatRead>>();

  constructor(db: Database) {
    this.#db = db;
  }

  read(scope: Scope, tags: readonly string[]): Promise<HeartbeatRead> {
    const key = `${scope.productId}\u0000${scope.env}\u0000${[...tags].sort().join('\u0000')}`;
    const shared = this.#reads.get(key);
    if (shared) return shared;
    const read = readHeartbeat(this.#db, scope, tags);
    this.#reads.set(key, read);
    const forget = () => {
      const timer = setTimeout(() => {
        if (this.#reads.get(key) === read) this.#reads.delete(key);
      }, SHARED_READ_MS);
      timer.unref();
    };
    read.then(forget, () => {
      if (this.#reads.get(key) === read) this.#reads.delete(key);
    });
    return read;
  }

  /** Reads held now (at most one per scope and tags of the open feeds). */
  get size(): number {
    return this.#reads.size;
  }
}

/** MAX_VERIFIER_FEEDS_PER_KEY's default: one feed per verifying process of a backend. */
export const DEFAULT_MAX_VERIFIER_FEEDS_PER_KEY = 64;

/** The verifier feeds open on this instance: their shared heartbeat reads, and a cap per key. */
export class VerifierFeeds {
  readonly heartbeats: SharedHeartbeatReads;
  readonly #maxPerKey: number;
  readonly #open = new Map<string, number>();

  constructor(db: Database, maxPerKey: number = DEFAULT_MAX_VERIFIER_FEEDS_PER_KEY) {
    this.heartbeats = new SharedHeartbeatReads(db);
    this.#maxPerKey = maxPerKey;
  }

  /** Counts a feed of `keyId`; LIMIT_EXCEEDED when the key has its most. Returns its release. */
  open(keyId: string): () => void {
    const open = this.#open.get(keyId) ?? 0;
    if (open >= this.#maxPerKey) {
      throw new ServiceError(
        'LIMIT_EXCEEDED',
        `This key has ${open} open verifier feeds on this instance, the most allowed (MAX_VERIFIER_FEEDS_PER_KEY); end one first.`,
        undefined,
        { limit: this.#maxPerKey },
      );
    }
    this.#open.set(keyId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(keyId) ?? 1) - 1;
      if (left <= 0) this.#open.delete(keyId);
      else this.#open.set(keyId, left);
    };
  }
}
