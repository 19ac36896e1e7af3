// The fastify adapter (session-service/client/fastify) against a real server and a real app.
import { middlewareSuite } from './support/middleware-suite.js';

middlewareSuite('fastify');
