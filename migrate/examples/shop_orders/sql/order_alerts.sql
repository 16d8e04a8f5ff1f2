-- The reference pipeline's batch SQL (MariaDB dialect). Thresholds as in ../rules.py;
-- tests/unit/migrate/examples/test_shop_orders.py holds the two together.
SELECT order_id, customer_id, amount FROM orders WHERE amount > 500
