// The hono adapter (session-service/client/hono) against a real server and a real app.
import { middlewareSuite } from './support/middleware-suite.js';

middlewareSuite('hono');
