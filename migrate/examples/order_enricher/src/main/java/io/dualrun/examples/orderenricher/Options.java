package io.dualrun.examples.orderenricher;

import java.math.BigDecimal;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The job's command line: topics, thresholds, Kafka Streams settings and an optional deliberate defect. */
record Options(
        String bootstrapServers,
        String applicationId,
        String ordersTopic,
        String customersTopic,
        String enrichedTopic,
        String alertsTopic,
        String revenueTopic,
        BigDecimal goldAbove,
        BigDecimal silverAbove,
        BigDecimal alertAbove,
        String processingGuarantee,
        long cacheMaxBytes,
        Long commitIntervalMs,
        Integer sessionTimeoutMs,
        String stateDir,
        long topicWaitMs,
        String defect,
        String clientProperties) {

    /** Deliberately wrong variants, each of which a dual run must catch with its own cause. */
    static final Map<String, String> DEFECTS = Map.of(
            "tier-boundary", "loyalty tier thresholds compared with >= instead of >",
            "drop-deletes", "deleted orders are ignored, so they stay in every output",
            "ignore-customer-changes", "a KStream-KTable join: a customer change never revisits existing orders");

    private static final Set<String> NAMES = Set.of(
            "bootstrap-servers", "application-id", "orders-topic", "customers-topic", "enriched-topic",
            "alerts-topic", "revenue-topic", "gold-above", "silver-above", "alert-above", "processing-guarantee",
            "cache-max-bytes", "commit-interval-ms", "session-timeout-ms", "state-dir", "topic-wait-ms", "defect",
            "client-properties");

    static final String USAGE = "usage: OrderEnricher --bootstrap-servers HOST:PORT [--application-id order-enricher]"
            + " [--orders-topic dbserver1.shop.orders] [--customers-topic dbserver1.shop.customers]"
            + " [--enriched-topic orders-enriched] [--alerts-topic order-alerts] [--revenue-topic daily-revenue]"
            + " [--gold-above 200] [--silver-above 100] [--alert-above 500]"
            + " [--processing-guarantee exactly_once_v2] [--cache-max-bytes 0] [--commit-interval-ms N]"
            + " [--session-timeout-ms N] [--state-dir DIR] [--topic-wait-ms 120000] [--defect " + String.join("|", DEFECTS.keySet()) + "]"
            + " [--client-properties FILE]";

    static Options parse(List<String> args) {
        Map<String, String> given = new HashMap<>();
        for (int i = 0; i < args.size(); i += 2) {
            String flag = args.get(i);
            if (!flag.startsWith("--") || !NAMES.contains(flag.substring(2))) {
                throw new IllegalArgumentException("unknown option " + flag);
            }
            if (i + 1 >= args.size()) {
                throw new IllegalArgumentException("option " + flag + " needs a value");
            }
            given.put(flag.substring(2), args.get(i + 1));
        }
        if (!given.containsKey("bootstrap-servers")) {
            throw new IllegalArgumentException("--bootstrap-servers is required");
        }
        String defect = given.get("defect");
        if (defect != null && !DEFECTS.containsKey(defect)) {
            throw new IllegalArgumentException("unknown defect " + defect + "; choose one of " + DEFECTS.keySet());
        }
        String commit = given.get("commit-interval-ms");
        String session = given.get("session-timeout-ms");
        return new Options(
                given.get("bootstrap-servers"),
                given.getOrDefault("application-id", "order-enricher"),
                given.getOrDefault("orders-topic", "dbserver1.shop.orders"),
                given.getOrDefault("customers-topic", "dbserver1.shop.customers"),
                given.getOrDefault("enriched-topic", "orders-enriched"),
                given.getOrDefault("alerts-topic", "order-alerts"),
                given.getOrDefault("revenue-topic", "daily-revenue"),
                new BigDecimal(given.getOrDefault("gold-above", "200")),
                new BigDecimal(given.getOrDefault("silver-above", "100")),
                new BigDecimal(given.getOrDefault("alert-above", "500")),
                given.getOrDefault("processing-guarantee", "exactly_once_v2"),
                Long.parseLong(given.getOrDefault("cache-max-bytes", "0")),
                commit == null ? null : Long.valueOf(commit),
                session == null ? null : Integer.valueOf(session),
                given.get("state-dir"),
                Long.parseLong(given.getOrDefault("topic-wait-ms", "120000")),
                defect,
                given.get("client-properties"));
    }

    boolean defect(String name) {
        return name.equals(defect);
    }
}
