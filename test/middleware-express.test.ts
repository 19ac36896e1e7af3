// The express adapter (session-service/client/express) against a real server and a real app.
import { middlewareSuite } from './support/middleware-suite.js';

middlewareSuite('express');
