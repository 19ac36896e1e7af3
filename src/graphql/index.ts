import { builder } from './builder.js';
import './events.js';
import './insight.js';
import './products.js';
import './session-configs.js';
import './session-state.js';
import './sessions/index.js';
import './verifier.js';
import './webhooks.js';
import './session-controls.js';
import { applyRateClasses } from './rate-classes.js';

/**
 * The whole GraphQL schema: each imported file adds its domain's types and operations, and
 * every operation is counted against its rate class.
 */
export const schema = applyRateClasses(builder.toSchema({ sortSchema: true }));
