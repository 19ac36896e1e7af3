import {
  GraphQLError,
  TypeInfo,
  getNamedType,
  isListType,
  isNonNullType,
  validate,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type {
  DocumentNode,
  ExecutionArgs,
  GraphQLField,
  GraphQLOutputType,
  GraphQLSchema,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { createComplexityRule, type FieldComplexityValue } from '@pothos/plugin-complexity';
import { MAX_DASHBOARD_RANGE_DAYS } from '../domain/activity/dashboard.js';
import { JSON_LIMITS } from '../domain/data-schema.js';
import { MAX_ENVS_PER_PRODUCT } from '../domain/keys.js';
import { DEFAULT_PAGE_SIZE, MAX_CURSOR_LENGTH, MAX_PAGE_SIZE } from '../domain/paging.js';
import { MAX_SELECTOR_LENGTH } from '../domain/selector.js';
import { MAX_IDENTIFIER_LENGTH } from '../domain/sessions/shared.js';
import { MAX_USER_AGENT_LENGTH } from '../domain/sessions/start.js';
import { MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS } from '../domain/validation.js';
import type { Context } from './context.js';

/**
 * The cost model (docs/operations/security.md): what one request may make the server build, counted
 * before anything runs by @pothos/plugin-complexity from the document and its variables.
 *
 * One unit stands for at most {@link COST.unitBytes} bytes of response: a scalar field (name,
 * punctuation and a value of up to ~100 bytes: ids, dates, numbers, enums, tags) is 1; longer
 * text and JSON weigh their largest stored size in units; a list multiplies what is selected
 * under it by its largest page (the `first` argument, its default or maximum, or the cap on
 * what a product may hold). Every limit is read where it is set: the domain's checks, or the
 * configuration (MAX_CONFIGS_PER_PRODUCT, through the request's services), never restated. So a request within {@link COST.maxCost} answers at most about
 * maxCost × unitBytes bytes (5 MiB): a handful of full pages, never hundreds of MB.
 */
export const COST = {
  unitBytes: 128,
  maxCost: 40_960,
} as const;

/** The most configs a product may hold: this server's MAX_CONFIGS_PER_PRODUCT. */
export const configsCost = (_args: unknown, ctx: Context): FieldComplexityValue => ({
  field: 1,
  multiplier: ctx.services.maxConfigsPerProduct,
});

/** A list of webhook endpoints: as many as an env may have, this server's WEBHOOK_MAX_ENDPOINTS_PER_ENV. */
export const webhookEndpointsCost = (_args: unknown, ctx: Context): FieldComplexityValue => ({
  field: 1,
  multiplier: ctx.services.webhooks.settings.maxEndpointsPerEnv,
});

/** Pages of sessions, users and activity (src/domain/paging.ts). */
export const PAGE = { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE } as const;

/**
 * Lists no stored cap bounds (admin only: products, a product's keys): weighed at a nominal
 * size. The response ceiling (MAX_RESPONSE_BYTES) is their bound.
 */
export const NOMINAL_LIST = { products: 100, apiKeysPerProduct: 20 } as const;

/** Units for a text of at most `chars` UTF-16 characters (3 bytes each at most in UTF-8). */
export const textCost = (chars: number): number =>
  Math.max(1, Math.ceil((chars * 3) / COST.unitBytes));

/** Units for a JSON value of at most `bytes` serialized. */
export const jsonCost = (bytes: number): number => Math.ceil(bytes / COST.unitBytes) + 1;

/** A session config's schema, a session's data or one of its values: up to 16 KiB. */
export const JSON_DATA_COST = jsonCost(Math.max(JSON_LIMITS.schemaBytes, JSON_LIMITS.dataBytes));

/**
 * A session token: a JWE of a signed JWT (issue #15) of the session's claims and data (16 KiB),
 * base64url twice (×16/9), with its headers, key, signature and tag; the largest is about 30 KiB,
 * 32 KiB is above it.
 */
export const TOKEN_COST = jsonCost(32 * 1024);

/** The size of a page a `first` argument asks for, as the domain will read it (0 to 100). */
export function pageOf(first: number | null | undefined): number {
  // Out-of-range values are the domain's BAD_USER_INPUT: weigh them as the largest page.
  if (first === null || first === undefined) return PAGE.default;
  return Math.min(Math.max(first, 0), PAGE.max);
}

/** A connection field: everything selected under it is repeated once per item of the page. */
export const pagedCost = (args: { first?: number | null }): FieldComplexityValue => ({
  field: 1,
  multiplier: pageOf(args.first),
});

/** A list whose length its parent field already counted (a connection's edges or nodes). */
export const COUNTED_BY_PARENT: FieldComplexityValue = { field: 1, multiplier: 1 };

/**
 * The default for a field with no cost of its own: 1 for a scalar or an object, JSON weighed
 * as the largest JSON the API stores, and a list as a page of the largest size it could be
 * (fail safe: a new list field without a bound weighs a lot rather than nothing).
 */
export function defaultFieldCost<Context>(
  _args: unknown,
  _ctx: Context,
  field: GraphQLField<unknown, Context, Record<string, unknown>>,
): FieldComplexityValue {
  const json = getNamedType(field.type).name === 'JSON';
  const list = isList(field.type);
  if (list) return { field: json ? JSON_DATA_COST : 1, multiplier: UNBOUNDED_LIST };
  return json ? JSON_DATA_COST : 1;
}

/** The multiplier of a list without a declared bound: large enough to refuse it selected twice. */
export const UNBOUNDED_LIST = 1_000;

function isList(type: GraphQLOutputType): boolean {
  return isNonNullType(type) ? isListType(type.ofType) : isListType(type);
}

/**
 * The cost of the operation a request runs (every operation of the document when it names
 * none), or null when the document or its variables are not valid: execution reports that.
 * Worked out once per document, operation and value of the variables the cost reads
 * ({@link costVariables}); a verify's token, say, is not one of them, so the same query costs one
 * walk, not one per request. `costs` is one app's: a field's cost may read the app's fixed
 * limits from the context's services (never anything of the request), so a cost worked out for
 * one request holds for every other of the same app.
 */
export function operationCost(
  costs: CostCache,
  context: Context,
  schema: GraphQLSchema,
  document: DocumentNode,
  variableValues: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
): number | null {
  let known = costs.get(document);
  if (!known || known.schema !== schema) {
    known = { schema, names: costVariables(schema, document), byKey: new Map() };
    costs.set(document, known);
  }
  const values = variableValues ?? {};
  // An absent variable (its default applies) and a null one are told apart.
  // A document whose cost reads no variable (a verify, say) needs no serialization of them.
  const key =
    known.names.length === 0
      ? (operationName ?? '')
      : `${operationName ?? ''}\u0000${JSON.stringify(
          known.names.map((name) => (Object.hasOwn(values, name) ? [values[name]] : [])),
        )}`;
  const cached = known.byKey.get(key);
  if (cached !== undefined) return cached;
  const cost = walkCost(context, schema, document, values, operationName);
  if (key.length <= MAX_COST_KEY_CHARS) {
    if (known.byKey.size >= COSTS_PER_DOCUMENT) known.byKey.clear();
    known.byKey.set(key, cost);
  }
  return cost;
}

/** Costs worked out, per parsed document (Yoga's parser cache hands out the same object). */
export type CostCache = WeakMap<
  DocumentNode,
  { schema: GraphQLSchema; names: string[]; byKey: Map<string, number | null> }
>;
const COSTS_PER_DOCUMENT = 64;
const MAX_COST_KEY_CHARS = 1_024;

/**
 * The variables a document's cost can depend on: those in the arguments of fields whose cost is
 * a function of their arguments (pages, dashboard ranges). {@link defaultFieldCost} reads none.
 * The cost model reads no directive (`@skip`, `@include` weigh as if included).
 */
export function costVariables(schema: GraphQLSchema, document: DocumentNode): string[] {
  const names = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const complexity = typeInfo.getFieldDef()?.extensions?.complexity;
        if (typeof complexity !== 'function' || complexity === defaultFieldCost) return;
        for (const argument of node.arguments ?? []) {
          visit(argument.value, { Variable: (variable) => void names.add(variable.name.value) });
        }
      },
    }),
  );
  return [...names].sort();
}

function walkCost(
  context: Context,
  schema: GraphQLSchema,
  document: DocumentNode,
  variableValues: Record<string, unknown>,
  operationName: string | null | undefined,
): number | null {
  let cost: number | null = null;
  const rule = createComplexityRule({
    context,
    variableValues,
    operationName: operationName ?? undefined,
    validate: (result) => {
      cost = Math.max(cost ?? 0, result.complexity);
    },
  });
  validate(schema, document, [rule]);
  return cost;
}

/** The error a request over the budget gets, before anything runs. */
export function costLimitError(cost: number): GraphQLError {
  return new GraphQLError(
    `This request would cost ${cost} units, more than the ${COST.maxCost} a request may: ask for smaller pages (first), fewer fields or fewer aliases, or split it.`,
    { extensions: { code: 'LIMIT_EXCEEDED', cost, maxCost: COST.maxCost } },
  );
}

/** Units of a name (product, API key, session config), at its longest: {@link MAX_NAME_CHARS}. */
export const NAME_COST = textCost(MAX_NAME_CHARS);
/** Units of a session config's description, at its longest: {@link MAX_DESCRIPTION_CHARS}. */
export const DESCRIPTION_COST = textCost(MAX_DESCRIPTION_CHARS);
/** Units of a session config's selector, at its longest: {@link MAX_SELECTOR_LENGTH}. */
export const SELECTOR_COST = textCost(MAX_SELECTOR_LENGTH);
/** Units of a stored User-Agent, at its longest: {@link MAX_USER_AGENT_LENGTH}. */
export const USER_AGENT_COST = textCost(MAX_USER_AGENT_LENGTH);
/** Units of an identifier (a user), at its longest: {@link MAX_IDENTIFIER_LENGTH}. */
export const IDENTIFIER_COST = textCost(MAX_IDENTIFIER_LENGTH);
/** Cursors: base64url of a few values, an identifier at most (decoders read MAX_CURSOR_LENGTH). */
export const CURSOR_COST = Math.ceil(MAX_CURSOR_LENGTH / COST.unitBytes);

/**
 * A dashboard's periods weigh what they answer (14 units a period's figures) over at most the
 * longest range the domain allows; its scan of the tag's stored sessions weighs a fifth of the
 * limit whatever the range, so one request holds at most four dashboards.
 */
const DASHBOARD = {
  maxRangeDays: MAX_DASHBOARD_RANGE_DAYS,
  periodCost: 14,
  scanCost: COST.maxCost / 5,
} as const;
const PERIOD_MS = {
  HOUR: 3_600_000,
  DAY: 86_400_000,
  WEEK: 7 * 86_400_000,
  MONTH: 28 * 86_400_000,
};

/**
 * A dashboard: its totals, and up to one period of figures per hour, day, week or month of its
 * range (a range too long is the domain's BAD_USER_INPUT: weighed at the longest).
 */
export function dashboardCost(args: {
  from?: Date | null;
  to?: Date | null;
  groupBy?: string | null;
}): number {
  const from = args.from?.getTime() ?? NaN;
  const to = args.to?.getTime() ?? NaN;
  const unit = PERIOD_MS[(args.groupBy ?? 'HOUR') as keyof typeof PERIOD_MS] ?? PERIOD_MS.HOUR;
  const range = Number.isFinite(to - from)
    ? Math.min(Math.max(to - from, 0), DASHBOARD.maxRangeDays * 86_400_000)
    : 0;
  const periods = Math.ceil(range / unit) + 1;
  return DASHBOARD.scanCost + periods * DASHBOARD.periodCost;
}

/** A product's environments: as many as it may have. */
export const ENVS_COST: FieldComplexityValue = { field: 1, multiplier: MAX_ENVS_PER_PRODUCT };

/**
 * Refuses, before anything executes, an operation that costs more than {@link COST.maxCost}:
 * over HTTP, SSE and WebSocket alike (every path goes through execute or subscribe). It runs at
 * execution, with the request's variables, not in validation: Yoga caches validation by document,
 * and a `first: $first` weighs what the variables say.
 */
export function useCostLimit(): Plugin {
  const costs: CostCache = new WeakMap();
  const check = (
    args: ExecutionArgs,
    refuse: (result: { errors: GraphQLError[] }) => void,
  ): void => {
    const cost = operationCost(
      costs,
      args.contextValue as Context,
      args.schema,
      args.document,
      args.variableValues,
      args.operationName,
    );
    if (cost !== null && cost > COST.maxCost) refuse({ errors: [costLimitError(cost)] });
  };
  return {
    onExecute: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
    onSubscribe: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
  };
}
