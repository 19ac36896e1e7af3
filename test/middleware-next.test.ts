// The next adapter (session-service/client/next) against a real server and a real app.
import { middlewareSuite } from './support/middleware-suite.js';

middlewareSuite('next');
