// The footprint benchmark's baseline: a bare fastify server answering /healthz, nothing else, started
// the same way as Mailroom (node <file>, plain JavaScript).
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
await app.listen({ port: Number(process.argv[2]), host: '127.0.0.1' });
