// The benchmark's yardstick: a stock graphql-yoga with default options and a one-field schema.
import { createServer } from 'node:http';
import { createSchema, createYoga } from 'graphql-yoga';

const yoga = createYoga({
  schema: createSchema({
    typeDefs: 'type Query { hello: String }',
    resolvers: { Query: { hello: () => 'world' } },
  }),
  logging: false,
});
const port = Number(process.argv[2] ?? 4100);
createServer(yoga).listen(port, '127.0.0.1', () => {
  process.stdout.write(`reference listening on ${port}\n`);
});
