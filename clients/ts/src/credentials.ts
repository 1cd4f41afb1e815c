// Credentials: a bearer token (static or refreshed before it expires) or a public link's token.
export interface TokenSource {
  /** The header the token goes in: "authorization" (as "Bearer <token>") or "x-tessera-link". */
  readonly header: "authorization" | "x-tessera-link";
  /** The current token (fetched or refreshed when needed). */
  token(): Promise<string>;
  /** Forget the cached token (after UNAUTHENTICATED): the next token() fetches a new one. */
  invalidate?(): void;
}

export function staticToken(token: string): TokenSource {
  return { header: "authorization", token: () => Promise.resolve(token) };
}

/** A public link's token, sent as `x-tessera-link`. */
export function linkToken(token: string): TokenSource {
  return { header: "x-tessera-link", token: () => Promise.resolve(token) };
}

export interface FetchedToken {
  token: string;
  /** When it expires; read from the JWT's `exp` claim when not given. */
  expiresAt?: Date;
}

/**
 * A bearer token fetched by `fetch` and cached until `refreshMarginMs` before it expires; one
 * fetch at a time however many calls wait for it. The client invalidates it after UNAUTHENTICATED
 * and tries the call once more with a fresh token.
 */
export class RefreshingToken implements TokenSource {
  readonly header = "authorization" as const;
  private cached: { token: string; expiresAtMs: number } | undefined;
  private pending: Promise<string> | undefined;
  fetches = 0;

  constructor(
    private readonly fetch: () => Promise<FetchedToken | string>,
    private readonly refreshMarginMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  token(): Promise<string> {
    if (this.cached && this.now() < this.cached.expiresAtMs - this.refreshMarginMs) {
      return Promise.resolve(this.cached.token);
    }
    this.pending ??= this.refresh().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  private async refresh(): Promise<string> {
    this.fetches += 1;
    const got = await this.fetch();
    const fetched = typeof got === "string" ? { token: got } : got;
    const expiresAtMs = fetched.expiresAt?.getTime() ?? jwtExpiry(fetched.token) ?? Number.POSITIVE_INFINITY;
    this.cached = { token: fetched.token, expiresAtMs };
    return fetched.token;
  }
}

/** The `exp` claim of a JWT in milliseconds, or undefined. */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "="))) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export function tokenSource(token: string | TokenSource | undefined): TokenSource | undefined {
  return typeof token === "string" ? staticToken(token) : token;
}
