/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the valibot schemas that the
 * routes validate with, so the document cannot drift from the code.
 */

import * as v from "valibot";
import { toJsonSchema } from "@valibot/to-json-schema";
import { ERROR_STATUS } from "./errors.ts";

/** A JSON Schema (or any JSON object) in the document. */
export type JsonObject = Record<string, unknown>;

/** The HTTP methods an operation can have. */
export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/** Who may call an operation: a user token, a service key, a service key with `admin`, anyone. */
export type SecurityKind = "user" | "service" | "admin" | "none";

/** An object schema of valibot, as accepted for query strings. */
export type ObjectSchemaLike =
  | v.ObjectSchema<v.ObjectEntries, v.ErrorMessage<v.ObjectIssue> | undefined>
  | v.LooseObjectSchema<v.ObjectEntries, v.ErrorMessage<v.LooseObjectIssue> | undefined>
  | v.StrictObjectSchema<v.ObjectEntries, v.ErrorMessage<v.StrictObjectIssue> | undefined>;

/** One operation of the API, described with the schemas its handler validates with. */
export interface Operation {
  method: HttpMethod;
  /** Hono-style path: `/v1/events/:id`; parameters become `{id}`. */
  path: string;
  summary: string;
  /** Longer text shown under the summary. */
  description?: string;
  tags: string[];
  security: SecurityKind;
  /** The JSON request body. */
  body?: v.GenericSchema;
  /** The query string; each entry becomes one query parameter. */
  query?: ObjectSchemaLike;
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

// Refinements and normalisations that do not change the shape a client sends: the
// converter would otherwise report them, and every schema would look lossy.
const SHAPE_PRESERVING_ACTIONS = [
  "check",
  "forward",
  "partial_check",
  "raw_check",
  "brand",
  "readonly",
  "trim",
  "trim_start",
  "trim_end",
  "normalize",
  "to_lower_case",
  "to_upper_case",
];

// `:name`, optionally followed by a `{regex}` (one nested level of braces) and `?`.
const PATH_PARAM = /:([A-Za-z0-9_]+)(?:\{((?:[^{}]|\{[^{}]*\})*)\})?\??/g;

/** Builds the OpenAPI 3.1 document for `operations`. */
export function createOpenApiDocument(
  info: { title: string; version: string; description?: string },
  operations: Operation[],
  options: OpenApiOptions = {},
): OpenApiDocument {
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

  const paths: OpenApiDocument["paths"] = {};
  const tags: string[] = [];
  for (const operation of operations) {
    const path = toOpenApiPath(operation.path);
    const item = paths[path] ??= {};
    if (item[operation.method]) {
      throw new Error(
        `Cannot build the OpenAPI document: "${operation.method.toUpperCase()} ${operation.path}" is declared twice`,
      );
    }
    const operationId = toOperationId(operation.method, operation.path);
    const parameters = [
      ...pathParameters(operation.path),
      ...(operation.query ? queryParameters(convert(operation.query, `${operationId}_query`)) : []),
    ];
    item[operation.method] = {
      operationId,
      summary: operation.summary,
      ...(operation.description ? { description: operation.description } : {}),
      tags: operation.tags,
      security: SECURITY[operation.security],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(operation.body
        ? {
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: convert(operation.body, `${operationId}_body`) },
            },
          },
        }
        : {}),
      responses: responsesOf(
        operation,
        (schema, status) => convert(schema, `${operationId}_${status}`),
      ),
      "x-relais-security": operation.security,
    };
    for (const tag of operation.tags) if (!tags.includes(tag)) tags.push(tag);
  }

  return {
    openapi: "3.1.0",
    info,
    tags: tags.map((name) => ({ name })),
    paths,
    components: { schemas, securitySchemes: SECURITY_SCHEMES },
  };
}

/** Converts a Hono path (`/v1/users/:id`) to an OpenAPI path (`/v1/users/{id}`). */
export function toOpenApiPath(path: string): string {
  return path.replace(PATH_PARAM, (_, name: string) => `{${name}}`);
}

function toOperationId(method: HttpMethod, path: string): string {
  const words = path.replace(PATH_PARAM, "$1").split(/[^A-Za-z0-9]+/).filter(Boolean);
  return [method, ...words].join("_");
}

function pathParameters(path: string): JsonObject[] {
  return [...path.matchAll(PATH_PARAM)].map(([, name, pattern]) => ({
    name,
    in: "path",
    required: true,
    schema: pattern ? { type: "string", pattern: `^(?:${pattern})$` } : { type: "string" },
  }));
}

function queryParameters(schema: JsonObject): JsonObject[] {
  const properties = (schema.properties ?? {}) as Record<string, JsonObject>;
  const required = (schema.required ?? []) as string[];
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    // An empty schema may be a part the converter could not express: keep its note.
    const note = Object.keys(rest).length === 0 && typeof schema.$comment === "string"
      ? { $comment: schema.$comment }
      : {};
    return {
      name,
      in: "query",
      required: required.includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: { ...rest, ...note },
    };
  });
}

function responsesOf(
  operation: Operation,
  convert: (schema: v.GenericSchema, status: string) => JsonObject,
): Record<string, JsonObject> {
  const declared: Record<string, { description: string; schema?: v.GenericSchema }> = {
    ...operation.responses,
  };
  // The answers every guarded or validating route can give, unless declared otherwise.
  if (operation.body || operation.query) {
    declared[400] ??= { description: "The request is invalid (the details name each field)" };
  }
  if (operation.security !== "none") {
    declared[400] ??= {
      description: "A service key (X-API-Key) sent beside a user credential: send one kind only",
    };
    declared[401] ??= { description: "Credentials are missing or invalid" };
    declared[429] ??= {
      description:
        "Rate limited (retry_after_ms); also a failing credential from a client address past RELAIS_RATE_AUTH_FAILURES (a valid one is never refused)",
    };
  }
  if (operation.security === "service" || operation.security === "admin") {
    declared[403] ??= { description: "The key lacks the required scope" };
  }
  const responses: Record<string, JsonObject> = {};
  for (const [status, response] of Object.entries(declared)) {
    const schema = response.schema
      ? convert(response.schema, status)
      : Number(status) >= 400
      ? ERROR_REF
      : undefined;
    responses[status] = {
      description: response.description,
      ...(schema ? { content: { "application/json": { schema } } } : {}),
    };
  }
  return responses;
}

interface ConvertContext {
  /** Namespaces the converter's numbered definitions (`0`, `1`…) per call. */
  prefix: string;
  definitions: Record<string, v.GenericSchema>;
  /** Receives the definitions a conversion produced. */
  components: Record<string, JsonObject>;
}

/**
 * Converts one schema, never throwing: parts JSON Schema cannot express (dates, custom
 * checks, instances) become `{}`, and the result says so in `$comment`. Definitions are
 * hoisted into `components` because a `#/$defs/…` reference inside an OpenAPI document
 * would resolve against the document root.
 */
function convertSchema(schema: v.GenericSchema, context: ConvertContext): JsonObject {
  const componentName = (id: string) => id in context.definitions ? id : `${context.prefix}_${id}`;
  const base = {
    target: "draft-2020-12",
    typeMode: "input",
    ignoreActions: SHAPE_PRESERVING_ACTIONS,
  } as const;

  let problem: string | undefined;
  try {
    // Without the named definitions: the converter converts all of them on every call,
    // and a problem in one this schema does not use must not be reported here.
    toJsonSchema(schema, { ...base, errorMode: "throw" });
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  let converted: JsonObject;
  try {
    converted = toJsonSchema(schema, {
      ...base,
      errorMode: "ignore",
      definitions: context.definitions,
      overrideRef: ({ referenceId }) => `#/components/schemas/${componentName(referenceId)}`,
    }) as JsonObject;
  } catch (error) {
    converted = {};
    problem ??= error instanceof Error ? error.message : String(error);
  }

  const { $schema: _, $defs, ...result } = converted;
  for (const [id, definition] of Object.entries(($defs ?? {}) as Record<string, JsonObject>)) {
    context.components[componentName(id)] ??= definition;
  }
  if (problem !== undefined) {
    result.$comment = `Partly converted from valibot: ${problem}`;
  }
  return result;
}
