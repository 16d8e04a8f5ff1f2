-- docker-compose only: the least-privilege Debezium user with the stack's default
-- local password. `dualrun stack up` creates the same user with the password from
-- $DUALRUN_DEBEZIUM_PASSWORD instead.
CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY 'debezium';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'debezium'@'%';
GRANT ALL PRIVILEGES ON *.* TO 'dualrun'@'%' WITH GRANT OPTION;
