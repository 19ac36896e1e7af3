import { setImmediate as nextTurn } from 'node:timers/promises';
import type { SessionEventRow } from '../db/schema.js';
import type { Scope } from '../domain/callers.js';
import { badInput } from '../domain/errors.js';
import { checkWholeNumber } from '../domain/validation.js';
import {
  DEFAULT_SNAPSHOT_PAGE,
  DEFAULT_VERIFIER_HORIZONS,
  MAX_SNAPSHOT_PAGE,
  MAX_VERIFIER_TAGS,
  checkVerifierTags,
  verifierEntriesOf,
  verifierKeySet,
  verifierSnapshotPage,
  verifierStateOf,
  type VerifierEntry as VerifierEntryShape,
  type VerifierNotBefore as VerifierNotBeforeShape,
  type VerifierKey as VerifierKeyShape,
  type VerifierKeySet as VerifierKeySetShape,
  type VerifierSnapshotPage,
} from '../domain/verifier.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { scopeArgs, scopeOf } from './scope.js';
import { notBeforeFields } from './session-controls.js';
import { describedEnum, dateTimeField, nullableDateTimeField } from './fields.js';

/**
 * Heartbeats: once a second by default, and at most that often (each is a read shared by the
 * feeds of the same scope and tags); a verifier's `maxStalenessMs` should be a few of them.
 */
const HEARTBEAT_MS = { default: 1_000, min: 1_000, max: 30_000 } as const;
/** How soon a heartbeat is tried again when committed events still wait for their id. */
const PENDING_RETRY_MS = 50;
/** Feed events whose token horizons are read in one query. */
const FEED_BATCH = 200;

const VerifierEntryState = describedEnum(
  'VerifierEntryState',
  'Why a local verifier must not judge a session’s tokens from the tokens alone.',
  {
    REVOKED: 'Revoked: its tokens are SESSION_REVOKED.',
    EXPIRED: 'Ended by the sweep: its tokens are TOKEN_EXPIRED.',
    CHANGED:
      'Its data or expiry changed at `changedAt`: tokens minted before then are left to the server.',
  },
);

interface JwkShape {
  readonly kty: string;
  readonly kid: string;
  readonly alg: string;
  readonly k?: string;
  readonly crv?: string;
  readonly x?: string;
  readonly use?: string;
}

const EncryptionJwk = builder.objectRef<JwkShape>('EncryptionJwk').implement({
  description: 'A symmetric JWK (RFC 7517): pass it to jose’s importJWK as it is.',
  fields: (t) => ({
    kty: t.exposeString('kty', { description: 'Always `oct`.' }),
    k: t.string({ description: 'The key, base64url.', resolve: (j) => j.k ?? '' }),
    alg: t.exposeString('alg', { description: 'Always `A256KW`.' }),
    kid: t.exposeString('kid', { description: 'The key id.' }),
  }),
});

const VerificationJwk = builder.objectRef<JwkShape>('VerificationJwk').implement({
  description: 'A public JWK (RFC 7517, RFC 8037): pass it to jose’s importJWK as it is.',
  fields: (t) => ({
    kty: t.exposeString('kty', { description: 'Always `OKP`.' }),
    crv: t.string({ description: 'Always `Ed25519`.', resolve: (j) => j.crv ?? '' }),
    x: t.string({ description: 'The public key, base64url.', resolve: (j) => j.x ?? '' }),
    alg: t.exposeString('alg', { description: 'Always `EdDSA`.' }),
    use: t.string({ description: 'Always `sig`.', resolve: (j) => j.use ?? 'sig' }),
    kid: t.exposeString('kid', { description: 'The key id.' }),
  }),
});

const VerifierKey = builder.objectRef<VerifierKeyShape>('VerifierKey').implement({
  description:
    'What opens and checks one tag’s tokens under one key id. It cannot make a token: the signing key’s private half stays on the server.',
  fields: (t) => ({
    tag: t.exposeString('tag', { description: 'The session type.' }),
    kid: t.exposeString('kid', { description: 'The key id (TOKEN_KEY_IDS).' }),
    current: t.exposeBoolean('current', { description: 'New tokens are minted under this kid.' }),
    encryptionKey: t.field({
      type: EncryptionJwk,
      description:
        'The JWK (`oct`, A256KW) that opens the tag’s tokens. Keep it as secret as the key.',
      resolve: (k) => k.encryptionKey as unknown as JwkShape,
    }),
    verificationKey: t.field({
      type: VerificationJwk,
      description: 'The JWK (`OKP`, Ed25519, EdDSA) of the public key the claims are signed with.',
      resolve: (k) => k.verificationKey as unknown as JwkShape,
    }),
  }),
});

const VerifierKeySet = builder.objectRef<VerifierKeySetShape>('VerifierKeySet').implement({
  description: 'What a local verifier needs to open and check tokens of some tags.',
  fields: (t) => ({
    issuer: t.exposeString('issuer', { description: 'The tokens’ `iss`.' }),
    audience: t.exposeString('audience', { description: 'The tokens’ `aud` (product and env).' }),
    clockToleranceSeconds: t.exposeInt('clockToleranceSeconds', {
      description: 'The skew the server accepts on a token’s own expiry.',
    }),
    maxTokenAgeSeconds: t.exposeInt('maxTokenAgeSeconds', {
      description:
        'Tokens issued longer ago are left to the server (the sweep may have deleted what would refuse them).',
    }),
    keys: t.field({
      type: [VerifierKey],
      description: 'One per tag and key id in service.',
      complexity: { field: 1, multiplier: MAX_VERIFIER_TAGS * 4 },
      resolve: (s) => [...s.keys],
    }),
  }),
});

const VerifierEntry = builder.objectRef<VerifierEntryShape>('VerifierEntry').implement({
  description: 'A session a local verifier must refuse, or leave to the server.',
  fields: (t) => ({
    sessionId: t.exposeID('sessionId', { description: 'The session.' }),
    tag: t.exposeString('tag', { description: 'Its type.' }),
    state: t.field({
      type: VerifierEntryState,
      description: 'What to answer for its tokens.',
      resolve: (e) => e.state,
    }),
    tokensValidUntil: dateTimeField(
      t,
      'tokensValidUntil',
      'No token of the session is valid after this: forget the entry then.',
    ),
    changedAt: nullableDateTimeField(
      t,
      'changedAt',
      'CHANGED: when its data or expiry last changed.',
    ),
  }),
});

const VerifierSnapshot = builder.objectRef<VerifierSnapshotPage>('VerifierSnapshot').implement({
  description:
    'One page of the sessions of some tags whose tokens may still be unexpired and that a local verifier must refuse or leave to the server.',
  fields: (t) => ({
    position: t.id({
      nullable: true,
      description:
        'The newest event id when the page was read (null: none yet). Follow `verifierFeed` after the FIRST page’s position: nothing is missed.',
      resolve: (p) => (p.position === null ? null : String(p.position)),
    }),
    entries: t.field({
      type: [VerifierEntry],
      description: 'Ordered by session id.',
      complexity: { field: 1, multiplier: 1 },
      resolve: (p) => [...p.entries],
    }),
    endCursor: t.string({
      nullable: true,
      description: 'Pass as `after` for the next page.',
      resolve: (p) => p.endCursor,
    }),
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'Whether more entries follow.' }),
  }),
});

const VerifierNotBefore = builder.objectRef<VerifierNotBeforeShape>('VerifierNotBefore').implement({
  description:
    'A not-before revocation in force: sessions started before `notBefore` are SESSION_REVOKED, whether or not their REVOKED event came yet.',
  fields: (t) => notBeforeFields(t, 'Sessions started before this instant never verify again.'),
});

/** One message of a verifier's feed: an entry, or a heartbeat. */
interface FeedMessage {
  readonly position: number;
  readonly at: Date;
  readonly entry: VerifierEntryShape | null;
  /** Heartbeats: the not-before watermarks of the tags and the env, read at `at` or later. */
  readonly notBefore: readonly VerifierNotBeforeShape[] | null;
}

const VerifierFeedMessage = builder.objectRef<FeedMessage>('VerifierFeedMessage').implement({
  description:
    'An entry for a local verifier, or (entry null) a heartbeat: every event committed before `at` has been delivered. Resume after `position`.',
  fields: (t) => ({
    position: t.id({
      description:
        'The id of the last event this message accounts for: resubscribe with it as `after` to continue without gap.',
      resolve: (m) => String(m.position),
    }),
    at: dateTimeField(
      t,
      'at',
      'Heartbeat: the server time up to which everything was delivered. Entry: the event’s time.',
    ),
    entry: t.field({
      type: VerifierEntry,
      nullable: true,
      description: 'Null for a heartbeat.',
      resolve: (m) => m.entry,
    }),
    notBefore: t.field({
      type: [VerifierNotBefore],
      nullable: true,
      description:
        'Heartbeat: the not-before revocations in force for the tags and the environment (a session started before one is revoked). Null for an entry.',
      // The tags followed (at most 20) and the environment.
      complexity: { field: 1, multiplier: MAX_VERIFIER_TAGS + 1 },
      resolve: (m) => (m.notBefore === null ? null : [...m.notBefore]),
    }),
  }),
});

/** The arguments every verifier operation takes: the scope and the session types it follows. */
const verifierArgs = {
  ...scopeArgs,
  ...builder.args((t) => ({
    tags: t.stringList({
      required: true,
      description: `The session types to verify (1 to ${MAX_VERIFIER_TAGS}); NOT_FOUND, with the tag in \`extensions.tag\`, for one that no session config of the environment has (a deleted config’s tag still names it).`,
    }),
  })),
};

/** The tags and scope of a verifier's call: 1 to 20 tags the caller may use. */
async function verifierScope(
  ctx: Context,
  args: { tags: readonly string[]; product?: string | null; env?: string | null },
): Promise<{ scope: Scope; tags: string[] }> {
  const scope = await scopeOf(ctx, args);
  const tags = await checkVerifierTags(ctx.services.db, scope, args.tags);
  return { scope, tags };
}

builder.queryFields((t) => ({
  verifierKeys: t.field({
    type: VerifierKeySet,
    description:
      'Key material for a local verifier (the client’s `createLocalVerifier`): per tag and key id in service, the key that opens tokens and the public key that checks who made them. Secret key (or admin) only.',
    args: verifierArgs,
    resolve: async (_root, args, ctx) => {
      const { scope, tags } = await verifierScope(ctx, args);
      return verifierKeySet(
        ctx.services.keyring,
        scope,
        tags,
        ctx.services.verifierHorizons ?? DEFAULT_VERIFIER_HORIZONS,
      );
    },
  }),
  verifierSnapshot: t.field({
    type: VerifierSnapshot,
    description:
      'What a local verifier syncs before following `verifierFeed`: the revoked, ended or changed sessions of some tags whose tokens may still be unexpired, by pages.',
    complexity: (args) => ({
      field: 1,
      multiplier: Math.min(Math.max(args.first ?? DEFAULT_SNAPSHOT_PAGE, 1), MAX_SNAPSHOT_PAGE),
    }),
    args: {
      ...verifierArgs,
      first: t.arg.int({
        description: `Page size, 1 to ${MAX_SNAPSHOT_PAGE} (default ${DEFAULT_SNAPSHOT_PAGE}).`,
      }),
      after: t.arg.string({ description: 'The previous page’s `endCursor`.' }),
    },
    resolve: async (_root, args, ctx) => {
      const { scope, tags } = await verifierScope(ctx, args);
      return verifierSnapshotPage(ctx.services.db, scope, tags, args);
    },
  }),
}));

function parsePosition(after: string | number): number {
  const text = String(after);
  if (!/^\d{1,15}$/.test(text)) throw badInput('after', 'expected an event id or a position');
  return Number(text);
}

type Raced<T> = { kind: 'event'; result: IteratorResult<T> } | { kind: 'tick' };

/**
 * The feed of one verifier: entries for its tags after `after`, and heartbeats. A heartbeat is
 * sent only once every event committed before it was taken from the bus (its position reached
 * the newest id read from the table), so a heartbeat proves the view is current: when the bus or
 * the database stalls, heartbeats stop, and the verifier's staleness grows.
 */
async function* verifierFeed(
  ctx: Context,
  scope: Scope,
  tags: readonly string[],
  after: number,
  heartbeatMs: number,
  inner: AsyncIterableIterator<SessionEventRow>,
): AsyncGenerator<FeedMessage> {
  const wanted = new Set(tags);
  let position = after;
  let pending: Promise<IteratorResult<SessionEventRow>> | undefined;
  /**
   * The newest id in the table when the due heartbeat was asked for, the time then, and the
   * not-before watermarks read after it.
   */
  let due: { latest: number; at: Date; notBefore: readonly VerifierNotBeforeShape[] } | undefined;
  let nextBeat = Date.now();
  try {
    for (;;) {
      if (due === undefined && Date.now() >= nextBeat) {
        const read = await ctx.services.verifierFeeds.heartbeats.read(scope, tags);
        // Committed events without their id yet: the sequencer numbers them within moments;
        // until then no heartbeat can say that everything before `at` was delivered.
        if (read.pending) nextBeat = Date.now() + PENDING_RETRY_MS;
        else due = read;
      }
      if (due !== undefined && position >= due.latest) {
        yield { position, at: due.at, entry: null, notBefore: due.notBefore };
        due = undefined;
        nextBeat = Date.now() + heartbeatMs;
        continue;
      }
      pending ??= inner.next();
      const wait = due === undefined ? Math.max(0, nextBeat - Date.now()) : heartbeatMs;
      let timer: NodeJS.Timeout | undefined;
      const raced: Raced<SessionEventRow> = await Promise.race([
        pending.then((result) => ({ kind: 'event' as const, result })),
        new Promise<{ kind: 'tick' }>((resolve) => {
          timer = setTimeout(() => resolve({ kind: 'tick' }), wait);
        }),
      ]);
      clearTimeout(timer);
      if (raced.kind === 'tick') continue;
      pending = undefined;
      if (raced.result.done) return;
      // Take what the bus already holds, so token horizons are read once per batch.
      const batch = [raced.result.value];
      while (batch.length < FEED_BATCH) {
        pending = inner.next();
        const more = await Promise.race([
          pending.then((result) => ({ kind: 'event' as const, result })),
          nextTurn().then(() => ({ kind: 'tick' as const })),
        ]);
        if (more.kind === 'tick') break;
        pending = undefined;
        if (more.result.done) break;
        batch.push(more.result.value);
      }
      const mine = batch.filter((e) => wanted.has(e.tag) && verifierStateOf(e.type) !== null);
      const entries = await verifierEntriesOf(ctx.services.db, mine);
      for (const { event, entry } of entries) {
        yield { position: event.seq ?? position, at: event.at, entry, notBefore: null };
      }
      position = Math.max(position, ...batch.map((e) => e.seq ?? 0));
    }
  } finally {
    await inner.return?.();
  }
}

builder.subscriptionFields((t) => ({
  verifierFeed: t.field({
    type: VerifierFeedMessage,
    description:
      'What a local verifier follows after its snapshot: an entry for each revocation, end or change of a session of its tags, in commit order, and a heartbeat every `heartbeatMs` once everything committed before it was delivered.',
    args: {
      ...verifierArgs,
      after: t.arg.id({
        required: true,
        description:
          'The snapshot’s first position (0 when it had none), or the last `position` received.',
      }),
      heartbeatMs: t.arg.int({
        description: `Milliseconds between heartbeats, ${HEARTBEAT_MS.min} to ${HEARTBEAT_MS.max} (default ${HEARTBEAT_MS.default}).`,
      }),
    },
    subscribe: async (_root, args, ctx) => {
      const heartbeatMs = checkWholeNumber(
        'heartbeatMs',
        args.heartbeatMs ?? HEARTBEAT_MS.default,
        HEARTBEAT_MS,
        `expected whole milliseconds from ${HEARTBEAT_MS.min} to ${HEARTBEAT_MS.max}`,
      );
      const after = parsePosition(args.after);
      const { scope, tags } = await verifierScope(ctx, args);
      const caller = await ctx.caller();
      const release = ctx.services.verifierFeeds.open(
        caller.kind === 'secret' ? caller.keyId : caller.kind,
      );
      let inner: AsyncIterableIterator<SessionEventRow>;
      try {
        inner = await ctx.services.events.subscribe(
          { productId: scope.productId, env: scope.env },
          {
            filter: {},
            after,
            keyId: caller.kind === 'secret' ? caller.keyId : caller.kind,
            ready: ctx.subscriptionTransport?.ready,
            onSlow: ctx.subscriptionTransport?.onSlow,
          },
        );
      } catch (error) {
        release();
        throw error;
      }
      const feed = verifierFeed(ctx, scope, tags, after, heartbeatMs, inner);
      // Ending the subscription ends the bus's at once: the generator may be waiting (for an
      // event, or for the heartbeat's read), not at a yield where its own return would run.
      const stop = async () => {
        release();
        await inner.return?.();
        return feed.return(undefined);
      };
      return {
        [Symbol.asyncIterator]() {
          return this;
        },
        next: async () => {
          try {
            const result = await feed.next();
            if (result.done) release();
            return result;
          } catch (error) {
            release();
            throw error;
          }
        },
        return: stop,
        throw: async (error: unknown) => {
          release();
          await inner.return?.();
          return feed.throw(error);
        },
      } satisfies AsyncIterableIterator<FeedMessage>;
    },
    resolve: (message) => message,
  }),
}));
