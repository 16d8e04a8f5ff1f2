package io.dualrun.examples.orderenricher;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Debezium change events as the JSON converter writes them: {"schema": ..., "payload": {before, after, op, source}},
 * or the bare payload when schemas are off.
 *
 * <p>DECIMAL is decoded here from Debezium's default {@code decimal.handling.mode=precise}: base64 big-endian
 * unscaled bytes, scale from the field's schema. With schemas off, the connector must use
 * {@code decimal.handling.mode=string}. Temporal columns become ISO-8601 text at the column's own precision
 * (DATETIME(3): milliseconds), read as UTC wall-clock time, as Debezium encodes them: no machine time zone.
 */
final class Debezium {
    private static final String DECIMAL = "org.apache.kafka.connect.data.Decimal";
    private static final Pattern PLAIN_NUMBER = Pattern.compile("-?\\d+(\\.\\d+)?");
    private static final DateTimeFormatter MILLIS = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS");
    private static final DateTimeFormatter MICROS = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSSSS");

    private Debezium() {}

    /** One row image (before or after) with its field schemas. */
    record Row(JsonNode values, Map<String, JsonNode> schemas) {
        JsonNode raw(String column) {
            JsonNode value = values.get(column);
            if (value == null) {
                throw new IllegalArgumentException("change event lacks column " + column + " (schema change?)");
            }
            return value;
        }

        long longValue(String column) {
            return raw(column).asLong();
        }

        String text(String column) {
            JsonNode value = raw(column);
            return value.isNull() ? null : value.asText();
        }

        BigDecimal decimal(String column) {
            JsonNode value = raw(column);
            if (value.isNull()) {
                return null;
            }
            JsonNode schema = schemas.get(column);
            if (schema != null && DECIMAL.equals(schema.path("name").asText())) {
                int scale = Integer.parseInt(schema.path("parameters").path("scale").asText("0"));
                byte[] unscaled = Base64.getDecoder().decode(value.asText());
                return new BigDecimal(new BigInteger(unscaled), scale);
            }
            if (value.isNumber()) {
                return value.decimalValue();
            }
            if (PLAIN_NUMBER.matcher(value.asText()).matches()) {
                return new BigDecimal(value.asText()); // decimal.handling.mode=string
            }
            throw new IllegalArgumentException("column " + column + " is neither a Debezium DECIMAL with a schema "
                    + "nor a decimal string: enable schemas in the JSON converter or set decimal.handling.mode=string");
        }

        /** A DATETIME column as ISO-8601 local date-time text. */
        String timestamp(String column) {
            JsonNode value = raw(column);
            if (value.isNull()) {
                return null;
            }
            String name = schemas.containsKey(column) ? schemas.get(column).path("name").asText() : "";
            long number = value.asLong();
            return switch (name) {
                case "io.debezium.time.MicroTimestamp" -> at(number / 1_000_000, number % 1_000_000 * 1_000).format(MICROS);
                case "io.debezium.time.NanoTimestamp" -> at(number / 1_000_000_000, number % 1_000_000_000).format(MICROS);
                default -> at(Math.floorDiv(number, 1000), Math.floorMod(number, 1000) * 1_000_000).format(MILLIS);
            };
        }

        private static LocalDateTime at(long seconds, long nanos) {
            return LocalDateTime.ofInstant(Instant.ofEpochSecond(seconds, nanos), ZoneOffset.UTC);
        }
    }

    /** A decoded change event; {@code after} is null for a delete. */
    record Change(String op, Row before, Row after) {
        boolean isDelete() {
            return "d".equals(op);
        }

        Row current() {
            return after != null ? after : before;
        }
    }

    /** The change in a Debezium envelope (with or without the JSON converter's schema). */
    static Change change(JsonNode record) {
        JsonNode payload = record.has("payload") && record.has("schema") ? record.get("payload") : record;
        JsonNode schema = record.has("schema") ? record.get("schema") : null;
        String op = payload.path("op").asText(null);
        if (op == null) {
            throw new IllegalArgumentException("not a Debezium change event (no op field)");
        }
        return new Change(op, row(payload.get("before"), schema, "before"), row(payload.get("after"), schema, "after"));
    }

    /**
     * The change's binlog position from its {@code source} block as (file sequence, pos, row), compared
     * lexicographically: the order in which MariaDB committed the changes.
     */
    static long[] position(JsonNode record) {
        JsonNode payload = record.has("payload") && record.has("schema") ? record.get("payload") : record;
        JsonNode source = payload.path("source");
        String file = source.path("file").asText("");
        int dot = file.lastIndexOf('.');
        long sequence = dot < 0 ? 0 : Long.parseLong(file.substring(dot + 1));
        return new long[] {sequence, source.path("pos").asLong(), source.path("row").asLong()};
    }

    static int compare(long[] a, long[] b) {
        return java.util.Arrays.compare(a, b);
    }

    /** The captured table of a change event ({@code source.table}), e.g. "orders". */
    static String table(JsonNode record) {
        JsonNode payload = record.has("payload") && record.has("schema") ? record.get("payload") : record;
        String table = payload.path("source").path("table").asText("");
        if (table.isEmpty()) {
            throw new IllegalArgumentException("change event without source.table: not a Debezium envelope");
        }
        return table;
    }

    /** The value of a primary-key column in a Debezium key record ({"schema":..,"payload":{"id":7}} or {"id":7}). */
    static long key(JsonNode record, String column) {
        JsonNode payload = record.has("payload") && record.has("schema") ? record.get("payload") : record;
        JsonNode value = payload.get(column);
        if (value == null || !value.canConvertToLong()) {
            throw new IllegalArgumentException("change event key lacks numeric column " + column + ": " + record);
        }
        return value.asLong();
    }

    /** The DATE of an ISO date-time text: CAST(created_at AS DATE), DATE(created_at). */
    static String day(String isoDateTime) {
        return LocalDate.parse(isoDateTime.substring(0, 10)).toString();
    }

    private static Row row(JsonNode values, JsonNode envelopeSchema, String field) {
        if (values == null || values.isNull()) {
            return null;
        }
        Map<String, JsonNode> schemas = new HashMap<>();
        if (envelopeSchema != null) {
            for (JsonNode part : envelopeSchema.path("fields")) {
                if (field.equals(part.path("field").asText())) {
                    for (JsonNode column : part.path("fields")) {
                        schemas.put(column.path("field").asText(), column);
                    }
                }
            }
        }
        return new Row(values, schemas);
    }
}
