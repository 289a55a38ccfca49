-- The memory of governed runs gets its own user and database on the compose PostgreSQL (the
-- worker and the API create the tables themselves, with migrations). Safe to run any number of
-- times: psql runs each generated statement only when the user or database is missing.
-- Example credentials for a private compose network; change them (and STEPGATE_DATABASE_URL in
-- docker-compose.yml) for anything shared.
SELECT 'CREATE ROLE stepgate LOGIN PASSWORD ''stepgate'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stepgate')\gexec
SELECT 'CREATE DATABASE stepgate_memory OWNER stepgate'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'stepgate_memory')\gexec
