/** Rows of `db.execute(...)`, whichever driver: the same helper the server uses. */
export { rowsOf } from '../../src/db/client.js';
