// The express adapter (session-service/client/express) against a real server and a real app.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { expect } from 'vitest';
import { createSessionClient, type SessionClient } from 'session-service/client';
import * as ex from 'session-service/client/express';
import { createSessionAuth, type SessionAuth } from 'session-service/client/server';
import { newConfig, newProduct } from './support/fixtures.js';
import { middlewareSuite } from './support/middleware-suite.js';
import { afterAll, beforeAll, describe, it } from './support/test.js';

middlewareSuite('express');

describe('express adapter: the request origin', () => {
  let client: SessionClient;
  let auth: SessionAuth;
  beforeAll(async ({ t, server }) => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    client = createSessionClient({ url: server.url, key: product.secret.dev });
    auth = createSessionAuth({ client, tag, verify: 'server' });
  }, 180_000);
  afterAll(async () => {
    await auth?.close();
    await client?.close();
  });

  /** A sign-in route on a real Express app; `express4` gives it Express 4's `req.host`. */
  const start = async (options: { express4?: boolean; trustProxy?: boolean }) => {
    const app = express();
    if (options.trustProxy) app.set('trust proxy', true);
    if (options.express4) {
      // Express 4's req.host (its req.hostname): X-Forwarded-Host when trusted, else Host,
      // without the port.
      Object.defineProperty(app.request, 'host', {
        configurable: true,
        get(this: express.Request) {
          const trust = this.app.get('trust proxy fn') as (a?: string, i?: number) => boolean;
          let host = this.get('x-forwarded-host');
          if (!host || !trust(this.socket.remoteAddress, 0)) host = this.get('host');
          else host = host.split(',')[0]!.trim();
          if (!host) return undefined;
          const offset = host.startsWith('[') ? host.indexOf(']') + 1 : 0;
          const colon = host.indexOf(':', offset);
          return colon === -1 ? host : host.slice(0, colon);
        },
      });
    }
    app.post('/sign-in', async (req, res) => {
      const result = await auth.signIn(ex.requestOf(req), { data: { userId: 'x' } });
      if (ex.applyResult(res, result)) res.json({ ok: true });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const post = (headers: Record<string, string>) =>
      fetch(`${origin}/sign-in`, { method: 'POST', headers });
    const close = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    return { origin, post, close };
  };

  it('Express 4 (req.host without the port): a same-origin POST on a port passes, another port is refused', async () => {
    const app = await start({ express4: true });
    try {
      expect((await app.post({ origin: app.origin })).status).toBe(200);
      expect((await app.post({ origin: 'http://127.0.0.1' })).status).toBe(403);
      expect((await app.post({ origin: 'http://127.0.0.1:1' })).status).toBe(403);
    } finally {
      await app.close();
    }
  });

  it('X-Forwarded-Host counts only when trust proxy trusts the peer', async () => {
    const proxied = 'http://app.example.test:8443';
    const forwarded = { 'x-forwarded-host': 'app.example.test:8443' };
    for (const express4 of [false, true]) {
      const untrusted = await start({ express4 });
      const trusted = await start({ express4, trustProxy: true });
      try {
        expect((await untrusted.post({ ...forwarded, origin: proxied })).status).toBe(403);
        expect((await untrusted.post({ ...forwarded, origin: untrusted.origin })).status).toBe(200);
        expect((await trusted.post({ ...forwarded, origin: proxied })).status).toBe(200);
        expect((await trusted.post({ ...forwarded, origin: trusted.origin })).status).toBe(403);
      } finally {
        await untrusted.close();
        await trusted.close();
      }
    }
  });
});
