import { defineConfig } from 'drizzle-kit';

// Used by `npm run db:generate` only; the server applies the generated migrations itself at start.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
