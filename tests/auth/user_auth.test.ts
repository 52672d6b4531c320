import assert from "node:assert/strict";
import { createLocalJWKSet, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { createUserAuth } from "../../src/auth/user_auth.ts";
import { eventually } from "../_support/eventually.ts";
import {
  appErrorOf,
  authConfig,
  NOW,
  NOW_S,
  signAsymmetric,
  signContext,
  signHs256,
  startJwksServer,
  TEST_SECRET,
  unsecuredToken,
} from "../_support/auth.ts";

const now = () => NOW;

async function keyPair(alg: "RS256" | "ES256", kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { privateKey, jwk };
}

// --- HS256 -------------------------------------------------------------------------------

Deno.test("user auth accepts a valid HS256 token and maps its claims", async () => {
  const auth = createUserAuth(authConfig(), { now });
  const token = await signHs256({ sub: "u1", roles: ["ROLE_STUDENT"], structures: ["univ-x"] });

  const user = await auth.verifyToken(token);

  assert.deepEqual(user, {
    kind: "user",
    id: "u1",
    roles: ["ROLE_STUDENT"],
    structures: ["univ-x"],
    expiresAt: (NOW_S + 3600) * 1000,
  });
});

Deno.test("user auth imports the HS256 secret once, not for every token", async () => {
  const token = await signHs256({ sub: "u1" });
  const imports = await counting("importKey", async () => {
    // Nothing kept: every check goes through jose, which must not import the key again.
    const auth = createUserAuth(authConfig(), { now, verifiedTokens: 0 });
    for (let i = 0; i < 5; i++) assert.equal((await auth.verifyToken(token)).id, "u1");
  });
  assert.equal(imports, 1);
});

/** Runs `fn` while counting the calls it makes to one `crypto.subtle` method. */
async function counting(
  method: "importKey" | "verify",
  fn: () => Promise<void>,
): Promise<number> {
  const subtle = crypto.subtle as unknown as Record<string, (...a: unknown[]) => unknown>;
  const original = subtle[method];
  let calls = 0;
  subtle[method] = function (this: SubtleCrypto, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  try {
    await fn();
  } finally {
    subtle[method] = original;
  }
  return calls;
}

Deno.test("user auth checks an HS256 token's signature once while it holds, and its copy of the user stays its own", async () => {
  const token = await signHs256({ sub: "u1", roles: ["ROLE_STUDENT"], structures: ["univ-x"] });
  const auth = createUserAuth(authConfig(), { now });
  const calls = await counting("verify", async () => {
    const first = await auth.verifyToken(token);
    first.roles.push("ROLE_ADMIN");
    first.structures.length = 0;
    for (let i = 0; i < 4; i++) {
      const again = await auth.verifyToken(token);
      assert.deepEqual(again.roles, ["ROLE_STUDENT"], "a caller's change reaches no one else");
      assert.deepEqual(again.structures, ["univ-x"]);
      again.roles.length = 0;
    }
  });
  assert.equal(calls, 1);
  // Nothing is kept when asked so: every check verifies.
  const none = createUserAuth(authConfig(), { now, verifiedTokens: 0 });
  const each = await counting("verify", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await none.verifyToken(token)).id, "u1");
  });
  assert.equal(each, 3);
});

Deno.test("a verified token is refused once its exp has passed, tolerance included, and a tampered one never passes for it", async () => {
  const token = await signHs256({ sub: "u1", exp: NOW_S + 10 });
  let clock = NOW;
  const auth = createUserAuth(authConfig(), { now: () => clock });
  assert.equal((await auth.verifyToken(token)).id, "u1");
  clock = NOW + 9_999;
  assert.equal((await auth.verifyToken(token)).id, "u1");
  clock = NOW + 10_000;
  assert.equal((await appErrorOf(auth.verifyToken(token))).message, "Token has expired");
  // Back before its exp (a clock that moved back): checked again, and kept again.
  clock = NOW;
  assert.equal((await auth.verifyToken(token)).id, "u1");
  // The same header and claims under another signature are another token.
  const [head, body] = token.split(".");
  const forged = `${head}.${body}.${"A".repeat(43)}`;
  assert.equal(
    (await appErrorOf(auth.verifyToken(forged))).message,
    "Invalid token: signature verification failed",
  );

  const tolerant = createUserAuth(authConfig(), { now: () => clock, clockToleranceSeconds: 5 });
  clock = NOW;
  assert.equal((await tolerant.verifyToken(token)).id, "u1");
  clock = NOW + 14_999;
  assert.equal((await tolerant.verifyToken(token)).id, "u1");
  clock = NOW + 15_000;
  assert.equal((await appErrorOf(tolerant.verifyToken(token))).message, "Token has expired");
});

Deno.test("user auth keeps at most the verified tokens it is told to, the oldest leaving first", async () => {
  const tokens = await Promise.all(["u1", "u2", "u3"].map((sub) => signHs256({ sub })));
  const auth = createUserAuth(authConfig(), { now, verifiedTokens: 2 });
  const calls = await counting("verify", async () => {
    for (const token of tokens) await auth.verifyToken(token);
    // u2 and u3 are kept; u1 left and is checked again (then u2 leaves).
    await auth.verifyToken(tokens[2]);
    await auth.verifyToken(tokens[1]);
    await auth.verifyToken(tokens[0]);
    await auth.verifyToken(tokens[2]);
  });
  assert.equal(calls, 3 + 1);
});

Deno.test("user auth defaults missing roles and structures to empty lists", async () => {
  const auth = createUserAuth(authConfig(), { now });

  const user = await auth.verifyToken(await signHs256({ sub: "u1" }));

  assert.deepEqual(user.roles, []);
  assert.deepEqual(user.structures, []);
});

Deno.test("user auth reads roles and structures from the configured claims", async () => {
  const auth = createUserAuth(
    authConfig({ rolesClaim: "realm_access.roles", structuresClaim: "https://ep.example/inst" }),
    { now },
  );
  const token = await signHs256({
    sub: "u1",
    roles: ["ignored"],
    realm_access: { roles: ["institution-admin"] },
    "https://ep.example/inst": ["univ-y"],
  });

  const user = await auth.verifyToken(token);

  assert.deepEqual(user.roles, ["institution-admin"]);
  assert.deepEqual(user.structures, ["univ-y"]);
});

Deno.test("user auth rejects a roles claim that is not an array of strings", async () => {
  const auth = createUserAuth(authConfig(), { now });

  const error = await appErrorOf(auth.verifyToken(await signHs256({ sub: "u1", roles: "admin" })));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, 'Invalid token: claim "roles" must be an array of strings');
});

Deno.test("user auth rejects an expired token", async () => {
  const auth = createUserAuth(authConfig(), { now });
  const token = await signHs256({ sub: "u1", iat: NOW_S - 7200, exp: NOW_S - 1 });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.status, 401);
  assert.equal(error.message, "Token has expired");
});

Deno.test("user auth accepts a token until its exp and not at it", async () => {
  const token = await signHs256({ sub: "u1", exp: NOW_S + 10 });

  const before = await createUserAuth(authConfig(), { now: () => NOW + 9_999 }).verifyToken(token);
  const at = await appErrorOf(
    createUserAuth(authConfig(), { now: () => NOW + 10_000 }).verifyToken(token),
  );

  assert.equal(before.id, "u1");
  assert.equal(at.message, "Token has expired");
});

Deno.test("user auth rejects a token signed with another secret without echoing it", async () => {
  const auth = createUserAuth(authConfig(), { now });
  const otherSecret = "another-secret-0123456789-abcdefghijkl";
  const token = await signHs256({ sub: "u1" }, { secret: otherSecret });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, "Invalid token: signature verification failed");
  for (const secret of [token, otherSecret, TEST_SECRET, token.split(".")[2]]) {
    assert.ok(!error.message.includes(secret), "the message leaks a credential");
  }
});

Deno.test("user auth rejects a token signed with alg none", async () => {
  const auth = createUserAuth(authConfig(), { now });

  const error = await appErrorOf(auth.verifyToken(unsecuredToken({ sub: "admin" })));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /^Token algorithm "none" is not allowed/);
});

Deno.test("user auth rejects a token whose issuer does not match", async () => {
  const auth = createUserAuth(authConfig({ jwtIssuer: "https://idp.example" }), { now });
  const token = await signHs256({ sub: "u1", iss: "https://evil.example" });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /"iss"/);
});

Deno.test("user auth rejects a token without an issuer when one is configured", async () => {
  const auth = createUserAuth(authConfig({ jwtIssuer: "https://idp.example" }), { now });

  const error = await appErrorOf(auth.verifyToken(await signHs256({ sub: "u1" })));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /"iss"/);
});

Deno.test("user auth rejects a token whose audience does not match", async () => {
  const auth = createUserAuth(authConfig({ jwtAudience: "relais" }), { now });
  const token = await signHs256({ sub: "u1", aud: "another-service" });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /"aud"/);
});

Deno.test("user auth accepts a token whose issuer and audience match", async () => {
  const auth = createUserAuth(
    authConfig({ jwtIssuer: "https://idp.example", jwtAudience: "relais" }),
    { now },
  );
  const token = await signHs256({
    sub: "u1",
    iss: "https://idp.example",
    aud: ["portfolio", "relais"],
  });

  assert.equal((await auth.verifyToken(token)).id, "u1");
});

Deno.test("user auth rejects a token without sub or without exp", async () => {
  const auth = createUserAuth(authConfig(), { now });

  const noSub = await appErrorOf(auth.verifyToken(await signHs256({})));
  const noExp = await appErrorOf(auth.verifyToken(await signHs256({ sub: "u1", exp: undefined })));

  assert.match(noSub.message, /"sub"/);
  assert.match(noExp.message, /"exp"/);
  assert.equal(noSub.code, "unauthenticated");
  assert.equal(noExp.code, "unauthenticated");
});

Deno.test("user auth takes any sub the user-id rule takes, and refuses the others", async () => {
  const auth = createUserAuth(authConfig(), { now });

  for (const sub of ["dept/jdoe", " padded id ", "x".repeat(256), "élève/🎓", "../.."]) {
    assert.equal((await auth.verifyToken(await signHs256({ sub }))).id, sub);
  }
  for (const sub of ["", "x".repeat(257), ".", ".."]) {
    const error = await appErrorOf(auth.verifyToken(await signHs256({ sub })));
    assert.equal(error.code, "unauthenticated", JSON.stringify(sub));
    assert.match(error.message, /^Invalid token: "sub" must be 1 to 256 characters/);
  }
});

Deno.test("user auth rejects malformed tokens as unauthenticated", async () => {
  const auth = createUserAuth(authConfig(), { now });

  for (const token of ["", "not-a-jwt", "a.b.c", "x".repeat(20_000)]) {
    const error = await appErrorOf(auth.verifyToken(token));
    assert.equal(error.code, "unauthenticated", `token ${token.slice(0, 20)}`);
    assert.match(error.message, /^Invalid token: /);
  }
});

Deno.test("user auth refuses bearer tokens when neither secret nor JWKS is configured", async () => {
  const auth = createUserAuth(authConfig({ jwtSecret: undefined }), { now });

  const error = await appErrorOf(auth.verifyToken(await signHs256({ sub: "u1" })));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /no JWT secret or JWKS URL is configured/);
});

Deno.test("user auth signs development tokens that it verifies", async () => {
  const auth = createUserAuth(
    authConfig({ jwtIssuer: "https://idp.example", jwtAudience: "relais" }),
    { now },
  );

  const token = await auth.signDevToken("alice", {
    roles: ["ROLE_STAFF"],
    structures: ["univ-x"],
    ttlSeconds: 60,
  });
  const user = await auth.verifyToken(token);

  assert.deepEqual(user, {
    kind: "user",
    id: "alice",
    roles: ["ROLE_STAFF"],
    structures: ["univ-x"],
    expiresAt: NOW + 60_000,
  });
});

Deno.test("user auth cannot sign development tokens without a secret", async () => {
  const auth = createUserAuth(authConfig({ jwtSecret: undefined }), { now });

  await assert.rejects(auth.signDevToken("alice"), /no JWT secret is configured/);
});

// --- JWKS --------------------------------------------------------------------------------

Deno.test("user auth verifies RS256 and ES256 tokens from a JWKS served over HTTP", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const ec = await keyPair("ES256", "ec-1");
  const server = await startJwksServer({ keys: [rsa.jwk, ec.jwk] });
  try {
    const auth = createUserAuth(
      authConfig({ jwtSecret: undefined, jwksUrl: server.url, jwtIssuer: "https://idp.example" }),
      { now },
    );
    const claims = { sub: "u1", iss: "https://idp.example", roles: ["ROLE_STAFF"] };

    const fromRsa = await auth.verifyToken(
      await signAsymmetric(claims, rsa.privateKey, { alg: "RS256", kid: "rsa-1" }),
    );
    const fromEc = await auth.verifyToken(
      await signAsymmetric({ ...claims, sub: "u2" }, ec.privateKey, { alg: "ES256", kid: "ec-1" }),
    );

    assert.equal(fromRsa.id, "u1");
    assert.deepEqual(fromRsa.roles, ["ROLE_STAFF"]);
    assert.equal(fromEc.id, "u2");
    assert.ok(server.hits >= 1, "the JWKS endpoint was never fetched");
  } finally {
    await server.close();
  }
});

Deno.test("user auth rejects a JWKS token with an unknown kid", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const stranger = await keyPair("RS256", "rsa-9");
  const server = await startJwksServer({ keys: [rsa.jwk] });
  try {
    const auth = createUserAuth(authConfig({ jwtSecret: undefined, jwksUrl: server.url }), {
      now,
    });
    const token = await signAsymmetric({ sub: "u1" }, stranger.privateKey, {
      alg: "RS256",
      kid: "rsa-9",
    });

    const error = await appErrorOf(auth.verifyToken(token));

    assert.equal(error.code, "unauthenticated");
    assert.equal(error.message, 'Unknown key id "rsa-9"');
  } finally {
    await server.close();
  }
});

Deno.test("user auth rejects a JWKS token signed by another key under a known kid", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const forger = await keyPair("RS256", "rsa-1");
  const server = await startJwksServer({ keys: [rsa.jwk] });
  try {
    const auth = createUserAuth(authConfig({ jwtSecret: undefined, jwksUrl: server.url }), {
      now,
    });
    const token = await signAsymmetric({ sub: "u1" }, forger.privateKey, {
      alg: "RS256",
      kid: "rsa-1",
    });

    const error = await appErrorOf(auth.verifyToken(token));

    assert.equal(error.code, "unauthenticated");
    assert.equal(error.message, "Invalid token: signature verification failed");
  } finally {
    await server.close();
  }
});

Deno.test("user auth answers unavailable when the JWKS endpoint is down", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const server = await startJwksServer({ keys: [rsa.jwk] });
  await server.close();
  const auth = createUserAuth(authConfig({ jwtSecret: undefined, jwksUrl: server.url }), { now });
  const token = await signAsymmetric({ sub: "u1" }, rsa.privateKey, { alg: "RS256", kid: "rsa-1" });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.code, "unavailable");
  assert.equal(error.status, 503);
});

/** A JWKS endpoint whose answer a test switches: the key set, a 500, garbage, or held. */
function startSwitchableJwks(jwks: { keys: JWK[] }) {
  let answer: "keys" | "500" | "garbage" | "hold" = "keys";
  let keys = jwks;
  let hits = 0;
  const held: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    hits++;
    if (answer === "500") return new Response("boom", { status: 500 });
    if (answer === "garbage") return new Response("<html>not a key set", { status: 200 });
    if (answer === "hold") await new Promise<void>((resolve) => held.push(resolve));
    return Response.json(keys);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/jwks.json`,
    get hits() {
      return hits;
    },
    get held() {
      return held.length;
    },
    answer(next: typeof answer, nextKeys = keys) {
      answer = next;
      keys = nextKeys;
    },
    release() {
      for (const resolve of held.splice(0)) resolve();
    },
    close: () => server.shutdown(),
  };
}

Deno.test("user auth fetches a failing JWKS endpoint once per cooldown, whatever the tokens", async () => {
  const ec = await keyPair("ES256", "ec-1");
  const server = startSwitchableJwks({ keys: [ec.jwk] });
  try {
    server.answer("500");
    let clock = NOW;
    const auth = createUserAuth(authConfig({ jwtSecret: undefined, jwksUrl: server.url }), {
      now: () => clock,
    });
    const sign = (kid: string) =>
      signAsymmetric({ sub: "u1", exp: NOW_S + 3600 }, ec.privateKey, { alg: "ES256", kid });

    // A flood of tokens, most with made-up key ids, while the endpoint fails.
    const codes = [];
    for (const kid of ["ec-1", "made-up-1", "made-up-2", "ec-1", "made-up-3"]) {
      codes.push((await appErrorOf(auth.verifyToken(await sign(kid)))).code);
    }

    assert.deepEqual(codes, Array(5).fill("unavailable"));
    assert.equal(server.hits, 1, "each token fetched the JWKS again");
    // Past the cooldown, the endpoint is asked again, and its keys are used.
    server.answer("keys");
    clock += 30_000;
    assert.equal((await auth.verifyToken(await sign("ec-1"))).id, "u1");
    assert.equal(server.hits, 2);
  } finally {
    await server.close();
  }
});

Deno.test("user auth keeps verifying with the keys it had while the JWKS endpoint fails or hangs", async () => {
  const ec1 = await keyPair("ES256", "ec-1");
  const ec2 = await keyPair("ES256", "ec-2");
  const server = startSwitchableJwks({ keys: [ec1.jwk] });
  try {
    let clock = NOW;
    const auth = createUserAuth(authConfig({ jwtSecret: undefined, jwksUrl: server.url }), {
      now: () => clock,
    });
    const token = await signAsymmetric({ sub: "u1", exp: NOW_S + 3600 }, ec1.privateKey, {
      alg: "ES256",
      kid: "ec-1",
    });
    assert.equal((await auth.verifyToken(token)).id, "u1");

    // The key set is older than its 10 minutes and the endpoint answers garbage.
    server.answer("garbage");
    clock += 11 * 60_000;
    assert.equal((await auth.verifyToken(token)).id, "u1");
    assert.equal((await auth.verifyToken(token)).id, "u1");
    // A made-up key id is refused (after the fetch under way, if any: a barrier).
    const madeUp = await signAsymmetric({ sub: "u1" }, ec1.privateKey, {
      alg: "ES256",
      kid: "made-up",
    });
    await appErrorOf(auth.verifyToken(madeUp));
    assert.equal(server.hits, 2);
    // The endpoint hangs: tokens are verified meanwhile, not held behind its answer.
    server.answer("hold", { keys: [ec1.jwk, ec2.jwk] });
    clock += 30_000;
    assert.equal((await auth.verifyToken(token)).id, "u1");
    await eventually(() => server.held === 1);
    assert.equal((await auth.verifyToken(token)).id, "u1");
    assert.equal(server.held, 1, "the verification waited for the hanging endpoint");
    // A rotated key waits for the fetch under way, then is found in the new key set.
    const rotated = auth.verifyToken(
      await signAsymmetric({ sub: "u2", exp: NOW_S + 3600 }, ec2.privateKey, {
        alg: "ES256",
        kid: "ec-2",
      }),
    );
    server.release();
    assert.equal((await rotated).id, "u2");
    assert.equal(server.hits, 3);
  } finally {
    server.release();
    await server.close();
  }
});

Deno.test("user auth verifies JWKS tokens with an injected local key set", async () => {
  const ec = await keyPair("ES256", "ec-1");
  const auth = createUserAuth(authConfig({ jwtSecret: undefined }), {
    now,
    jwks: createLocalJWKSet({ keys: [ec.jwk] }),
  });
  const token = await signAsymmetric({ sub: "u3" }, ec.privateKey, { alg: "ES256", kid: "ec-1" });

  assert.equal((await auth.verifyToken(token)).id, "u3");
});

Deno.test("user auth accepts HS256 and RS256 tokens when both secret and JWKS are set", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const auth = createUserAuth(authConfig(), { now, jwks: createLocalJWKSet({ keys: [rsa.jwk] }) });
  const rs256 = await signAsymmetric({ sub: "u1" }, rsa.privateKey, { alg: "RS256", kid: "rsa-1" });

  const fromJwks = await auth.verifyToken(rs256);
  const fromSecret = await auth.verifyToken(await signHs256({ sub: "u2" }));

  assert.equal(fromJwks.id, "u1");
  assert.equal(fromSecret.id, "u2");
});

Deno.test("user auth rejects an HS256 token keyed with the JWKS public key", async () => {
  const rsa = await keyPair("RS256", "rsa-1");
  const auth = createUserAuth(authConfig(), { now, jwks: createLocalJWKSet({ keys: [rsa.jwk] }) });
  // The classic algorithm confusion: the attacker MACs with the public key as the secret.
  const token = await signHs256({ sub: "admin" }, {
    secret: JSON.stringify(rsa.jwk),
    kid: "rsa-1",
  });

  const error = await appErrorOf(auth.verifyToken(token));

  assert.equal(error.message, "Invalid token: signature verification failed");
});

Deno.test("user auth rejects an HS256 token when only a JWKS is configured", async () => {
  const ec = await keyPair("ES256", "ec-1");
  const auth = createUserAuth(authConfig({ jwtSecret: undefined }), {
    now,
    jwks: createLocalJWKSet({ keys: [ec.jwk] }),
  });

  const error = await appErrorOf(auth.verifyToken(await signHs256({ sub: "u1" })));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /^Token algorithm "HS256" is not allowed \(expected RS256, ES256\)/);
});

Deno.test("user auth rejects RS384 even when the JWKS holds a matching RSA key", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS384", { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "rsa-384" };
  const auth = createUserAuth(authConfig({ jwtSecret: undefined }), {
    now,
    jwks: createLocalJWKSet({ keys: [jwk] }),
  });
  const token = await new SignJWT({ sub: "u1", exp: NOW_S + 60 })
    .setProtectedHeader({ alg: "RS384", kid: "rsa-384" })
    .sign(privateKey);

  const error = await appErrorOf(auth.verifyToken(token));

  assert.match(error.message, /^Token algorithm "RS384" is not allowed/);
});

// --- Signed context ----------------------------------------------------------------------

const GATEWAY = { secret: "gateway-secret-0123456789", kid: "gw1" };

function gatewayAuth(clock = now) {
  return createUserAuth(
    authConfig({ jwtSecret: undefined, gatewayKeys: { [GATEWAY.kid]: GATEWAY.secret } }),
    { now: clock },
  );
}

const contextPayload = {
  sub: "u1",
  iat: NOW_S - 10,
  exp: NOW_S + 290,
  authorities: ["ROLE_STUDENT", "ROLE_USER"],
  roles: ["ROLE_USER", "peer-reviewer"],
};

Deno.test("user auth accepts a valid signed context and merges roles and authorities", async () => {
  const headers = await signContext(contextPayload, GATEWAY);

  const user = await gatewayAuth().verifySignedContext(headers);

  assert.deepEqual(user, {
    kind: "user",
    id: "u1",
    roles: ["ROLE_USER", "peer-reviewer", "ROLE_STUDENT"],
    structures: [],
    expiresAt: (NOW_S + 290) * 1000,
  });
});

Deno.test("user auth takes a signed context's sub by the same rule as a token's", async () => {
  const auth = gatewayAuth();

  for (const sub of ["dept/jdoe", "x".repeat(256)]) {
    const user = await auth.verifySignedContext(
      await signContext({ ...contextPayload, sub }, GATEWAY),
    );
    assert.equal(user.id, sub);
  }
  for (const sub of ["x".repeat(257), ".."]) {
    const headers = await signContext({ ...contextPayload, sub }, GATEWAY);
    const error = await appErrorOf(auth.verifySignedContext(headers));
    assert.equal(error.code, "unauthenticated");
    assert.match(error.message, /^Invalid signed context: "sub": /);
  }
});

Deno.test("user auth accepts signed context signatures in hex, base64 and base64url", async () => {
  const auth = gatewayAuth();
  for (const signatureEncoding of ["hex", "base64", "base64url"] as const) {
    for (const contextEncoding of ["base64", "base64url"] as const) {
      const headers = await signContext(contextPayload, {
        ...GATEWAY,
        signatureEncoding,
        contextEncoding,
      });
      const user = await auth.verifySignedContext(headers);
      assert.equal(user.id, "u1", `${signatureEncoding} signature, ${contextEncoding} context`);
    }
  }
});

Deno.test("user auth accepts Spring authority objects in a signed context", async () => {
  const headers = await signContext({
    ...contextPayload,
    authorities: [{ authority: "ROLE_STAFF" }],
    roles: undefined,
  }, GATEWAY);

  const user = await gatewayAuth().verifySignedContext(headers);

  assert.deepEqual(user.roles, ["ROLE_STAFF"]);
});

Deno.test("user auth rejects a signed context with a bad signature", async () => {
  const headers = await signContext(contextPayload, { ...GATEWAY, secret: "not-the-gateway" });

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, "Invalid signed context: signature verification failed");
  assert.ok(!error.message.includes(headers.signature));
});

Deno.test("user auth rejects a signed context whose payload was altered", async () => {
  const headers = await signContext(contextPayload, GATEWAY);
  const forged = await signContext({ ...contextPayload, roles: ["institution-admin"] }, GATEWAY);

  const error = await appErrorOf(
    gatewayAuth().verifySignedContext({ ...headers, context: forged.context }),
  );

  assert.equal(error.message, "Invalid signed context: signature verification failed");
});

Deno.test("user auth rejects a signed context with an unknown kid", async () => {
  const headers = await signContext(contextPayload, { ...GATEWAY, kid: "k9" });

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, 'Unknown key id "k9"');
});

Deno.test("user auth does not take an inherited property name for a kid", async () => {
  const headers = await signContext(contextPayload, { ...GATEWAY, kid: "__proto__" });

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.message, 'Unknown key id "__proto__"');
});

Deno.test("user auth rejects a signed context living longer than 300 s", async () => {
  const headers = await signContext(
    { ...contextPayload, iat: NOW_S - 10, exp: NOW_S + 291 },
    GATEWAY,
  );

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, "Invalid signed context: lifetime of 301 s exceeds 300 s");
});

Deno.test("user auth rejects an expired signed context", async () => {
  const headers = await signContext(
    { ...contextPayload, iat: NOW_S - 300, exp: NOW_S },
    GATEWAY,
  );

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.code, "unauthenticated");
  assert.equal(error.message, "Signed context has expired");
});

Deno.test("user auth rejects a signed context issued more than 30 s in the future", async () => {
  const soon = await signContext({ ...contextPayload, iat: NOW_S + 30, exp: NOW_S + 60 }, GATEWAY);
  const later = await signContext({ ...contextPayload, iat: NOW_S + 31, exp: NOW_S + 60 }, GATEWAY);

  const accepted = await gatewayAuth().verifySignedContext(soon);
  const error = await appErrorOf(gatewayAuth().verifySignedContext(later));

  assert.equal(accepted.id, "u1");
  assert.equal(error.message, "Invalid signed context: issued in the future");
});

Deno.test("user auth rejects a signed context with missing headers", async () => {
  const headers = await signContext(contextPayload, GATEWAY);
  const auth = gatewayAuth();

  const noContext = await appErrorOf(auth.verifySignedContext({ ...headers, context: null }));
  const noSignature = await appErrorOf(auth.verifySignedContext({ ...headers, signature: "" }));
  const noKid = await appErrorOf(auth.verifySignedContext({ ...headers, kid: undefined }));

  assert.equal(noContext.message, "Missing X-Signed-Context header");
  assert.equal(noSignature.message, "Missing X-Context-Signature header");
  assert.equal(noKid.message, "Missing X-Context-Kid header");
});

Deno.test("user auth rejects a signed context whose signature is not a MAC", async () => {
  const headers = await signContext(contextPayload, GATEWAY);

  const error = await appErrorOf(
    gatewayAuth().verifySignedContext({ ...headers, signature: "zz-not-hex!" }),
  );

  assert.match(error.message, /^Invalid X-Context-Signature: /);
});

Deno.test("user auth rejects a well-signed context with an invalid payload", async () => {
  const headers = await signContext({ ...contextPayload, sub: 42 }, GATEWAY);

  const error = await appErrorOf(gatewayAuth().verifySignedContext(headers));

  assert.equal(error.code, "unauthenticated");
  assert.match(error.message, /^Invalid signed context: "sub": /);
});

Deno.test("user auth refuses signed contexts when no gateway key is configured", async () => {
  const auth = createUserAuth(authConfig(), { now });
  const headers = await signContext(contextPayload, GATEWAY);

  const error = await appErrorOf(auth.verifySignedContext(headers));

  assert.match(error.message, /no gateway keys are configured/);
});
