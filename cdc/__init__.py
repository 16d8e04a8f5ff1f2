"""The Debezium/Kafka edge: connector configs, the Connect REST client, change events, topics."""
