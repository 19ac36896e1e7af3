/**
 * An Express app whose pages are protected by the session service: sign in, a protected page,
 * sign out, sign out everywhere. The tokens live in two HttpOnly cookies (`__Host-session`,
 * `__Host-refresh`) that page scripts cannot read; `@session-service/client` sets, checks,
 * refreshes and clears them. See README.md for how to run it.
 */
import { createServer } from 'node:http';
import express from 'express';
import { createSessionClient } from '@session-service/client';
import { createSessionAuth } from '@session-service/client/server';
import {
  applyResult,
  requestOf,
  sessionMiddleware,
  sessionOf,
} from '@session-service/client/express';

const url = process.env.SESSION_SERVICE_URL ?? 'http://localhost:4000/graphql';
const key = process.env.SESSION_SERVICE_KEY; // a secret key, sk_<env>_...: keep it on the server
const tag = process.env.SESSION_TYPE ?? 'user-session'; // the session type's tag
const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? 'localhost';
if (!key) {
  console.error('Set SESSION_SERVICE_KEY to a secret key of the session service (sk_...).');
  process.exit(1);
}

const client = createSessionClient({ url, key });
// Verifies tokens in this process (the local verifier: revocations are pushed to it), refreshes
// expired ones from the refresh cookie, and checks the Origin of form posts (CSRF).
const auth = createSessionAuth({ client, tag });

/** The session data this app keeps in its sessions: small, it travels in the token. */
interface SessionData {
  userId: string;
}

const app = express();
app.use(express.urlencoded({ extended: false, limit: '4kb' }));

const escape = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;

app.get('/sign-in', (req, res) => {
  const note = req.query.signedOut ? '<p role="status">You are signed out.</p>' : '';
  res.send(
    page(
      'Sign in',
      `${note}<form method="post" action="/sign-in">
  <label>User id <input name="userId" required maxlength="64" autocomplete="username"></label>
  <button>Sign in</button>
</form>`,
    ),
  );
});

app.post('/sign-in', async (req, res) => {
  const userId = typeof req.body?.userId === 'string' ? req.body.userId.trim() : '';
  if (!/^[\w.@-]{1,64}$/.test(userId)) {
    res
      .status(400)
      .send(page('Sign in', '<p role="alert">Enter a user id (letters, digits, . _ @ -).</p>'));
    return;
  }
  // A real app checks the user's password (or passkey, or SSO answer) here, before starting a
  // session: this example trusts the user id it is given.
  const result = await auth.signIn<SessionData>(requestOf(req), { data: { userId } });
  if (applyResult(res, result)) res.redirect(303, '/');
});

// The protected page. `required: false` lets the page redirect to the sign-in form instead of
// answering 401 JSON; an expired session token is refreshed here (the new cookies are sent).
app.get('/', sessionMiddleware(auth, { required: false }), (_req, res) => {
  const session = sessionOf<SessionData>(res);
  if (!session) {
    res.redirect(303, '/sign-in');
    return;
  }
  res.send(
    page(
      'Your account',
      `<dl>
  <dt>User</dt><dd id="user">${escape(session.identifier)}</dd>
  <dt>Session</dt><dd id="session">${escape(session.sessionId)}</dd>
  <dt>Session token expires</dt><dd id="expires"><time>${escape(session.expiresAt)}</time></dd>
</dl>
<form method="post" action="/sign-out"><button>Sign out</button></form>
<form method="post" action="/sign-out-everywhere"><button>Sign out everywhere</button></form>`,
    ),
  );
});

// An API route: 401 `{ "error": { "code": ... } }` without a valid session.
app.get('/api/me', sessionMiddleware(auth), (_req, res) => {
  const session = sessionOf<SessionData>(res)!;
  res.json({
    userId: session.identifier,
    sessionId: session.sessionId,
    expiresAt: session.expiresAt,
  });
});

app.post('/sign-out', async (req, res) => {
  // Revokes this session and clears the cookies.
  if (applyResult(res, await auth.signOut(requestOf(req))))
    res.redirect(303, '/sign-in?signedOut=1');
});

app.post('/sign-out-everywhere', async (req, res) => {
  // Revokes every session of this user (all devices) and clears this browser's cookies.
  const result = await auth.signOutEverywhere(requestOf(req));
  if (applyResult(res, result)) res.redirect(303, '/sign-in?signedOut=1');
});

// An error (the session service unreachable, a form too large): a short page, no details.
const onError: express.ErrorRequestHandler = (error, _req, res, _next) => {
  console.error('request failed:', error instanceof Error ? error.message : error);
  const status = Number.isInteger(error?.status) && error.status < 500 ? error.status : 503;
  res.status(status).send(page('Something went wrong', '<p role="alert">Try again.</p>'));
};
app.use(onError);

const server = createServer(app);
server.listen(port, host, () => {
  const address = server.address();
  const listening = typeof address === 'object' && address ? address.port : port;
  console.log(`Example app at http://localhost:${listening}/`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void Promise.all([auth.close(), client.close()]);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
