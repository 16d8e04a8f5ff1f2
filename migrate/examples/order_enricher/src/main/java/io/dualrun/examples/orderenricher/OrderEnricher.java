package io.dualrun.examples.orderenricher;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * The article's OrderEnricher (section 8.3), on Debezium change topics and with the batch job's three outputs.
 *
 * <p>Prints one line per state change, {@code order-enricher: state RUNNING}, which is what dualrun's runner waits
 * for. Exits 0 after a clean shutdown (SIGTERM), 1 when Kafka Streams fails, 2 on bad arguments.
 */
public final class OrderEnricher {
    static final String LOG = "order-enricher: ";

    private OrderEnricher() {}

    public static void main(String[] args) throws Exception {
        Options options;
        try {
            options = Options.parse(Arrays.asList(args));
        } catch (IllegalArgumentException e) {
            System.err.println(LOG + e.getMessage());
            System.err.println(Options.USAGE);
            System.exit(2);
            return;
        }
        Properties config = config(options);
        if (!waitForTopics(options, config)) {
            System.exit(1);
        }
        KafkaStreams streams = new KafkaStreams(EnricherTopology.build(options), config);
        CountDownLatch stopped = new CountDownLatch(1);
        boolean[] failed = {false};
        streams.setStateListener((now, before) -> {
            System.out.println(LOG + "state " + now + " (was " + before + ")");
            if (now == KafkaStreams.State.ERROR) {
                failed[0] = true;
            }
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(error -> {
            System.out.println(LOG + "failed: " + error);
            failed[0] = true;
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            System.out.println(LOG + "closed");
        }));
        System.out.println(LOG + "starting application.id=" + options.applicationId()
                + (options.defect() == null ? "" : " defect=" + options.defect()));
        streams.start();
        stopped.await();
        streams.close(Duration.ofSeconds(30));
        System.exit(failed[0] ? 1 : 0);
    }

    /** Kafka Streams settings for the dual run: exactly-once v2 and record caches off, unless told otherwise. */
    static Properties config(Options options) {
        Properties config = clientProperties(options);
        config.put(StreamsConfig.APPLICATION_ID_CONFIG, options.applicationId());
        config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers());
        config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, options.processingGuarantee());
        // Caches coalesce updates of a key: the intermediate versions, and their positions, never reach the output.
        config.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, options.cacheMaxBytes());
        if (options.commitIntervalMs() != null) {
            config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, options.commitIntervalMs());
        }
        if (options.sessionTimeoutMs() != null) {
            // Kafka Streams leaves no group on close and a killed member sends nothing: its successor's first
            // rebalance waits this long for the old member (45 s by default).
            config.put(StreamsConfig.consumerPrefix("session.timeout.ms"), options.sessionTimeoutMs());
        }
        if (options.stateDir() != null) {
            config.put(StreamsConfig.STATE_DIR_CONFIG, options.stateDir());
        }
        config.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        return config;
    }

    /**
     * A secured cluster's client settings (security.protocol, sasl.jaas.config, ssl.truststore.*), read from the
     * file --client-properties names: Kafka Streams hands them to every client it makes. The file holds the
     * password, so it never goes on the command line.
     */
    static Properties clientProperties(Options options) {
        Properties client = new Properties();
        if (options.clientProperties() != null) {
            try (Reader reader = Files.newBufferedReader(Path.of(options.clientProperties()))) {
                client.load(reader);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read --client-properties " + options.clientProperties(), e);
            }
        }
        return client;
    }

    /**
     * Source topics appear when the connector has taken its snapshot: wait for them rather than fail. Output topics
     * are created when missing (broker defaults for partitions and replication): Kafka Streams never creates its
     * sink topics, and brokers often do not auto-create them.
     */
    private static boolean waitForTopics(Options options, Properties config) throws Exception {
        Set<String> wanted = Set.of(options.ordersTopic(), options.customersTopic());
        Properties admin = clientProperties(options);
        admin.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, config.get(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(options.topicWaitMs());
        try (Admin client = Admin.create(admin)) {
            createOutputs(client, options);
            while (true) {
                Set<String> missing = new HashSet<>(wanted);
                missing.removeAll(client.listTopics().names().get(30, TimeUnit.SECONDS));
                if (missing.isEmpty()) {
                    return true;
                }
                if (System.nanoTime() > deadline) {
                    System.out.println(LOG + "failed: source topics " + List.copyOf(missing) + " do not exist after "
                            + options.topicWaitMs() + " ms: is the Debezium connector registered?");
                    return false;
                }
                System.out.println(LOG + "waiting for source topics " + List.copyOf(missing));
                Thread.sleep(500);
            }
        }
    }

    private static void createOutputs(Admin client, Options options) throws Exception {
        Set<String> existing = client.listTopics().names().get(30, TimeUnit.SECONDS);
        List<NewTopic> missing = Stream.of(options.enrichedTopic(), options.alertsTopic(), options.revenueTopic())
                .filter(topic -> !existing.contains(topic))
                .map(topic -> new NewTopic(topic, Optional.empty(), Optional.empty()))
                .toList();
        for (NewTopic topic : missing) {
            try {
                client.createTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
                System.out.println(LOG + "created output topic " + topic.name());
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) { // created meanwhile: fine
                    throw e;
                }
            }
        }
    }
}
