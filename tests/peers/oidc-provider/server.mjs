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
//   authchain-pkjwt-rs256                          private_key_jwt, RS256, key tests/oidc/keys/client-rsa.pem
//                                                  (kid: its RFC 7638 thumbprint)
//   authchain-pkjwt-es256                          private_key_jwt, ES256, key tests/oidc/keys/client-p256.pem
//                                                  (kid `client-p256`)
//   authchain-secret-jwt / secret-jwt-secret-of-at-least-32-bytes   client_secret_jwt (HS256)
// Users (password in brackets):
//   alice [alice-password]  groups admins, staff   alice@example.org
//   bob   [bob-password]    group staff            bob@example.org
//   carol [carol-password]  no group               carol@example.org
// Users shaped like the tokens of other providers (password `<name>-password`; see
// PROVIDER_USERS): entra-ada (tid, oid, group ids), entra-overage (`_claim_names` /
// `_claim_sources` for groups, no groups; its userinfo has them), entra-hasgroups (`hasgroups: true`),
// okta-olga (groups), kc-kim (`realm_access.roles`), google-gina (`hd` example.org),
// google-gail (`hd` other.example), google-gus (no `hd`: a consumer account).
// A second provider, issuer http://127.0.0.1:<port>/<TENANT>/v2.0 (an Entra-style
// tenant issuer), serves the same clients and users under that path.
// RP-initiated logout at /session/end (a confirmation form posting to
// /session/end/confirm); back-channel logout with env OIDC_BACKCHANNEL_LOGOUT_URI.
// Interaction: GET /interaction/<uid> shows a form; POST /interaction/<uid>/login
// with username/password grants login and consent at once (a wrong password answers 401).
// Dynamic client registration is open (POST /reg, no initial access token).
// Admin: POST /__rotate generates a new RS256 signing key (new kid); the old key is
// no longer published. GET /__kid answers the current kid.
// An odd provider on purpose: it also publishes a secp256k1 key and advertises
// ES256K in `id_token_signing_alg_values_supported` beside RS256 (ID tokens stay
// RS256, the clients' default), so a relying party that does not know ES256K must
// still read the discovery document and the JWKS.

import { createServer } from 'node:http';
import { createHash, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
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

// Entra-style tenant of the second provider (a made-up id).
export const TENANT = '3f2d0c6e-5b1a-4c1e-9d7a-1b2c3d4e5f60';
const TENANT_PREFIX = `/${TENANT}/v2.0`;

const USERS = {
  alice: { password: 'alice-password', name: 'Alice Liddell', email: 'alice@example.org', groups: ['admins', 'staff'] },
  bob: { password: 'bob-password', name: 'Bob Builder', email: 'bob@example.org', groups: ['staff'] },
  carol: { password: 'carol-password', name: 'Carol Danvers', email: 'carol@example.org', groups: [] },
};

// Users whose claims take the shape of another provider's tokens.
const PROVIDER_USERS = {
  'entra-ada': {
    name: 'Ada Lovelace', email: 'ada@contoso.example', preferred_username: 'ada@contoso.example',
    tid: TENANT, oid: '0b6f3a0e-8c1d-4f61-a1a4-5d2b9f0e7c11',
    groups: ['6f1f9a3c-0e7d-4d38-9a51-2b8e4c7d1a01', 'a2c4e6f8-1b3d-4f5a-8c7e-9d0b1a2c3e4f'],
  },
  'entra-overage': {
    name: 'Otto Overage', email: 'otto@contoso.example', preferred_username: 'otto@contoso.example',
    tid: TENANT, oid: '7d1c2b3a-4e5f-4a6b-8c9d-0e1f2a3b4c5d',
    _claim_names: { groups: 'src1' },
    _claim_sources: {
      src1: { endpoint: 'https://graph.microsoft.com/v1.0/users/7d1c2b3a-4e5f-4a6b-8c9d-0e1f2a3b4c5d/getMemberObjects' },
    },
    // What userinfo answers instead (the groups the ID token had no room for).
    userinfo: { groups: ['6f1f9a3c-0e7d-4d38-9a51-2b8e4c7d1a01'], _claim_names: undefined, _claim_sources: undefined },
  },
  'entra-hasgroups': {
    name: 'Hazel Groups', email: 'hazel@contoso.example', preferred_username: 'hazel@contoso.example',
    tid: TENANT, oid: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e', hasgroups: true,
  },
  'okta-olga': { name: 'Olga Okta', email: 'olga@okta.example', groups: ['Everyone', 'Engineering'] },
  'kc-kim': {
    name: 'Kim Keycloak', email: 'kim@keycloak.example',
    realm_access: { roles: ['offline_access', 'app-admin'] },
    resource_access: { intranet: { roles: ['editor'] } },
  },
  'google-gina': { name: 'Gina Google', email: 'gina@example.org', hd: 'example.org' },
  'google-gail': { name: 'Gail Google', email: 'gail@other.example', hd: 'other.example' },
  'google-gus': { name: 'Gus Gmail', email: 'gus@gmail.example' },
};
for (const [id, claims] of Object.entries(PROVIDER_USERS)) {
  USERS[id] = { password: `${id}-password`, ...claims };
}

// The public JWK of a client's private key (tests/oidc/keys), with `kid` (default:
// the RFC 7638 thumbprint, as authchain computes it when no `client_key_id` is set).
function clientJwk(file, alg, kid) {
  const pem = readFileSync(new URL(`../../oidc/keys/${file}`, import.meta.url));
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: 'RSA', n: jwk.n } : { crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y };
  const thumbprint = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
  return { ...jwk, alg, use: 'sig', kid: kid ?? thumbprint };
}
const CLIENT_RSA_JWK = clientJwk('client-rsa.pem', 'RS256');
const CLIENT_P256_JWK = clientJwk('client-p256.pem', 'ES256', 'client-p256');

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
let tenantProvider;
let tenantHandler;

function makeProvider(issuer, prefix = '') {
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
      ...[
        ['authchain-pkjwt-rs256', { token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'RS256', jwks: { keys: [CLIENT_RSA_JWK] } }],
        ['authchain-pkjwt-es256', { token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [CLIENT_P256_JWK] } }],
        ['authchain-secret-jwt', { token_endpoint_auth_method: 'client_secret_jwt', token_endpoint_auth_signing_alg: 'HS256', client_secret: 'secret-jwt-secret-of-at-least-32-bytes' }],
      ].map(([client_id, auth]) => ({
        client_id,
        ...auth,
        redirect_uris: REDIRECT_URIS,
        grant_types: ['authorization_code'],
        response_types: ['code'],
      })),
    ],
    jwks: { keys: [signingKey, es256kKey] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'ES256K'] },
    cookies: { keys: ['authchain-test-cookie-key'] },
    pkce: { methods: ['S256'], required: () => true },
    conformIdTokenClaims: false,
    scopes: ['openid', 'profile', 'email', 'groups', 'roles', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'tid', 'oid'],
      email: ['email', 'email_verified', 'hd'],
      groups: ['groups', 'hasgroups'],
      roles: ['realm_access', 'resource_access'],
    },
    // Open dynamic registration (POST /reg): the tests register clients whose jwks_uri they serve.
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const user = USERS[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims(use) {
          const { password, userinfo, ...claims } = user;
          const answer = { sub: id, preferred_username: id, email_verified: true, ...claims };
          return use === 'userinfo' ? { ...answer, ...userinfo } : answer;
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
  if (url.pathname === TENANT_PREFIX || url.pathname.startsWith(`${TENANT_PREFIX}/`)) {
    // The tenant provider, mounted at its issuer's path (as express would: the
    // provider reads its mount path from originalUrl).
    req.originalUrl = req.url;
    req.url = req.url.slice(TENANT_PREFIX.length) || '/';
    await serve(req, res, tenantProvider, tenantHandler, TENANT_PREFIX);
    return;
  }
  await serve(req, res, provider, handler, '');
}

// The login form and everything else of one provider (`op`, mounted at `prefix`).
async function serve(req, res, op, opHandler, prefix) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const provider = op;
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
    res.end(`<form method="post" action="${prefix}/interaction/${details.uid}/login">
<input name="username"><input name="password" type="password"><button>Sign in</button></form>`);
    return;
  }
  opHandler(req, res);
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
  tenantProvider = makeProvider(`http://127.0.0.1:${actual}${TENANT_PREFIX}`, TENANT_PREFIX);
  tenantHandler = tenantProvider.callback();
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
