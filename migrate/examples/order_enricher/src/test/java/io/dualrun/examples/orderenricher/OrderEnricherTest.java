package io.dualrun.examples.orderenricher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The topology under TopologyTestDriver (no broker): outputs as the batch SQL defines them, the position header
 * of the triggering change on every output record, and each deliberate defect with its own visible effect.
 */
class OrderEnricherTest {
    private static final String DAY = "2026-11-30";
    private static final long NOON = 1_796_040_000_000L; // 2026-11-30T12:00:00Z in epoch ms

    @TempDir
    Path stateDir;

    private TopologyTestDriver driver;
    private TestInputTopic<byte[], byte[]> orders;
    private TestInputTopic<byte[], byte[]> customers;
    private TestOutputTopic<byte[], byte[]> enriched;
    private TestOutputTopic<byte[], byte[]> alerts;
    private TestOutputTopic<byte[], byte[]> revenue;

    private void start(String... extra) {
        List<String> args = new ArrayList<>(List.of("--bootstrap-servers", "unused:9092"));
        args.addAll(List.of(extra));
        Options options = Options.parse(args);
        Properties config = OrderEnricher.config(options);
        config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        config.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        driver = new TopologyTestDriver(EnricherTopology.build(options), config);
        ByteArraySerializer in = new ByteArraySerializer();
        ByteArrayDeserializer out = new ByteArrayDeserializer();
        orders = driver.createInputTopic(options.ordersTopic(), in, in);
        customers = driver.createInputTopic(options.customersTopic(), in, in);
        enriched = driver.createOutputTopic(options.enrichedTopic(), out, out);
        alerts = driver.createOutputTopic(options.alertsTopic(), out, out);
        revenue = driver.createOutputTopic(options.revenueTopic(), out, out);
    }

    @AfterEach
    void close() {
        if (driver != null) {
            driver.close();
        }
    }

    // -- Debezium change events, as the JSON converter (schemas on) and the HeaderFrom SMT write them ------------

    private static final String ORDER_ROW_SCHEMA = """
            {"type":"struct","optional":true,"fields":[
              {"type":"int64","optional":false,"field":"order_id"},
              {"type":"int32","optional":false,"field":"customer_id"},
              {"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal",
               "parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},
              {"type":"string","optional":false,"field":"status"},
              {"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","field":"created_at"},
              {"type":"int64","optional":false,"name":"io.debezium.time.Timestamp","field":"updated_at"}]}""";
    private static final String CUSTOMER_ROW_SCHEMA = """
            {"type":"struct","optional":true,"fields":[
              {"type":"int32","optional":false,"field":"id"},
              {"type":"string","optional":false,"field":"name"},
              {"type":"string","optional":false,"field":"tier"}]}""";

    private static String envelope(String table, String rowSchema, String op, String before, String after, long pos) {
        String schema = "{\"type\":\"struct\",\"fields\":["
                + rowSchema.replaceFirst("\\{", "{\"field\":\"before\",") + ","
                + rowSchema.replaceFirst("\\{", "{\"field\":\"after\",") + ","
                + "{\"type\":\"struct\",\"field\":\"source\",\"fields\":[]},"
                + "{\"type\":\"string\",\"field\":\"op\"}]}";
        return "{\"schema\":" + schema + ",\"payload\":{\"before\":" + before + ",\"after\":" + after
                + ",\"source\":" + source(table, pos) + ",\"op\":\"" + op + "\"}}";
    }

    private static String source(String table, long pos) {
        return "{\"connector\":\"mariadb\",\"db\":\"shop\",\"table\":\"" + table + "\",\"file\":\"mysql-bin.000003\",\"pos\":"
                + pos + ",\"row\":0,\"gtid\":\"0-1-" + pos + "\"}";
    }

    private static String cents(String amount) {
        BigDecimal value = new BigDecimal(amount);
        return Base64.getEncoder().encodeToString(value.unscaledValue().toByteArray());
    }

    private static String orderRow(long id, long customer, String amount, String status) {
        return "{\"order_id\":" + id + ",\"customer_id\":" + customer + ",\"amount\":\"" + cents(amount)
                + "\",\"status\":\"" + status + "\",\"created_at\":" + (NOON + 123) + ",\"updated_at\":" + (NOON + 456) + "}";
    }

    private static String customerRow(long id, String name, String tier) {
        return "{\"id\":" + id + ",\"name\":\"" + name + "\",\"tier\":\"" + tier + "\"}";
    }

    private static RecordHeaders position(String table, long pos) {
        RecordHeaders headers = new RecordHeaders();
        headers.add("dbz.source", source(table, pos).getBytes(StandardCharsets.UTF_8));
        return headers;
    }

    private static byte[] key(String column, long id) {
        return ("{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\",\"optional\":false,\"field\":\""
                + column + "\"}]},\"payload\":{\"" + column + "\":" + id + "}}").getBytes(StandardCharsets.UTF_8);
    }

    private void order(String op, long id, String before, String after, long pos) {
        String value = envelope("orders", ORDER_ROW_SCHEMA, op, before, after, pos);
        orders.pipeInput(new TestRecord<>(key("order_id", id), value.getBytes(StandardCharsets.UTF_8), position("orders", pos)));
    }

    private void deleteOrder(long id, String before, long pos) {
        order("d", id, before, "null", pos);
        // Debezium's tombstone after the delete: no value, and no position (the SMT skips tombstones).
        orders.pipeInput(new TestRecord<>(key("order_id", id), null));
    }

    private void customer(String op, long id, String before, String after, long pos) {
        String value = envelope("customers", CUSTOMER_ROW_SCHEMA, op, before, after, pos);
        customers.pipeInput(new TestRecord<>(key("id", id), value.getBytes(StandardCharsets.UTF_8), position("customers", pos)));
    }

    // -- reading outputs ----------------------------------------------------------------------------------------

    /** An output record: JSON key, JSON value (null for a tombstone) and the `pos` of its dbz.source header. */
    private record Out(JsonNode key, JsonNode value, long pos) {
        String text(String column) {
            return value.get(column).asText();
        }
    }

    private static List<Out> read(TestOutputTopic<byte[], byte[]> topic) {
        List<Out> out = new ArrayList<>();
        for (TestRecord<byte[], byte[]> record : topic.readRecordsToList()) {
            Header header = record.headers().lastHeader("dbz.source");
            assertTrue(header != null, "output record without the position header: " + record);
            try {
                JsonNode source = Json.MAPPER.readTree(header.value());
                out.add(new Out(Json.MAPPER.readTree(record.key()),
                        record.value() == null ? null : Json.MAPPER.readTree(record.value()), source.get("pos").asLong()));
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }
        return out;
    }

    private static Out last(List<Out> records) {
        return records.get(records.size() - 1);
    }

    // -- the correct job ----------------------------------------------------------------------------------------

    @Test
    void ordersAreEnrichedAlertedAndAggregatedWithTheBatchColumnsAndTheirPositions() {
        start();
        customer("r", 7, "null", customerRow(7, "Ada", "GOLD"), 100);
        order("c", 1, "null", orderRow(1, 7, "250.00", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "600.10", "NEW"), 120);

        List<Out> rows = read(enriched);
        assertEquals(2, rows.size());
        Out first = rows.get(0);
        assertEquals(1, first.key().asLong());
        assertEquals(110, first.pos());
        ObjectNode expected = Json.MAPPER.createObjectNode()
                .put("order_id", 1).put("customer_id", 7).put("customer_name", "Ada").put("customer_tier", "GOLD")
                .put("amount", "250.00").put("status", "NEW").put("loyalty_tier", "GOLD").put("order_day", DAY)
                .put("created_at", DAY + "T12:00:00.123").put("updated_at", DAY + "T12:00:00.456");
        assertEquals(expected, first.value());
        assertEquals(120, rows.get(1).pos());

        List<Out> alerted = read(alerts);
        Out alert = last(alerted);
        assertEquals(2, alert.key().asLong());
        assertEquals("600.10", alert.text("amount"));
        assertEquals(7, alert.value().get("customer_id").asLong());
        assertEquals(120, alert.pos());
        // Order 1 is no alert: at most a tombstone for its key, never a row.
        alerted.stream().filter(a -> a.key().asLong() == 1).forEach(a -> assertNull(a.value()));

        Out day = last(read(revenue));
        assertEquals(Json.MAPPER.createObjectNode().put("customer_id", 7).put("order_day", DAY), day.key());
        assertEquals(2, day.value().get("order_count").asLong());
        assertEquals("850.10", day.text("revenue"));
        assertEquals(120, day.pos());
    }

    @Test
    void aCustomerChangeReEmitsThatCustomersOrdersAtTheCustomersPosition() {
        start();
        customer("c", 7, "null", customerRow(7, "Ada", "GOLD"), 100);
        order("c", 1, "null", orderRow(1, 7, "50.00", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "150.00", "NEW"), 120);
        read(enriched);
        read(revenue);
        customer("u", 7, customerRow(7, "Ada", "GOLD"), customerRow(7, "Ada L.", "SILVER"), 130);

        List<Out> rows = read(enriched);
        assertEquals(2, rows.size());
        for (Out row : rows) {
            assertEquals("Ada L.", row.text("customer_name"));
            assertEquals("SILVER", row.text("customer_tier"));
            assertEquals(130, row.pos());
        }
        assertTrue(read(revenue).isEmpty(), "a customer change does not touch daily revenue");
    }

    @Test
    void anOrderProcessedAfterALaterCustomerChangeIsJoinedAsOfItsOwnPositionThenAsOfTheCustomers() {
        // Kafka Streams picks between topics by timestamp; equal timestamps may come out of binlog order.
        start();
        customer("c", 7, "null", customerRow(7, "Ada", "GOLD"), 100);
        customer("u", 7, customerRow(7, "Ada", "GOLD"), customerRow(7, "Ada L.", "SILVER"), 130);
        order("c", 1, "null", orderRow(1, 7, "50.00", "NEW"), 120);
        List<Out> rows = read(enriched);
        assertEquals(List.of("Ada", "Ada L."), rows.stream().map(r -> r.text("customer_name")).toList());
        assertEquals(List.of(120L, 130L), rows.stream().map(Out::pos).toList());
        customer("u", 7, customerRow(7, "Ada L.", "SILVER"), customerRow(7, "Ada L.", "BRONZE"), 140);
        Out later = last(read(enriched));
        assertEquals("BRONZE", later.text("customer_tier"));
        assertEquals(140, later.pos(), "once indexed, the order follows its customer's changes");
    }

    @Test
    void loyaltyTiersAreStrictlyAboveTheThresholds() {
        start();
        order("c", 1, "null", orderRow(1, 7, "200.00", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "100.00", "NEW"), 111);
        order("c", 3, "null", orderRow(3, 7, "200.01", "NEW"), 112);
        List<Out> rows = read(enriched);
        assertEquals(List.of("SILVER", "BRONZE", "GOLD"), rows.stream().map(r -> r.text("loyalty_tier")).toList());
        assertNull(rows.get(0).value().get("customer_name").textValue(), "LEFT JOIN: no customer, NULL name");
    }

    @Test
    void aDeleteIsATombstoneOnEveryOutputAtTheDeletesPosition() {
        start();
        customer("c", 7, "null", customerRow(7, "Ada", "GOLD"), 100);
        order("c", 1, "null", orderRow(1, 7, "700.00", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "10.00", "NEW"), 120);
        read(enriched);
        read(alerts);
        read(revenue);
        deleteOrder(1, orderRow(1, 7, "700.00", "NEW"), 140);

        Out gone = last(read(enriched));
        assertEquals(1, gone.key().asLong());
        assertNull(gone.value());
        assertEquals(140, gone.pos());
        Out unalerted = last(read(alerts));
        assertNull(unalerted.value());
        assertEquals(140, unalerted.pos());
        Out day = last(read(revenue));
        assertEquals(1, day.value().get("order_count").asLong());
        assertEquals("10.00", day.text("revenue"));
        assertEquals(140, day.pos());

        deleteOrder(2, orderRow(2, 7, "10.00", "NEW"), 150);
        Out empty = last(read(revenue));
        assertNull(empty.value(), "a group without orders has no batch row: a tombstone, not zero");
        assertEquals(150, empty.pos());
    }

    @Test
    void cancelledOrdersLeaveDailyRevenueExactly() {
        start();
        order("c", 1, "null", orderRow(1, 7, "0.10", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "0.20", "NEW"), 111);
        assertEquals("0.30", last(read(revenue)).text("revenue"));
        order("u", 2, orderRow(2, 7, "0.20", "NEW"), orderRow(2, 7, "0.20", CANCELLED()), 112);
        Out day = last(read(revenue));
        assertEquals("0.10", day.text("revenue"));
        assertEquals(1, day.value().get("order_count").asLong());
        assertEquals(112, day.pos());
        assertEquals(CANCELLED(), last(read(enriched)).text("status"), "cancelled orders stay enriched");
    }

    private static String CANCELLED() {
        return EnricherTopology.CANCELLED;
    }

    @Test
    void decimalsWithoutSchemasAreReadAsStrings() {
        start();
        String value = "{\"before\":null,\"after\":{\"order_id\":5,\"customer_id\":7,\"amount\":\"12.30\",\"status\":\"NEW\","
                + "\"created_at\":" + NOON + ",\"updated_at\":" + NOON + "},\"source\":" + source("orders", 160) + ",\"op\":\"c\"}";
        orders.pipeInput(new TestRecord<>("{\"order_id\":5}".getBytes(StandardCharsets.UTF_8),
                value.getBytes(StandardCharsets.UTF_8), position("orders", 160)));
        Out row = last(read(enriched));
        assertEquals("12.30", row.text("amount"));
        assertEquals(DAY + "T12:00:00.000", row.text("created_at"));
    }

    // -- the defects: each changes exactly what its name says ---------------------------------------------------

    @Test
    void tierBoundaryDefectComparesWithGreaterOrEqual() {
        start("--defect", "tier-boundary");
        order("c", 1, "null", orderRow(1, 7, "200.00", "NEW"), 110);
        order("c", 2, "null", orderRow(2, 7, "100.00", "NEW"), 111);
        order("c", 3, "null", orderRow(3, 7, "500.00", "NEW"), 112);
        assertEquals(List.of("GOLD", "SILVER", "GOLD"), read(enriched).stream().map(r -> r.text("loyalty_tier")).toList());
        assertTrue(read(alerts).stream().allMatch(a -> a.value() == null), "the alert threshold is untouched");
    }

    @Test
    void dropDeletesDefectKeepsDeletedOrders() {
        start("--defect", "drop-deletes");
        order("c", 1, "null", orderRow(1, 7, "700.00", "NEW"), 110);
        read(enriched);
        read(alerts);
        read(revenue);
        deleteOrder(1, orderRow(1, 7, "700.00", "NEW"), 140);
        assertTrue(read(enriched).isEmpty());
        assertTrue(read(alerts).isEmpty());
        assertTrue(read(revenue).isEmpty());
    }

    @Test
    void ignoreCustomerChangesDefectNeverRevisitsOldOrders() {
        start("--defect", "ignore-customer-changes");
        customer("c", 7, "null", customerRow(7, "Ada", "GOLD"), 100);
        order("c", 1, "null", orderRow(1, 7, "50.00", "NEW"), 110);
        Out first = last(read(enriched));
        assertEquals("Ada", first.text("customer_name"));
        assertEquals(1, first.key().asLong());
        assertEquals(110, first.pos());

        customer("u", 7, customerRow(7, "Ada", "GOLD"), customerRow(7, "Ada L.", "SILVER"), 130);
        assertTrue(read(enriched).isEmpty(), "the stream-table join emits nothing on a customer change");
        order("c", 2, "null", orderRow(2, 7, "60.00", "NEW"), 140);
        Out second = last(read(enriched));
        assertEquals("Ada L.", second.text("customer_name"), "new orders see the new customer row");

        deleteOrder(1, orderRow(1, 7, "50.00", "NEW"), 150);
        Out gone = last(read(enriched));
        assertEquals(1, gone.key().asLong());
        assertNull(gone.value(), "deletes still reach the enriched output: only customer changes are ignored");
        assertEquals(150, gone.pos());
    }

    @Test
    void badArgumentsAreRefusedWithTheirName() {
        IllegalArgumentException error = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> Options.parse(List.of("--bootstrap-servers", "x", "--defect", "nope")));
        assertTrue(error.getMessage().contains("unknown defect nope"));
    }
}
