// oidc-provider ships no type declarations; this covers the part of its API the test peers use.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export type AdapterPayload = Record<string, unknown> & {
    grantId?: string;
    accountId?: string;
    uid?: string;
    userCode?: string;
    consumed?: number;
  };

  export interface Adapter {
    upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
    find(id: string): Promise<AdapterPayload | undefined>;
    findByUserCode(userCode: string): Promise<AdapterPayload | undefined>;
    findByUid(uid: string): Promise<AdapterPayload | undefined>;
    consume(id: string): Promise<void>;
    destroy(id: string): Promise<void>;
    revokeByGrantId(grantId: string): Promise<void>;
  }

  export interface OidcError extends Error {
    error: string;
    error_description?: string;
    error_detail?: string;
  }

  export interface OidcContext {
    route: string;
    params?: Record<string, unknown>;
    body?: Record<string, unknown>;
  }

  export interface KoaContext {
    method: string;
    path: string;
    status: number;
    body: unknown;
    type: string;
    req: IncomingMessage;
    response: { get(field: string): string };
    oidc?: OidcContext;
    get(field: string): string;
    set(field: string, value: string): void;
  }

  export type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

  export interface Account {
    accountId: string;
    claims(): Promise<Record<string, unknown>>;
  }

  export interface Token {
    kind: string;
    accountId?: string;
    clientId?: string;
    resourceServer?: { accessTokenTTL?: number; audience?: string };
  }

  export type ClientMetadata = {
    client_id: string;
    client_secret?: string;
    client_secret_expires_at?: number;
    redirect_uris: string[];
    grant_types: string[];
    response_types: string[];
    token_endpoint_auth_method: string;
  };

  export interface ResourceServerInfo {
    scope: string;
    audience: string;
    accessTokenFormat: 'opaque' | 'jwt';
    accessTokenTTL: number;
    jwt?: { sign?: { alg: string } };
  }

  export interface Configuration {
    adapter: new (model: string) => Adapter;
    jwks: { keys: Array<Record<string, unknown>> };
    cookies: { keys: string[] };
    routes: Record<string, string>;
    findAccount(ctx: KoaContext, id: string): Promise<Account | undefined>;
    claims: Record<string, string[]>;
    scopes: string[];
    responseTypes: string[];
    conformIdTokenClaims: boolean;
    rotateRefreshToken: boolean;
    pkce: { required(ctx: KoaContext, client: unknown): boolean };
    ttl: Record<string, number | ((ctx: KoaContext, token: Token) => number)>;
    extraTokenClaims(ctx: KoaContext, token: Token): Promise<Record<string, unknown> | undefined>;
    formats?: { customizers?: { jwt?(ctx: KoaContext, token: Token, jwt: { header?: Record<string, unknown>; payload: Record<string, unknown> }): Promise<void> } };
    renderError(ctx: KoaContext, out: { error: string; error_description?: string }, error: OidcError): Promise<void>;
    features: {
      devInteractions?: { enabled: boolean };
      userinfo?: { enabled: boolean };
      pushedAuthorizationRequests?: { enabled: boolean };
      clientCredentials?: { enabled: boolean };
      introspection?: {
        enabled: boolean;
        allowedPolicy?(ctx: KoaContext, client: { clientId: string }, token: Token): Promise<boolean>;
      };
      resourceIndicators?: {
        enabled: boolean;
        defaultResource?(ctx: KoaContext): Promise<string>;
        useGrantedResource?(): Promise<boolean>;
        getResourceServerInfo?(ctx: KoaContext, resource: string): Promise<ResourceServerInfo>;
      };
    };
  }

  export default class Provider {
    constructor(issuer: string, configuration: Configuration);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    use(middleware: Middleware): this;
    on(event: string, listener: (ctx: KoaContext, err: OidcError) => void): this;
    static readonly errors: { InvalidTarget: new () => Error };
  }
}
