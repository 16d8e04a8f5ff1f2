"""The streaming job: consume Debezium topics, transform, produce exactly once, sink changelogs."""
