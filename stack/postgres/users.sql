-- docker-compose only: the least-privilege Debezium role with the stack's default local
-- password, and the grants `dualrun stack up` gives it. `dualrun stack up` creates the
-- same role with the password from $DUALRUN_DEBEZIUM_PASSWORD instead. Runs after
-- schema.sql, as the image's POSTGRES_USER (dualrun, the table owner).
CREATE ROLE debezium LOGIN REPLICATION PASSWORD 'debezium';
GRANT CONNECT ON DATABASE shop TO debezium;
GRANT USAGE ON SCHEMA shop TO debezium;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO debezium;
ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO debezium;
ALTER ROLE dualrun IN DATABASE shop SET search_path = shop, public;
