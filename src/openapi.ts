/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the routes that are mounted:
 * each route declares its description ({@linkcode describe}) and its validators
 * (`validate` in `src/validate.ts`) where it is defined, so the document cannot drift
 * from the code. Schemas become JSON Schema in `openapi_schema.ts`.
 */

import type { Hono, MiddlewareHandler } from "hono";
import {
  describeRoute,
  type DescribeRouteOptions,
  generateSpecs,
  loadVendor,
  resolver,
  uniqueSymbol,
} from "hono-openapi";
import * as v from "valibot";
import { findTargetHandler } from "hono/utils/handler";
import { ERROR_STATUS } from "./errors.ts";
import { convertSchema, type JsonObject } from "./openapi_schema.ts";

export type { JsonObject } from "./openapi_schema.ts";

/** The HTTP methods an operation can have. */
export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/** Who may call an operation: a user token, a service key, a service key with `admin`, anyone. */
export type SecurityKind = "user" | "service" | "admin" | "none";

/** How a route describes itself in the document (its inputs come from its validators). */
export interface RouteDescription {
  summary: string;
  /** Longer text shown under the summary. */
  description?: string;
  tags: string[];
  security: SecurityKind;
  /** Responses by status; a 4xx or 5xx without a schema uses the common error body. */
  responses: Record<number, { description: string; schema?: v.GenericSchema }>;
}

/** One generated OpenAPI operation. */
export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security: Record<string, string[]>[];
  parameters?: JsonObject[];
  requestBody?: { required: boolean; content: { "application/json": { schema: JsonObject } } };
  responses: Record<string, JsonObject>;
  /** The {@linkcode SecurityKind} the operation was declared with, for the docs page. */
  "x-relais-security": SecurityKind;
}

/** The generated OpenAPI 3.1 document. */
export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description?: string };
  tags: { name: string }[];
  paths: Record<string, Partial<Record<HttpMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, JsonObject>;
    securitySchemes: Record<string, JsonObject>;
  };
}

/** Options of {@linkcode createOpenApiDocument}. */
export interface OpenApiOptions {
  /**
   * Named schemas: wherever one of these exact schema objects appears, the document
   * refers to `#/components/schemas/<name>` instead of repeating it.
   */
  schemas?: Record<string, v.GenericSchema>;
}

/**
 * The schema of every error response: `{"error": {"code", "message", "details"?,
 * "retry_after_ms"?}}`.
 */
export const ErrorBodySchema = v.object({
  error: v.object({
    code: v.picklist(Object.keys(ERROR_STATUS) as (keyof typeof ERROR_STATUS)[]),
    message: v.string(),
    details: v.optional(v.unknown()),
    /** When a rate-limited caller may try again, in milliseconds (also `Retry-After`, in s). */
    retry_after_ms: v.optional(v.number()),
  }),
});

const ERROR_REF = { $ref: "#/components/schemas/Error" };

const SECURITY_SCHEMES: Record<string, JsonObject> = {
  userAuth: {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A user's JWT (`sub` is the user id).",
  },
  gatewayContext: {
    type: "apiKey",
    in: "header",
    name: "X-Signed-Context",
    description:
      "The API gateway's signed user context, sent with `X-Context-Signature` (HMAC-SHA256) and `X-Context-Kid`.",
  },
  serviceKey: {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
    description: "A backend service's API key; the listed roles are the scopes it needs.",
  },
  serviceBearer: {
    type: "http",
    scheme: "bearer",
    bearerFormat: "API key",
    description: "The same service API key, sent as `Authorization: Bearer <key>`.",
  },
};

const SECURITY: Record<SecurityKind, Record<string, string[]>[]> = {
  user: [{ userAuth: [] }, { gatewayContext: [] }],
  service: [{ serviceKey: [] }, { serviceBearer: [] }],
  admin: [{ serviceKey: ["admin"] }, { serviceBearer: ["admin"] }],
  none: [],
};

// `:name`, optionally followed by a `{regex}` (one nested level of braces) and `?`.
const PATH_PARAM = /:([A-Za-z0-9_]+)(?:\{((?:[^{}]|\{[^{}]*\})*)\})?\??/g;

const METHODS: readonly HttpMethod[] = ["get", "post", "put", "patch", "delete"];

/**
 * A route's description, mounted before its validators and handler:
 * `.get("/v1/x", describe({ summary, tags, security, responses }), validate(…), handler)`.
 */
export function describe(route: RouteDescription): MiddlewareHandler {
  const responses: Record<string, unknown> = {};
  for (const [status, { description, schema }] of Object.entries(route.responses)) {
    responses[status] = schema
      ? { description, content: { "application/json": { schema: resolver(schema) } } }
      : { description };
  }
  const spec = {
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: route.tags,
    security: SECURITY[route.security],
    responses,
    "x-relais-security": route.security,
  };
  return describeRoute(spec as DescribeRouteOptions);
}

/**
 * Marks a mounted route as left out of the document on purpose (page assets, the
 * development-only demo helpers).
 */
export function undocumented(): MiddlewareHandler {
  return describeRoute({ hide: true });
}

// The schema converter is one for the whole process (the library's vendor registry):
// documents are generated one at a time.
let generating: Promise<unknown> = Promise.resolve();

/**
 * Builds the OpenAPI 3.1 document of what `app` mounts: every route with a
 * {@linkcode describe}, its parameters and body from its validators, the answers every
 * guarded or validating route can give, and the common error body.
 */
export function createOpenApiDocument(
  // deno-lint-ignore no-explicit-any
  app: Hono<any, any, any>,
  info: { title: string; version: string; description?: string },
  options: OpenApiOptions = {},
): Promise<OpenApiDocument> {
  const run = generating.then(() => generate(app, info, options));
  generating = run.catch(() => {});
  return run;
}

async function generate(
  // deno-lint-ignore no-explicit-any
  app: Hono<any, any, any>,
  info: { title: string; version: string; description?: string },
  options: OpenApiOptions,
): Promise<OpenApiDocument> {
  assertDescribedOnce(app);
  const definitions = options.schemas ?? {};
  const schemas: Record<string, JsonObject> = {};
  const convert = (schema: v.GenericSchema, prefix: string) =>
    convertSchema(schema, { prefix, definitions, components: schemas });

  schemas.Error = convert(ErrorBodySchema, "Error");
  for (const [name, schema] of Object.entries(definitions)) {
    // Converted on its own, a named schema is a `$ref` to the definition it just hoisted.
    const { $ref, ...rest } = convert(schema, name);
    schemas[name] = $ref === `#/components/schemas/${name}`
      ? { ...schemas[name], ...rest }
      : { ...($ref === undefined ? {} : { $ref }), ...rest };
  }

  let conversions = 0;
  loadVendor(
    "valibot",
    {
      toOpenAPISchema: (schema: unknown) =>
        Promise.resolve(convert(schema as v.GenericSchema, `Schema${++conversions}`)),
    } as Parameters<typeof loadVendor>[1],
  );
  const specs = await generateSpecs(app, {
    documentation: { info },
    // `/openapi.json` and `/sdk/relais.js` are operations, not static files.
    excludeStaticFile: false,
    defaultValidationErrorResponse: {
      description: "The request is invalid (the details name each field)",
    },
  });

  const paths: OpenApiDocument["paths"] = {};
  const tags: string[] = [];
  for (const [path, item] of Object.entries(specs.paths ?? {})) {
    for (const method of METHODS) {
      const operation = (item as Record<string, JsonObject | undefined> | undefined)?.[method];
      if (!operation) continue;
      const security = operation["x-relais-security"] as SecurityKind | undefined;
      if (security === undefined) {
        throw new Error(
          `Cannot build the OpenAPI document: "${method.toUpperCase()} ${path}" has validators but no description`,
        );
      }
      const parameters = parametersOf(path, (operation.parameters ?? []) as JsonObject[]);
      const operationTags = operation.tags as string[];
      (paths[path] ??= {})[method] = {
        operationId: toOperationId(method, path),
        summary: operation.summary as string,
        ...(operation.description ? { description: operation.description as string } : {}),
        tags: operationTags,
        security: SECURITY[security],
        ...(parameters.length > 0 ? { parameters } : {}),
        ...(operation.requestBody
          ? { requestBody: operation.requestBody as OpenApiOperation["requestBody"] & object }
          : {}),
        responses: responsesOf(
          security,
          operation.responses as Record<string, JsonObject>,
        ),
        "x-relais-security": security,
      };
      for (const tag of operationTags) if (!tags.includes(tag)) tags.push(tag);
    }
  }

  return {
    openapi: "3.1.0",
    info,
    tags: tags.map((name) => ({ name })),
    paths,
    components: { schemas, securitySchemes: SECURITY_SCHEMES },
  };
}

/** Two descriptions of one method and path: the second route would never answer. */
// deno-lint-ignore no-explicit-any
function assertDescribedOnce(app: Hono<any, any, any>): void {
  const described = new Set<string>();
  for (const route of app.routes) {
    if (route.method === "ALL") continue;
    const meta = (findTargetHandler(route.handler) as unknown as Record<symbol, unknown>)[
      uniqueSymbol
    ];
    if (typeof meta !== "object" || meta === null || !("spec" in meta)) continue;
    const key = `${route.method} ${route.path}`;
    if (described.has(key)) {
      throw new Error(`Cannot build the OpenAPI document: "${key}" is declared twice`);
    }
    described.add(key);
  }
}

/** Converts a Hono path (`/v1/users/:id`) to an OpenAPI path (`/v1/users/{id}`). */
export function toOpenApiPath(path: string): string {
  return path.replace(PATH_PARAM, (_, name: string) => `{${name}}`);
}

function toOperationId(method: HttpMethod, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return [method, ...words].join("_");
}

/** Path parameters first, in the path's order, then the others; `required` always said. */
function parametersOf(path: string, declared: JsonObject[]): JsonObject[] {
  const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => name);
  const rank = (p: JsonObject) => p.in === "path" ? inPath.indexOf(String(p.name)) : inPath.length;
  return [...declared].sort((a, b) => rank(a) - rank(b)).map((p) => ({
    name: p.name,
    in: p.in,
    required: p.in === "path" || p.required === true,
    ...(typeof p.description === "string" ? { description: p.description } : {}),
    schema: p.schema ?? {},
  }));
}

function responsesOf(
  security: SecurityKind,
  responses: Record<string, JsonObject>,
): Record<string, JsonObject> {
  const declared: Record<string, JsonObject> = { ...responses };
  // The answers every guarded route can give, unless declared otherwise.
  if (security !== "none") {
    declared[400] ??= {
      description: "A service key (X-API-Key) sent beside a user credential: send one kind only",
    };
    declared[401] ??= { description: "Credentials are missing or invalid" };
    declared[429] ??= {
      description:
        "Rate limited (retry_after_ms); also a failing credential from a client address past RELAIS_RATE_AUTH_FAILURES (a valid one is never refused)",
    };
  }
  if (security === "service" || security === "admin") {
    declared[403] ??= { description: "The key lacks the required scope" };
  }
  const result: Record<string, JsonObject> = {};
  for (const [status, response] of Object.entries(declared)) {
    result[status] = response.content === undefined && Number(status) >= 400
      ? { ...response, content: { "application/json": { schema: ERROR_REF } } }
      : response;
  }
  return result;
}
