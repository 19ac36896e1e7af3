import { builder } from './builder.js';
import './events.js';
import './insight.js';
import './products.js';
import './session-configs.js';
import './session-state.js';
import './sessions.js';

/** The whole GraphQL schema: each imported file adds its domain's types and operations. */
export const schema = builder.toSchema({ sortSchema: true });
