/**
 * The activity log and its read models, one file per job: the operations (operations.ts), the
 * log writer and hourly rollups (write.ts), users (users.ts), a user's session history
 * (history.ts), the log itself (log.ts), the dashboard (dashboard.ts) and pruning (prune.ts).
 */
export { EXPIRE_OPERATION, OPERATIONS, type Operation } from './operations.js';
export {
  addToRollups,
  hourOf,
  writeActivity,
  type ActivityRecord,
  type RollupIncrement,
} from './write.js';
export type { Page } from '../paging.js';
export {
  activeSessionsByIdentifier,
  findSessionUser,
  listSessionUsers,
  recordUserSeen,
  type UserOrder,
} from './users.js';
export { sessionHistory } from './history.js';
export { listActivity, type ActivityFilter } from './log.js';
export {
  sessionDashboard,
  type Dashboard,
  type DashboardPeriod,
  type Grouping,
} from './dashboard.js';
export { pruneActivity } from './prune.js';
