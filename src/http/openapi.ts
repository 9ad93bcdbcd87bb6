import { z } from 'zod';

type Method = 'get' | 'post' | 'patch' | 'delete';

/**
 * Collects each route's summary and body schema as routes register, so /api/openapi.json is generated
 * from the same zod schemas that validate requests.
 */
export class ApiDoc {
  private readonly paths: Record<string, Record<string, unknown>> = {};

  add(method: Method, path: string, summary: string, body?: z.ZodType): void {
    const oaPath = path.replace(/:(\w+)/g, '{$1}');
    const params = [...path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    (this.paths[oaPath] ??= {})[method] = {
      summary,
      ...(params.length && { parameters: params }),
      ...(body && {
        requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(body, { io: 'input', unrepresentable: 'any' }) } } },
      }),
      responses: {
        default: { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
  }

  document(serverUrl: string) {
    return {
      openapi: '3.1.0',
      info: { title: 'Mailroom API', version: '1' },
      security: [{ session: [] }, { apiKey: [] }],
      servers: [{ url: serverUrl }],
      paths: this.paths,
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: 'mailroom_session' },
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key from Settings > Technical > API Keys' },
        },
        schemas: {
          Error: {
            type: 'object',
            properties: {
              error: {
                type: 'object',
                required: ['code', 'message'],
                properties: {
                  code: { type: 'string', example: 'MR_VALIDATION' },
                  message: { type: 'string' },
                  field: { type: 'string' },
                  fields: { type: 'object', additionalProperties: { type: 'string' } },
                  fix: { type: 'string' },
                },
              },
            },
          },
        },
      },
    };
  }
}
