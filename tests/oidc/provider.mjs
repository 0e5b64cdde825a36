// node-oidc-provider (a certified OpenID provider) for the tests, over HTTPS with
// trustme certificates, plus two protected resources in the same process:
//   /resource/dpop        accepts only DPoP-bound tokens with a valid proof (RFC 9449)
//   /resource/dpop-nonce  the same, and the proof must carry the resource's nonce
//   /resource/mtls        accepts only certificate-bound tokens presented with the
//                         certificate they are bound to (RFC 8705 §3)
//   /test-jwks/<name>     serves <jwksDir>/<name>.json (clients registered by jwks_uri)
//   /test-jwks-cache/<client>?action=expire|refresh
//                         the provider's cached copy of a client's jwks_uri: expire it (as
//                         if its cache time, at least 60 s, had passed) or fetch it now;
//                         answers {fetches: <jwks files served so far, by name>}
//
// Usage: node provider.mjs CONFIG.json; prints "READY <port>" once listening.
// CONFIG: { tls: {cert, key, ca} (file paths), clients: [...client metadata],
//           requireNonce: [client ids], jwksDir }
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';

import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const requireNonce = new Set(config.requireNonce || []);
const PROOF_ALGS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'RS256', 'PS256'];

function peerCertificate(socket) {
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) return undefined;
  return new crypto.X509Certificate(peer.raw);
}

// RFC 4514 order (most specific first) from Node's "O=...\nCN=..." (cert order).
function rfc4514(subject) {
  return subject.split('\n').reverse().join(',');
}

let provider;
const resourceNonce = crypto.randomBytes(16).toString('base64url');
const seenJti = new Set();

function deny(res, status, error, description, scheme, extra = {}) {
  const params = `error="${error}", error_description="${description}"`;
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'WWW-Authenticate': `${scheme} ${params}${scheme === 'DPoP' ? `, algs="${PROOF_ALGS.join(' ')}"` : ''}`,
    ...extra,
  });
  res.end(JSON.stringify({ error, error_description: description }));
}

async function findToken(value) {
  const token = await provider.ClientCredentials.find(value);
  if (!token || token.isExpired) return undefined;
  return token;
}

async function dpopResource(req, res, url, withNonce) {
  const [scheme, value] = (req.headers.authorization || '').split(' ');
  if (scheme !== 'DPoP' || !value) {
    return deny(res, 401, 'invalid_token', 'a DPoP-bound token is required', 'DPoP');
  }
  const token = await findToken(value);
  if (!token || !token.jkt) {
    return deny(res, 401, 'invalid_token', 'unknown or unbound token', 'DPoP');
  }
  const proof = req.headers.dpop;
  if (!proof) return deny(res, 401, 'invalid_dpop_proof', 'no DPoP proof', 'DPoP');
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: PROOF_ALGS,
      maxTokenAge: '300s',
      clockTolerance: '5s',
    }));
  } catch (err) {
    return deny(res, 401, 'invalid_dpop_proof', `proof does not verify: ${err.code}`, 'DPoP');
  }
  const htu = `https://127.0.0.1:${url.port}${url.pathname}`;
  const ath = crypto.hash('sha256', value, 'base64url');
  const problems = [];
  if (payload.htm !== req.method) problems.push('htm mismatch');
  if (payload.htu !== htu) problems.push('htu mismatch');
  if (payload.ath !== ath) problems.push('ath mismatch');
  if (typeof payload.jti !== 'string' || !payload.jti) problems.push('no jti');
  if (Object.keys(protectedHeader.jwk).some((name) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].includes(name))) {
    problems.push('private key member in jwk');
  }
  if (await calculateJwkThumbprint(protectedHeader.jwk) !== token.jkt) {
    problems.push('proof key does not match the token binding');
  }
  if (problems.length) {
    return deny(res, 401, 'invalid_dpop_proof', problems.join(', '), 'DPoP');
  }
  if (withNonce && payload.nonce !== resourceNonce) {
    return deny(res, 401, 'use_dpop_nonce', 'resource server requires nonce in DPoP proof', 'DPoP', {
      'DPoP-Nonce': resourceNonce,
    });
  }
  if (seenJti.has(payload.jti)) {
    return deny(res, 401, 'invalid_dpop_proof', 'DPoP proof replay detected', 'DPoP');
  }
  seenJti.add(payload.jti);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ ok: true, client_id: token.clientId, jkt: token.jkt }));
}

async function mtlsResource(req, res) {
  const [scheme, value] = (req.headers.authorization || '').split(' ');
  if (scheme !== 'Bearer' || !value) {
    return deny(res, 401, 'invalid_token', 'a certificate-bound token is required', 'Bearer');
  }
  const token = await findToken(value);
  const bound = token && token['x5t#S256'];
  if (!bound) return deny(res, 401, 'invalid_token', 'unknown or unbound token', 'Bearer');
  const cert = peerCertificate(req.socket);
  const presented = cert && crypto.hash('sha256', cert.raw, 'base64url');
  if (presented !== bound) {
    return deny(res, 401, 'invalid_token', 'the token is bound to another certificate', 'Bearer');
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ ok: true, client_id: token.clientId, 'x5t#S256': bound }));
}

const jwksFetches = {};

async function jwksCache(res, clientId, action) {
  const client = await provider.Client.find(clientId);
  if (!client) {
    res.writeHead(404);
    return res.end();
  }
  const keystore = client.asymmetricKeyStore;
  if (action === 'expire' || action === 'refresh') keystore.freshUntil = 0;
  if (action === 'refresh') await keystore.refresh();
  res.writeHead(200, { 'Content-Type': 'application/json' });
  return res.end(JSON.stringify({ fetches: jwksFetches }));
}

function jwksFile(res, name) {
  jwksFetches[path.basename(name)] = (jwksFetches[path.basename(name)] || 0) + 1;
  const file = path.join(config.jwksDir || '.', `${path.basename(name)}.json`);
  if (!fs.existsSync(file)) {
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { 'Content-Type': 'application/jwk-set+json' });
  res.end(fs.readFileSync(file));
}

const tls = config.tls;
const server = https.createServer(
  {
    cert: fs.readFileSync(tls.cert),
    key: fs.readFileSync(tls.key),
    ca: fs.readFileSync(tls.ca),
    // Ask for a client certificate but let the provider judge it: self-signed ones
    // (self_signed_tls_client_auth) would not pass Node's own check.
    requestCert: true,
    rejectUnauthorized: false,
  },
  (req, res) => {
    const url = new URL(req.url, `https://127.0.0.1:${server.address().port}`);
    url.port = String(server.address().port);
    if (url.pathname.startsWith('/resource/')) {
      const route = {
        '/resource/dpop': () => dpopResource(req, res, url, false),
        '/resource/dpop-nonce': () => dpopResource(req, res, url, true),
        '/resource/mtls': () => mtlsResource(req, res),
      }[url.pathname];
      if (!route) {
        res.writeHead(404);
        return res.end();
      }
      return route().catch((err) => {
        res.writeHead(500);
        res.end(String(err));
      });
    }
    if (url.pathname.startsWith('/test-jwks/')) return jwksFile(res, url.pathname.slice(11));
    if (url.pathname.startsWith('/test-jwks-cache/')) {
      return jwksCache(res, url.pathname.slice(17), url.searchParams.get('action')).catch((err) => {
        res.writeHead(500);
        res.end(String(err));
      });
    }
    return provider.callback()(req, res);
  },
);

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  provider = new Provider(`https://127.0.0.1:${port}`, {
    // jwks_uri and the like name the port, known only now.
    clients: JSON.parse(JSON.stringify(config.clients).replaceAll('{port}', String(port))),
    scopes: ['api:read', 'api:write'],
    // The provider refuses to fetch from loopback (its SSRF guard); the test's
    // jwks_uri is on 127.0.0.1, so drop that dispatcher here, and only here.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    clientAuthMethods: ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'],
    // One endpoint serves both; the alias lets clients exercise RFC 8705 §5.
    discovery: { mtls_endpoint_aliases: { token_endpoint: `https://127.0.0.1:${port}/token` } },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      dPoP: {
        enabled: true,
        nonceSecret: crypto.randomBytes(32),
        requireNonce: (ctx) => requireNonce.has(ctx.oidc.client?.clientId),
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => peerCertificate(ctx.socket),
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx, property, expected) => {
          const cert = peerCertificate(ctx.socket);
          return property === 'tls_client_auth_subject_dn' && !!cert && rfc4514(cert.subject) === expected;
        },
      },
    },
    enabledJWA: {
      dPoPSigningAlgValues: PROOF_ALGS,
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA', 'Ed25519'],
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  console.log(`READY ${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
