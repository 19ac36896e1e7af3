/**
 * A Hono app (on Node.js, with @hono/node-server) whose pages are protected by the session
 * service: sign in, a protected page, sign out, sign out everywhere. The tokens live in two
 * HttpOnly cookies (`__Host-session`, `__Host-refresh`) that page scripts cannot read;
 * `@session-service/client` sets, checks, refreshes and clears them. See README.md.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { html } from 'hono/html';
import { HTTPException } from 'hono/http-exception';
import { createSessionClient } from '@session-service/client';
import { createSessionAuth } from '@session-service/client/server';
import { applyResult, sessionMiddleware, type SessionEnv } from '@session-service/client/hono';

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

const app = new Hono<SessionEnv>();
// `html` escapes what it interpolates (the user id, for one).
const page = (title: string, body: unknown) =>
  html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title}</title>
      </head>
      <body>
        <h1>${title}</h1>
        ${body}
      </body>
    </html>`;

app.get('/sign-in', (c) => {
  const note = c.req.query('signedOut') ? html`<p role="status">You are signed out.</p>` : '';
  return c.html(
    page(
      'Sign in',
      html`${note}
        <form method="post" action="/sign-in">
          <label
            >User id <input name="userId" required maxlength="64" autocomplete="username"
          /></label>
          <button>Sign in</button>
        </form>`,
    ),
  );
});

app.post('/sign-in', bodyLimit({ maxSize: 4 * 1024 }), async (c) => {
  const form = await c.req.parseBody();
  const userId = typeof form.userId === 'string' ? form.userId.trim() : '';
  if (!/^[\w.@-]{1,64}$/.test(userId)) {
    return c.html(
      page('Sign in', html`<p role="alert">Enter a user id (letters, digits, . _ @ -).</p>`),
      400,
    );
  }
  // A real app checks the user's password (or passkey, or SSO answer) here, before starting a
  // session: this example trusts the user id it is given.
  const result = await auth.signIn(c.req.raw, { data: { userId } });
  return applyResult(c, result) ?? c.redirect('/', 303);
});

// The protected page. `required: false` lets the page redirect to the sign-in form instead of
// answering 401 JSON; an expired session token is refreshed here (the new cookies are sent).
app.get('/', sessionMiddleware(auth, { required: false }), (c) => {
  const session = c.get('session');
  if (!session) return c.redirect('/sign-in', 303);
  return c.html(
    page(
      'Your account',
      html`<dl>
          <dt>User</dt>
          <dd id="user">${session.identifier}</dd>
          <dt>Session</dt>
          <dd id="session">${session.sessionId}</dd>
          <dt>Session token expires</dt>
          <dd id="expires"><time>${session.expiresAt}</time></dd>
        </dl>
        <form method="post" action="/sign-out"><button>Sign out</button></form>
        <form method="post" action="/sign-out-everywhere">
          <button>Sign out everywhere</button>
        </form>`,
    ),
  );
});

// An API route: 401 `{ "error": { "code": ... } }` without a valid session.
app.get('/api/me', sessionMiddleware(auth), (c) => {
  const session = c.get('session')!;
  return c.json({
    userId: session.identifier,
    sessionId: session.sessionId,
    expiresAt: session.expiresAt,
  });
});

app.post('/sign-out', async (c) => {
  // Revokes this session and clears the cookies.
  return applyResult(c, await auth.signOut(c.req.raw)) ?? c.redirect('/sign-in?signedOut=1', 303);
});

app.post('/sign-out-everywhere', async (c) => {
  // Revokes every session of this user (all devices) and clears this browser's cookies.
  const result = await auth.signOutEverywhere(c.req.raw);
  return applyResult(c, result) ?? c.redirect('/sign-in?signedOut=1', 303);
});

// An error (the session service unreachable): a short page, no details. Hono's own (a form
// too large: 413) keep their answer.
app.onError((error, c) => {
  if (error instanceof HTTPException) return error.getResponse();
  console.error('request failed:', error.message);
  return c.html(page('Something went wrong', html`<p role="alert">Try again.</p>`), 503);
});

const server = serve({ fetch: app.fetch, port, hostname: host }, (info) => {
  console.log(`Example app at http://localhost:${info.port}/`);
});

const stop = () => {
  server.close();
  void Promise.all([auth.close(), client.close()]);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
