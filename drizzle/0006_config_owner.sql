ALTER TABLE "session_configs" ADD COLUMN "env" text;
-- Hand-written note: every config that existed before this migration is left with env null,
-- that is product-wide (the safe choice: every env keeps using it; only the admin key may now
-- change or delete it). See the README's upgrade note under "Keys and who may do what".
