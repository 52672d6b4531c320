/**
 * Unsubscribe tokens: a signed `(user, sources)` pair carried by the `List-Unsubscribe`
 * link of every mail, so that one click turns email off for those sources without a login.
 */

const encoder = new TextEncoder();

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replaceAll("=", "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  try {
    const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** What an unsubscribe token says. */
export interface UnsubscribeClaim {
  user: string;
  sources: string[];
}

/** Signs and verifies unsubscribe tokens with one HMAC-SHA256 secret. */
export interface UnsubscribeTokens {
  sign(claim: UnsubscribeClaim): Promise<string>;
  /** The claim of a valid token; `undefined` for anything else. */
  verify(token: string): Promise<UnsubscribeClaim | undefined>;
}

/** Creates the token signer from a secret. */
export function createUnsubscribeTokens(secret: string): UnsubscribeTokens {
  const key = crypto.subtle.importKey(
    "raw",
    encoder.encode(`relais-unsubscribe:${secret}`),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  return {
    async sign(claim) {
      const body = toBase64Url(encoder.encode(JSON.stringify({ u: claim.user, s: claim.sources })));
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await key, encoder.encode(body)));
      return `${body}.${toBase64Url(mac)}`;
    },
    async verify(token) {
      if (token.length > 4096) return undefined;
      const [body, mac, extra] = token.split(".");
      if (!body || !mac || extra !== undefined) return undefined;
      const sig = fromBase64Url(mac);
      if (!sig) return undefined;
      const ok = await crypto.subtle.verify("HMAC", await key, sig, encoder.encode(body));
      if (!ok) return undefined;
      try {
        const json = JSON.parse(new TextDecoder().decode(fromBase64Url(body)));
        if (typeof json.u !== "string" || !Array.isArray(json.s)) return undefined;
        return { user: json.u, sources: json.s.filter((s: unknown) => typeof s === "string") };
      } catch {
        return undefined;
      }
    },
  };
}
