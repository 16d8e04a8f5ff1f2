-- The reference pipeline's batch SQL (MariaDB dialect). Thresholds as in ../rules.py;
-- tests/unit/migrate/examples/test_shop_orders.py holds the two together.
SELECT o.order_id, o.customer_id, c.name AS customer_name, c.tier AS customer_tier,
       o.amount, o.status,
       CASE WHEN o.amount > 200 THEN 'GOLD'
            WHEN o.amount > 100 THEN 'SILVER' ELSE 'BRONZE' END AS loyalty_tier,
       DATE(o.created_at) AS order_day, o.created_at, o.updated_at
FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
