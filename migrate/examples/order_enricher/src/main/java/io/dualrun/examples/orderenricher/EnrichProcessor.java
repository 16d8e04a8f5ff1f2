package io.dualrun.examples.orderenricher;

import com.fasterxml.jackson.databind.JsonNode;
import io.dualrun.examples.orderenricher.Model.Customer;
import io.dualrun.examples.orderenricher.Model.CustomerState;
import io.dualrun.examples.orderenricher.Model.Order;
import io.dualrun.examples.orderenricher.Model.OrderIds;
import io.dualrun.examples.orderenricher.Model.StoredHeader;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * orders LEFT JOIN customers, change by change, in the order the change events arrive: an order change emits
 * that order joined with its customer as of now; a customer change re-emits every order of that customer, as
 * the batch job re-joins every night.
 *
 * <p>Why not the DSL's foreign-key join: it drops an order's result when the order changes again before the
 * result came back through its subscription topics, so some versions never reach the output; and its two
 * sides reach the join through different topics, so an order can be joined with a customer change that came
 * after it. Here both change topics feed one task (one source, records picked in timestamp order) and every
 * change emits at once: each output record is the join as of the change that triggered it, and Kafka Streams
 * forwards that change's headers (its position) with it.
 *
 * <p>One case needs more: Kafka Streams picks between the two topics by record timestamp, and Debezium stamps
 * many changes with the same millisecond, so a customer change may be processed before an order change that
 * MariaDB committed earlier. Joining that order with the customer as it is now would write a record whose data
 * includes a change after its position, which no check of positions can see. So the order is joined with the
 * customer as of the order's position (the row before that change), and then once more with the current row,
 * under the headers of the customer change that missed it. That is the only place the code handles headers.
 */
final class EnrichProcessor implements Processor<JsonNode, JsonNode, Long, JsonNode> {
    static final String ORDERS = "enrich-orders";
    static final String CUSTOMERS = "enrich-customers";
    static final String INDEX = "enrich-customer-orders"; // customer id -> ids of its orders

    private final Options options;
    private ProcessorContext<Long, JsonNode> context;
    private KeyValueStore<Long, Order> orders;
    private KeyValueStore<Long, CustomerState> customers;
    private KeyValueStore<Long, OrderIds> index;

    EnrichProcessor(Options options) {
        this.options = options;
    }

    @Override
    public void init(ProcessorContext<Long, JsonNode> context) {
        this.context = context;
        this.orders = context.getStateStore(ORDERS);
        this.customers = context.getStateStore(CUSTOMERS);
        this.index = context.getStateStore(INDEX);
    }

    @Override
    public void process(Record<JsonNode, JsonNode> record) {
        Debezium.Change change = Debezium.change(record.value());
        switch (Debezium.table(record.value())) {
            case "orders" -> order(record, change);
            case "customers" -> customer(record, change);
            default -> { } // another captured table: not part of this join
        }
    }

    private void order(Record<JsonNode, JsonNode> record, Debezium.Change change) {
        long id = Debezium.key(record.key(), "order_id");
        Order old = orders.get(id);
        if (change.isDelete()) {
            if (options.defect("drop-deletes")) {
                return;
            }
            orders.delete(id);
            if (old != null) {
                unlink(old.customerId(), id);
            }
            context.forward(record.withKey(id).withValue(null));
            return;
        }
        Order order = Order.of(change.after());
        orders.put(id, order);
        if (old != null && old.customerId() != order.customerId()) {
            unlink(old.customerId(), id);
        }
        link(order.customerId(), id);
        CustomerState state = customers.get(order.customerId());
        long[] at = Debezium.position(record.value());
        if (state == null || Debezium.compare(state.position(), at) <= 0) {
            Customer customer = state == null ? null : state.current();
            context.forward(record.withKey(id).withValue(EnricherTopology.enriched(order, customer, options)));
            return;
        }
        // The customer's current row came from a change after this order's: processed first, it missed this order.
        context.forward(record.withKey(id).withValue(EnricherTopology.enriched(order, state.previous(), options)));
        context.forward(record.withKey(id).withValue(EnricherTopology.enriched(order, state.current(), options))
                .withHeaders(headers(state.headers())));
    }

    private void customer(Record<JsonNode, JsonNode> record, Debezium.Change change) {
        long id = Debezium.key(record.key(), "id");
        Customer customer = change.isDelete() ? null : Customer.of(change.after());
        CustomerState old = customers.get(id);
        customers.put(id, new CustomerState(customer, Debezium.position(record.value()), stored(record.headers()),
                old == null ? null : old.current(), old == null ? null : old.position()));
        OrderIds ids = index.get(id);
        if (ids == null) {
            return;
        }
        for (long orderId : ids.ids()) {
            Order order = orders.get(orderId);
            if (order != null) {
                context.forward(record.withKey(orderId).withValue(EnricherTopology.enriched(order, customer, options)));
            }
        }
    }

    private static List<StoredHeader> stored(Headers headers) {
        List<StoredHeader> kept = new ArrayList<>();
        for (Header header : headers) {
            kept.add(new StoredHeader(header.key(), header.value()));
        }
        return kept;
    }

    private static Headers headers(List<StoredHeader> stored) {
        RecordHeaders headers = new RecordHeaders();
        for (StoredHeader header : stored) {
            headers.add(header.key(), header.value());
        }
        return headers;
    }

    private void link(long customerId, long orderId) {
        OrderIds ids = index.get(customerId);
        TreeSet<Long> set = ids == null ? new TreeSet<>() : new TreeSet<>(ids.ids());
        if (set.add(orderId)) {
            index.put(customerId, new OrderIds(set.stream().toList()));
        }
    }

    private void unlink(long customerId, long orderId) {
        OrderIds ids = index.get(customerId);
        if (ids == null) {
            return;
        }
        TreeSet<Long> set = new TreeSet<>(ids.ids());
        set.remove(orderId);
        if (set.isEmpty()) {
            index.delete(customerId);
        } else {
            index.put(customerId, new OrderIds(set.stream().toList()));
        }
    }
}
