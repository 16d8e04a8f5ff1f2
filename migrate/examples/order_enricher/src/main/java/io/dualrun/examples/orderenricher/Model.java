package io.dualrun.examples.orderenricher;

import com.fasterxml.jackson.annotation.JsonFormat;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.math.BigDecimal;
import java.util.List;

/** The job's own record types, as they travel through its state stores and internal topics (JSON). */
final class Model {
    private Model() {}

    /** A row of shop.orders. Timestamps are ISO-8601 text; the amount stays exact (written as a JSON string). */
    record Order(
            @JsonProperty("order_id") long orderId,
            @JsonProperty("customer_id") long customerId,
            @JsonProperty("amount") @JsonFormat(shape = JsonFormat.Shape.STRING) BigDecimal amount,
            @JsonProperty("status") String status,
            @JsonProperty("order_day") String orderDay,
            @JsonProperty("created_at") String createdAt,
            @JsonProperty("updated_at") String updatedAt) {

        static Order of(Debezium.Row row) {
            String createdAt = row.timestamp("created_at");
            return new Order(row.longValue("order_id"), row.longValue("customer_id"), row.decimal("amount"),
                    row.text("status"), createdAt == null ? null : Debezium.day(createdAt), createdAt,
                    row.timestamp("updated_at"));
        }
    }

    /** A row of shop.customers. */
    record Customer(@JsonProperty("id") long id, @JsonProperty("name") String name, @JsonProperty("tier") String tier) {
        static Customer of(Debezium.Row row) {
            return new Customer(row.longValue("id"), row.text("name"), row.text("tier"));
        }
    }

    /** A record header kept in state (Jackson writes the bytes as base64). */
    record StoredHeader(@JsonProperty("key") String key, @JsonProperty("value") byte[] value) {}

    /**
     * A customer as the enrich processor keeps it: the current row (null once deleted) with the binlog position
     * and headers of the change that set it, and the row before that change with its position.
     */
    record CustomerState(
            @JsonProperty("current") Customer current,
            @JsonProperty("position") long[] position,
            @JsonProperty("headers") List<StoredHeader> headers,
            @JsonProperty("previous") Customer previous,
            @JsonProperty("previous_position") long[] previousPosition) {}

    /** An order change on its way to the KStream-KTable join (the defect variant); order null: a delete. */
    record OrderChange(@JsonProperty("order_id") long orderId, @JsonProperty("order") Order order) {}

    /** The ids of one customer's orders, ascending (the enrich processor's index). */
    record OrderIds(@JsonProperty("ids") List<Long> ids) {}

    /** The daily_revenue key: also the output topic's JSON key object. */
    record Day(@JsonProperty("customer_id") long customerId, @JsonProperty("order_day") String orderDay) {}

    /** A daily_revenue aggregate; null once its last order left the group (the batch GROUP BY has no row). */
    record Revenue(
            @JsonProperty("order_count") long orderCount,
            @JsonProperty("revenue") @JsonFormat(shape = JsonFormat.Shape.STRING) BigDecimal revenue) {}
}
