"""The article's Kafka Streams `OrderEnricher`: a streaming job dualrun did not write.

A Maven project shipped as package data (`pom.xml`, `src/`): the topology reads the Debezium change
topics of shop.orders and shop.customers and writes orders-enriched, order-alerts and daily-revenue
with the reference batch SQL's semantics. `build` compiles it into the state directory on demand;
`runner` starts it as a subprocess against a Kafka cluster.
"""
