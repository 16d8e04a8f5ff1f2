package io.dualrun.examples.orderenricher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.dualrun.examples.orderenricher.Model.Customer;
import io.dualrun.examples.orderenricher.Model.CustomerState;
import io.dualrun.examples.orderenricher.Model.Day;
import io.dualrun.examples.orderenricher.Model.Order;
import io.dualrun.examples.orderenricher.Model.OrderChange;
import io.dualrun.examples.orderenricher.Model.OrderIds;
import io.dualrun.examples.orderenricher.Model.Revenue;
import java.math.BigDecimal;
import java.util.List;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The topology: Debezium change topics of shop.orders and shop.customers in; orders-enriched, order-alerts and
 * daily-revenue out, with the batch SQL's semantics (migrate/examples/shop_orders/sql).
 *
 * <ul>
 *   <li>orders_enriched: orders LEFT JOIN customers, change by change ({@link EnrichProcessor}), so a customer
 *       change re-emits that customer's orders (the batch job re-joins every night). Key: the order id.
 *   <li>order_alerts: orders with amount above the alert threshold; an order that leaves the set is a tombstone.
 *   <li>daily_revenue: per (customer_id, DATE(created_at)), COUNT(*) and SUM(amount) of orders not CANCELLED, as a
 *       KTable aggregation with a subtractor; a group that empties is a tombstone, as the GROUP BY has no row.
 * </ul>
 *
 * No code touches record headers: Kafka Streams forwards the triggering input record's headers (Debezium's
 * position, put there by the connector's HeaderFrom SMT) to every output record. dualrun checks that on each run.
 */
final class EnricherTopology {
    static final String CANCELLED = "CANCELLED";

    private static final Serde<Long> ID = Json.serde(Long.class); // keys are JSON scalars on every topic
    private static final Serde<Order> ORDER = Json.serde(Order.class);
    private static final Serde<Customer> CUSTOMER = Json.serde(Customer.class);
    private static final Serde<JsonNode> NODE = Json.node();

    private EnricherTopology() {}

    static Topology build(Options options) {
        StreamsBuilder builder = new StreamsBuilder();
        // One source for both change topics: one task takes their records in timestamp order, which is the
        // order Debezium's single task emitted them in (a topic may have only one source in a topology).
        KStream<JsonNode, JsonNode> changes = builder
                .stream(List.of(options.ordersTopic(), options.customersTopic()),
                        Consumed.with(NODE, NODE).withName("changes"))
                // Debezium follows each delete with a tombstone for compaction: it repeats the delete and carries
                // no position header (the SMT skips tombstones), so it must not reach an output.
                .filter((key, value) -> value != null, Named.as("skip-tombstones"));
        KTable<Long, Order> orders = orders(changes, options);

        if (options.defect("ignore-customer-changes")) {
            enrichedByStreamTableJoin(changes, customers(changes), options);
        } else {
            for (String store : List.of(EnrichProcessor.ORDERS, EnrichProcessor.CUSTOMERS, EnrichProcessor.INDEX)) {
                Serde<?> values = switch (store) {
                    case EnrichProcessor.ORDERS -> ORDER;
                    case EnrichProcessor.CUSTOMERS -> Json.serde(CustomerState.class);
                    default -> Json.serde(OrderIds.class);
                };
                builder.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(store), ID, values)
                        .withCachingDisabled());
            }
            changes.process(() -> new EnrichProcessor(options), Named.as("enrich"),
                            EnrichProcessor.ORDERS, EnrichProcessor.CUSTOMERS, EnrichProcessor.INDEX)
                    .to(options.enrichedTopic(), Produced.with(ID, NODE).withName("orders-enriched-output"));
        }

        orders.filter((id, order) -> order.amount().compareTo(options.alertAbove()) > 0, Named.as("alerts"))
                .toStream(Named.as("alert-changes"))
                .mapValues(EnricherTopology::alert, Named.as("alert-values"))
                .to(options.alertsTopic(), Produced.with(ID, NODE).withName("order-alerts-output"));

        orders.filter((id, order) -> !CANCELLED.equals(order.status()), Named.as("orders-not-cancelled"))
                .groupBy((id, order) -> KeyValue.pair(new Day(order.customerId(), order.orderDay()), order),
                        Grouped.with("orders-by-day", Json.serde(Day.class), ORDER))
                .aggregate(
                        () -> new Revenue(0, BigDecimal.ZERO),
                        (day, order, total) -> new Revenue(total.orderCount() + 1, total.revenue().add(order.amount())),
                        (day, order, total) -> total.orderCount() == 1
                                ? null
                                : new Revenue(total.orderCount() - 1, total.revenue().subtract(order.amount())),
                        Named.as("daily-revenue"),
                        Materialized.<Day, Revenue, KeyValueStore<Bytes, byte[]>>as("daily-revenue")
                                .withKeySerde(Json.serde(Day.class)).withValueSerde(Json.serde(Revenue.class)))
                .toStream(Named.as("daily-revenue-changes"))
                .map((day, revenue) -> KeyValue.<JsonNode, JsonNode>pair(Json.MAPPER.valueToTree(day), revenue(day, revenue)),
                        Named.as("daily-revenue-rows"))
                .to(options.revenueTopic(), Produced.with(NODE, NODE).withName("daily-revenue-output"));
        return builder.build();
    }

    /** Orders by id; a delete is a tombstone (unless the drop-deletes defect ignores it). */
    private static KTable<Long, Order> orders(KStream<JsonNode, JsonNode> changes, Options options) {
        return changes
                .filter((key, value) -> "orders".equals(Debezium.table(value)), Named.as("orders-changes"))
                .mapValues(Debezium::change, Named.as("orders-decode"))
                .filter((key, change) -> !(change.isDelete() && options.defect("drop-deletes")), Named.as("orders-deletes"))
                .map((key, change) -> KeyValue.pair(Debezium.key(key, "order_id"),
                        change.isDelete() ? null : Order.of(change.after())), Named.as("orders-by-id"))
                .toTable(Named.as("orders"), Materialized.<Long, Order, KeyValueStore<Bytes, byte[]>>as("orders")
                        .withKeySerde(ID).withValueSerde(ORDER));
    }

    /** Customers by id (the ignore-customer-changes defect joins against this table). */
    private static KTable<Long, Customer> customers(KStream<JsonNode, JsonNode> changes) {
        return changes
                .filter((key, value) -> "customers".equals(Debezium.table(value)), Named.as("customers-changes"))
                .map((key, value) -> {
                    Debezium.Change change = Debezium.change(value);
                    return KeyValue.pair(Debezium.key(key, "id"), change.isDelete() ? null : Customer.of(change.after()));
                }, Named.as("customers-by-id"))
                .toTable(Named.as("customers"), Materialized.<Long, Customer, KeyValueStore<Bytes, byte[]>>as("customers")
                        .withKeySerde(ID).withValueSerde(CUSTOMER));
    }

    /**
     * The ignore-customer-changes defect: the article's KStream-KTable join, which never revisits old orders. Order
     * changes, deletes included (keyed by the customer of their before image), take one path, so an order's
     * insert and its delete reach the output in the order they happened.
     */
    private static void enrichedByStreamTableJoin(KStream<JsonNode, JsonNode> changes, KTable<Long, Customer> customers,
            Options options) {
        changes.filter((key, value) -> "orders".equals(Debezium.table(value)), Named.as("order-stream"))
                .map((key, value) -> {
                    Debezium.Change change = Debezium.change(value);
                    Order order = change.isDelete() ? null : Order.of(change.after());
                    long customerId = change.current().longValue("customer_id");
                    return KeyValue.pair(customerId, new OrderChange(Debezium.key(key, "order_id"), order));
                }, Named.as("orders-by-customer"))
                .leftJoin(customers, (change, customer) -> KeyValue.pair(change.orderId(),
                                change.order() == null ? null : enriched(change.order(), customer, options)),
                        Joined.with(ID, Json.serde(OrderChange.class), CUSTOMER, "orders-stream-join-customers"))
                .map((customerId, row) -> row, Named.as("enriched-by-order"))
                .to(options.enrichedTopic(), Produced.with(ID, NODE).withName("orders-enriched-output"));
    }

    /** A row of orders_enriched, with the batch SQL's column names; decimals as JSON strings. */
    static JsonNode enriched(Order order, Customer customer, Options options) {
        ObjectNode row = Json.MAPPER.createObjectNode();
        row.put("order_id", order.orderId());
        row.put("customer_id", order.customerId());
        row.put("customer_name", customer == null ? null : customer.name());
        row.put("customer_tier", customer == null ? null : customer.tier());
        row.put("amount", order.amount().toPlainString());
        row.put("status", order.status());
        row.put("loyalty_tier", loyaltyTier(order.amount(), options));
        row.put("order_day", order.orderDay());
        row.put("created_at", order.createdAt());
        row.put("updated_at", order.updatedAt());
        return row;
    }

    /** The article's tier by amount: {@code > gold} GOLD, {@code > silver} SILVER, else BRONZE. */
    static String loyaltyTier(BigDecimal amount, Options options) {
        boolean inclusive = options.defect("tier-boundary");
        if (above(amount, options.goldAbove(), inclusive)) {
            return "GOLD";
        }
        return above(amount, options.silverAbove(), inclusive) ? "SILVER" : "BRONZE";
    }

    private static boolean above(BigDecimal amount, BigDecimal threshold, boolean inclusive) {
        int sign = amount.compareTo(threshold);
        return inclusive ? sign >= 0 : sign > 0;
    }

    private static JsonNode alert(Order order) {
        if (order == null) {
            return null;
        }
        ObjectNode row = Json.MAPPER.createObjectNode();
        row.put("order_id", order.orderId());
        row.put("customer_id", order.customerId());
        row.put("amount", order.amount().toPlainString());
        return row;
    }

    private static JsonNode revenue(Day day, Revenue revenue) {
        if (revenue == null) {
            return null;
        }
        ObjectNode row = Json.MAPPER.createObjectNode();
        row.put("customer_id", day.customerId());
        row.put("order_day", day.orderDay());
        row.put("order_count", revenue.orderCount());
        row.put("revenue", revenue.revenue().toPlainString());
        return row;
    }
}
