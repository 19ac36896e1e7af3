/**
 * "Does its config still accept this session?", written once: as a SQL fragment (for the
 * statements that decide without a read: start's insert and the refresh from a snapshot) and as
 * its TypeScript twin over the config row read with the session (verify, the one-statement and
 * the locked refresh). test/config-accepts.test.ts evaluates both on the same rows and checks
 * they agree.
 *
 * A session belongs to its config, not to a string: the config accepts it while the config is
 * live (not deleted), still has the session's tag (a rename gives the tag away for good), and is
 * product-wide or the session's env's. A config that later takes the tag never accepts it.
 */
import { sql, type SQL } from 'drizzle-orm';
import { sessionConfigs, sessions } from '../../../db/schema.js';

/** A config's columns (or values), as SQL. */
export interface ConfigColumns {
  readonly tag: unknown;
  readonly env: unknown;
  readonly deletedAt: unknown;
}

/** The session's tag and env (columns, or the values a session about to be written will have). */
export interface SessionColumns {
  readonly tag: unknown;
  readonly env: unknown;
}

/** The rule in SQL: never null (a config missing from an outer join accepts nothing). */
export const configAcceptsSql = (config: ConfigColumns, session: SessionColumns): SQL =>
  sql`coalesce(${config.tag} = ${session.tag} and ${config.deletedAt} is null
    and (${config.env} is null or ${config.env} = ${session.env}), false)`;

/** The rule over the joined `session_configs` and `sessions` rows. */
export const configAcceptsSession: SQL = configAcceptsSql(sessionConfigs, sessions);

/** The config columns the twin reads, as read with the session (null: no config row). */
export interface ConfigOfSession {
  readonly tag: string;
  readonly env: string | null;
  readonly deletedAt: Date | null;
}

/** What a refresh or verify reads of a session's config, to select beside the session. */
export const configOfSession = {
  tag: sessionConfigs.tag,
  env: sessionConfigs.env,
  deletedAt: sessionConfigs.deletedAt,
};

/** The rule in TypeScript, over the config row read with the session. */
export function configAccepts(
  config: ConfigOfSession | null | undefined,
  session: { readonly tag: string; readonly env: string },
): boolean {
  return (
    config != null &&
    config.tag === session.tag &&
    config.deletedAt === null &&
    (config.env === null || config.env === session.env)
  );
}
