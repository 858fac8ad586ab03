// A throwaway OpenID Connect provider (npm `oidc-provider`, a certified OP) for
// authchain's tests, on 127.0.0.1 only.
//
//   node server.mjs [--port PORT] [--owner-pid PID]
//
// PORT 0 (the default; or env OIDC_PORT) picks a free port. Prints one line
// `OIDC_PORT=<port>` when ready. With --owner-pid the server exits when that
// process is gone.
//
// Clients (redirect URI http://127.0.0.1/callback and those of env
// OIDC_EXTRA_REDIRECT_URIS, PKCE S256 required):
//   authchain-confidential / confidential-secret   client_secret_basic
//   authchain-public                               public (token_endpoint_auth_method none)
// Users (password in brackets):
//   alice [alice-password]  groups admins, staff   alice@example.org
//   bob   [bob-password]    group staff            bob@example.org
//   carol [carol-password]  no group               carol@example.org
// RP-initiated logout at /session/end (a confirmation form posting to
// /session/end/confirm); back-channel logout with env OIDC_BACKCHANNEL_LOGOUT_URI.
// Interaction: GET /interaction/<uid> shows a form; POST /interaction/<uid>/login
// with username/password grants login and consent at once (a wrong password answers 401).
// Admin: POST /__rotate generates a new RS256 signing key (new kid); the old key is
// no longer published. GET /__kid answers the current kid.
// An odd provider on purpose: it also publishes a secp256k1 key and advertises
// ES256K in `id_token_signing_alg_values_supported` beside RS256 (ID tokens stay
// RS256, the clients' default), so a relying party that does not know ES256K must
// still read the discovery document and the JWKS.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(arg('--port') ?? process.env.OIDC_PORT ?? 0);
const ownerPid = Number(arg('--owner-pid') ?? 0);

export const REDIRECT_URI = 'http://127.0.0.1/callback';
// More redirect URIs for both clients (the browser tests' app), comma-separated.
const REDIRECT_URIS = [REDIRECT_URI, ...(process.env.OIDC_EXTRA_REDIRECT_URIS ?? '').split(',').filter(Boolean)];
// Where RP-initiated logout may send the browser back to (env OIDC_POST_LOGOUT_URIS).
const POST_LOGOUT_URIS = (process.env.OIDC_POST_LOGOUT_URIS ?? '').split(',').filter(Boolean);
// Back-channel logout (env OIDC_BACKCHANNEL_LOGOUT_URI): the confidential client's
// backchannel_logout_uri, with backchannel_logout_session_required (its ID tokens
// then carry `sid`, and so do the logout tokens POSTed there when a session ends).
const BACKCHANNEL_LOGOUT_URI = process.env.OIDC_BACKCHANNEL_LOGOUT_URI ?? '';
const backchannel = BACKCHANNEL_LOGOUT_URI
  ? { backchannel_logout_uri: BACKCHANNEL_LOGOUT_URI, backchannel_logout_session_required: true }
  : {};

const USERS = {
  alice: { password: 'alice-password', name: 'Alice Liddell', email: 'alice@example.org', groups: ['admins', 'staff'] },
  bob: { password: 'bob-password', name: 'Bob Builder', email: 'bob@example.org', groups: ['staff'] },
  carol: { password: 'carol-password', name: 'Carol Danvers', email: 'carol@example.org', groups: [] },
};

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let signingKey = newKey();
const es256kKey = (() => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'es256k-1', alg: 'ES256K', use: 'sig' };
})();
let provider;
let handler;

function makeProvider(issuer) {
  const p = new Provider(issuer, {
    clients: [
      {
        client_id: 'authchain-confidential',
        client_secret: 'confidential-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: REDIRECT_URIS,
        post_logout_redirect_uris: POST_LOGOUT_URIS,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        ...backchannel,
      },
      {
        client_id: 'authchain-public',
        token_endpoint_auth_method: 'none',
        redirect_uris: REDIRECT_URIS,
        post_logout_redirect_uris: POST_LOGOUT_URIS,
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [signingKey, es256kKey] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256K'] },
    cookies: { keys: ['authchain-test-cookie-key'] },
    pkce: { methods: ['S256'], required: () => true },
    conformIdTokenClaims: false,
    scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: false }, backchannelLogout: { enabled: true } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const user = USERS[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            name: user.name,
            preferred_username: id,
            email: user.email,
            email_verified: true,
            groups: user.groups,
          };
        },
      };
    },
  });
  p.on('server_error', (ctx, err) => console.error('server_error', err));
  p.on('grant.error', (ctx, err) => console.error('grant.error', err.error_description, err.error_detail ?? ''));
  p.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message));
  return p;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) break;
  }
  return new URLSearchParams(body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'POST' && url.pathname === '/__rotate') {
    signingKey = newKey();
    provider = makeProvider(provider.issuer);
    handler = provider.callback();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: signingKey.kid }));
    return;
  }
  if (req.method === 'GET' && url.pathname === '/__kid') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: signingKey.kid }));
    return;
  }
  const login = url.pathname.match(/^\/interaction\/([^/]+)\/login$/);
  if (req.method === 'POST' && login) {
    const details = await provider.interactionDetails(req, res);
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const user = USERS[username];
    if (!user || user.password !== form.get('password')) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('wrong username or password');
      return;
    }
    const grant = new provider.Grant({ accountId: username, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: username }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const show = url.pathname.match(/^\/interaction\/([^/]+)$/);
  if (req.method === 'GET' && show) {
    const details = await provider.interactionDetails(req, res);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<form method="post" action="/interaction/${details.uid}/login">
<input name="username"><input name="password" type="password"><button>Sign in</button></form>`);
    return;
  }
  handler(req, res);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('error');
  });
});

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  provider = makeProvider(`http://127.0.0.1:${actual}`);
  handler = provider.callback();
  console.log(`OIDC_PORT=${actual}`);
});

if (ownerPid > 0) {
  setInterval(() => {
    try {
      process.kill(ownerPid, 0);
    } catch {
      process.exit(0);
    }
  }, 500).unref();
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
