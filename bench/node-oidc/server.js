// node-oidc-provider, configured as the other side of bench/side_by_side.sh:
// the client credentials grant with JWT access tokens (RS256 or ES256, per
// resource indicator), served by WORKERS processes (node:cluster) on
// 127.0.0.1:$PORT.
//
// The primary generates the signing keys once (one RSA-2048, one P-256) and
// hands them to every worker, so each worker signs with the same keys and
// the JWKS is the same whichever worker answers.
//
//   PORT=3000 WORKERS=2 node server.js
//
// Clients (client_secret_basic, grant_types ['client_credentials'], scope
// 'read'): bench-rs256 / bench-es256, secrets from CLIENT_SECRET (default
// below). Resources: https://RS256.bench.example, https://ES256.bench.example.
// Oidc-provider's notices and warnings (development-only defaults that this
// benchmark never reaches) are silenced unless NODE_OIDC_VERBOSE is set.
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';

const PORT = Number(process.env.PORT || 3000);
const WORKERS = Number(process.env.WORKERS || 2);
const HOST = '127.0.0.1';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'bench-secret-0123456789abcdef0123456789abcdef';

function generateJwks() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: 'bench-rs256', alg: 'RS256', use: 'sig' },
      { ...ec, kid: 'bench-es256', alg: 'ES256', use: 'sig' },
    ],
  };
}

if (cluster.isPrimary) {
  const jwks = JSON.stringify(generateJwks());
  let stopping = false;
  for (let i = 0; i < WORKERS; i += 1) {
    cluster.fork({ BENCH_JWKS: jwks });
  }
  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === WORKERS) {
      console.log(`node-oidc-provider: ${WORKERS} workers on http://${HOST}:${PORT} (pid ${process.pid})`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited (${signal || code})`);
      process.exitCode = 1;
    }
  });
  const stop = () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.kill();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  if (!process.env.NODE_OIDC_VERBOSE) {
    // oidc-provider writes its notices with console.info / console.warn.
    console.info = () => {};
    console.warn = () => {};
  }
  const { default: Provider } = await import('oidc-provider');

  const RESOURCES = {
    'https://RS256.bench.example': 'RS256',
    'https://ES256.bench.example': 'ES256',
  };
  const client = (id) => ({
    client_id: id,
    client_secret: CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'read',
  });

  const provider = new Provider(`http://${HOST}:${PORT}`, {
    jwks: JSON.parse(process.env.BENCH_JWKS),
    clients: [client('bench-rs256'), client('bench-es256')],
    scopes: ['read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf || 'https://RS256.bench.example',
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          const alg = RESOURCES[resourceIndicator];
          if (!alg) throw new Provider.errors.InvalidTarget();
          return { scope: 'read', accessTokenFormat: 'jwt', jwt: { sign: { alg } } };
        },
      },
    },
    ttl: {
      // 15 minutes, as Tessera's access tokens.
      ClientCredentials: () => 900,
    },
    cookies: { keys: [CLIENT_SECRET] },
  });
  provider.proxy = false;
  provider.silent = true;
  provider.on('server_error', (_ctx, err) => {
    process.stderr.write(`server_error: ${err?.stack || err}\n`);
  });
  provider.listen(PORT, HOST);
}
