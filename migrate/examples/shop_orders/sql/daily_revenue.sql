-- The reference pipeline's batch SQL (MariaDB dialect). Thresholds as in ../rules.py;
-- tests/unit/migrate/examples/test_shop_orders.py holds the two together.
SELECT customer_id, DATE(created_at) AS order_day, COUNT(*) AS order_count, SUM(amount) AS revenue
FROM orders WHERE status <> 'CANCELLED'
GROUP BY customer_id, DATE(created_at)
