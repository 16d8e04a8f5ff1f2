package io.dualrun.examples.orderenricher;

import com.fasterxml.jackson.annotation.JsonFormat;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.math.BigDecimal;

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

    /** The daily_revenue key: also the output topic's JSON key object. */
    record Day(@JsonProperty("customer_id") long customerId, @JsonProperty("order_day") String orderDay) {}

    /** A daily_revenue aggregate; null once its last order left the group (the batch GROUP BY has no row). */
    record Revenue(
            @JsonProperty("order_count") long orderCount,
            @JsonProperty("revenue") @JsonFormat(shape = JsonFormat.Shape.STRING) BigDecimal revenue) {}
}
