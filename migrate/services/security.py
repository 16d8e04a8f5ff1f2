"""The secured local stack (`dualrun stack up --secure`): TLS material, SCRAM users, ACLs, client files.

Layout under `<state_dir>/secure/` (folder 0700; every file holding a secret 0600):
  ca.pem           the local CA's certificate (clients verify the broker with it; not secret)
  ca.key           the CA's private key (kept to sign a new broker certificate)
  broker.p12       the broker's key and certificate (CN=dualrun-broker, SAN IP:127.0.0.1, localhost)
  truststore.p12   the CA as a trusted certificate: Connect's REST client (a worker calling another's
                   HTTPS API) trusts the other workers with it; Jetty reads no PEM truststore
  users.json       the random SCRAM-SHA-256 passwords of each user and the keystore's password
  client.properties  librdkafka settings of the `dualrun` user, password included (for tools)
  kafka.yaml       the spec snippet a user pastes: no secret, `sasl.password_env` names the variable
  debezium.properties  Debezium's JAAS line and database password, read by Connect's FileConfigProvider
                   (never in Connect's config topic nor on GET /connectors/<name>/config)
  connect-rest.password  the login of Connect's REST API (HTTPS, basic auth): `dualrun: <password>`
  connect-jaas.conf  the worker's JAAS `KafkaConnect` section naming that file (PropertyFileLoginModule)
  enabled          marker: the stack runs secured until `stack up --plaintext`

Users (least privilege, see `acls`): `admin` (the broker's own inter-broker principal, super user),
`connect` (the worker: its internal topics, the change topics it writes, the output topics its
sink connectors read and their `connect-` groups), `debezium` (the schema
history topic), `stream` (reads change topics, writes the job's own topics, transactions),
`dualrun` (reads and describes: output reader, checklist, fences, tail).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from cdc.client import KafkaSettings
from migrate.errors import MissingTool, StackError
from migrate.services.properties import write_properties

USERS = ("admin", "connect", "debezium", "stream", "dualrun")
MECHANISM = "SCRAM-SHA-256"
BROKER_CN = "dualrun-broker"  # the controller listener's mTLS principal: User:CN=dualrun-broker
# The local stack's names (the example specs'): change-topic prefix, the stream job's topics and groups.
CHANGE_PREFIX = "dbserver1"
STREAM_PREFIXES = ("dualrun-stream", "orders-enriched", "order-alerts", "daily-revenue", "order-enricher",
                   "kstreams-")  # fmt: skip
# The stream job's output topics (by prefix), which a JDBC sink connector (`outputs.X.sink`) reads;
# Connect names a sink connector's consumer group `connect-<connector>`.
OUTPUT_PREFIXES = ("orders-enriched", "order-alerts", "daily-revenue")
SINK_GROUP_PREFIX = "connect-"
PASSWORD_ENV = "DUALRUN_KAFKA_PASSWORD"
# Connect's REST API: HTTPS with the broker's certificate, basic auth (Kafka's BasicAuthSecurityRestExtension).
REST_USER = "dualrun"
REST_PASSWORD_KEY = "connect-rest"  # its password's key in users.json
CONNECT_PASSWORD_ENV = "DUALRUN_CONNECT_PASSWORD"
REST_EXTENSION = "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
REST_LOGIN_MODULE = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
PASSWORD_KEYS = (*USERS, "keystore", REST_PASSWORD_KEY)


def _private(path: Path, text: str | bytes) -> None:
    """Write `path` readable by its owner only, from the first byte on."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(text.encode() if isinstance(text, str) else text)


def _openssl(*args: str, cwd: Path) -> None:
    found = shutil.which("openssl")
    if found is None:
        raise MissingTool("openssl not found: install it with `apt-get install openssl` (it makes the local CA)")
    run = subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        detail = " ".join(run.stderr.split())[-300:]
        raise StackError(f"openssl {args[0]} failed while making the local CA: {detail}")


class SecureStack:
    """The TLS and SCRAM material of one state directory's stack."""

    def __init__(self, state_dir: Path) -> None:
        self.home = state_dir / "secure"
        self.ca = self.home / "ca.pem"
        self.keystore = self.home / "broker.p12"
        self.truststore = self.home / "truststore.p12"
        self.users_file = self.home / "users.json"
        self.marker = self.home / "enabled"
        self.secrets_file = self.home / "debezium.properties"
        self.rest_passwords = self.home / "connect-rest.password"
        self.rest_jaas = self.home / "connect-jaas.conf"

    @property
    def enabled(self) -> bool:
        return self.marker.exists()

    def enable(self, bootstrap_servers: str, connect_url: str) -> None:
        """Make whatever material is missing, then mark the stack secured."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        known = self.passwords() if self.users_file.exists() else {}
        if any(key not in known for key in PASSWORD_KEYS):
            # A users file made before a password was added keeps its passwords (the broker's SCRAM users).
            passwords = {key: known.get(key) or secrets.token_urlsafe(24) for key in PASSWORD_KEYS}
            _private(self.users_file, json.dumps(passwords, indent=2) + "\n")
        if not (self.ca.exists() and self.keystore.exists()):
            self._certificates()
        if not self.truststore.exists():  # also for material made before Connect's REST client needed it
            self._truststore()
        self._client_files(bootstrap_servers, connect_url)
        self.marker.write_text("secured by `dualrun stack up --secure`; `dualrun stack up --plaintext` undoes it\n")

    def disable(self) -> None:
        self.marker.unlink(missing_ok=True)

    def passwords(self) -> dict[str, str]:
        try:
            data = json.loads(self.users_file.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(
                f"the secure stack's users file {self.users_file} is unreadable ({exc}); "
                "run `dualrun stack up --secure` to make it"
            ) from None
        return {str(k): str(v) for k, v in data.items()}

    def _certificates(self) -> None:
        """A CA, and the broker's key and certificate signed by it, in a PKCS#12 keystore."""
        work = self.home
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "825", "-subj", "/CN=dualrun-local-ca", cwd=work)  # fmt: skip
        (work / "broker.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
        )
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
                 "-subj", f"/CN={BROKER_CN}", cwd=work)  # fmt: skip
        _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "broker.pem", "-days", "825", "-extfile", "broker.ext", cwd=work)  # fmt: skip
        # The keystore password goes through the environment, not the command line (ps shows that).
        env_name = "DUALRUN_KEYSTORE_PASSWORD"
        os.environ[env_name] = self.passwords()["keystore"]
        try:
            _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
                     "-name", "broker", "-out", "broker.p12", "-passout", f"env:{env_name}", cwd=work)  # fmt: skip
        finally:
            del os.environ[env_name]
        for leftover in ("broker.key", "broker.csr", "broker.ext", "broker.pem", "ca.srl"):
            (work / leftover).unlink(missing_ok=True)
        for private in ("ca.key", "broker.p12"):
            os.chmod(work / private, 0o600)

    def _truststore(self) -> None:
        """The CA in a PKCS#12 truststore as a trusted certificate entry (keytool: openssl's PKCS#12
        files carry no Java trust attribute), under the keystore's password."""
        keytool = shutil.which("keytool")
        if keytool is None:
            raise MissingTool("keytool not found: it comes with Java (`apt-get install openjdk-17-jre-headless`)")
        env_name = "DUALRUN_TRUSTSTORE_PASSWORD"  # through the environment: ps shows a command line
        self.truststore.unlink(missing_ok=True)
        run = subprocess.run(
            [keytool, "-importcert", "-noprompt", "-alias", "dualrun-local-ca", "-file", str(self.ca),
             "-keystore", str(self.truststore), "-storetype", "PKCS12", "-storepass:env", env_name],
            capture_output=True, text=True, env={**os.environ, env_name: self.passwords()["keystore"]},
        )  # fmt: skip
        if run.returncode != 0:
            raise StackError(f"keytool could not make {self.truststore}: {' '.join(run.stdout.split())[-300:]}")
        os.chmod(self.truststore, 0o600)

    # -- settings ------------------------------------------------------------------------------
    def client(self, bootstrap_servers: str, user: str = "dualrun") -> KafkaSettings:
        """librdkafka settings for `user` (one of USERS)."""
        properties = {
            "security.protocol": "SASL_SSL", "sasl.mechanism": MECHANISM, "sasl.username": user,
            "ssl.ca.location": str(self.ca),
        }  # fmt: skip
        return KafkaSettings(bootstrap_servers, properties, {"sasl.password": self.passwords()[user]})

    def broker_settings(self, kafka_port: int, controller_port: int) -> dict[str, object]:
        """Listener, TLS, SASL and authorizer settings of the combined broker and controller."""
        passwords = self.passwords()
        admin = self.client("", "admin").java_properties()["sasl.jaas.config"]
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{kafka_port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": admin,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": self.keystore,
            "ssl.keystore.password": passwords["keystore"],
            "ssl.key.password": passwords["keystore"],
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.ca,
            # Mutual TLS between the broker and the controller: both present the broker's certificate.
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:admin;User:CN={BROKER_CN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that create every user with its password (KIP-900)."""
        passwords = self.passwords()
        return [f"--add-scram={MECHANISM}=[name={user},password={passwords[user]}]" for user in USERS]

    def java_client(self, bootstrap_servers: str, user: str) -> dict[str, str]:
        return self.client(bootstrap_servers, user).java_properties()

    def _client_files(self, bootstrap_servers: str, connect_url: str) -> None:
        settings = self.client(bootstrap_servers)
        props = {"bootstrap.servers": bootstrap_servers, **settings.properties, **settings.secrets}
        _private(self.home / "client.properties", "".join(f"{k}={v}\n" for k, v in props.items()))
        snippet = (
            "# the secured local stack's client settings for a dualrun spec; export the password first:\n"
            f'#   export {PASSWORD_ENV}=$(python3 -c \'import json; print(json.load(open("{self.users_file}"))'
            '["dualrun"])\')\n'
            "kafka:\n"
            f"  bootstrap_servers: {bootstrap_servers}\n"
            "  properties:\n"
            "    security.protocol: SASL_SSL\n"
            f"    sasl.mechanism: {MECHANISM}\n"
            "    sasl.username: dualrun\n"
            f"    sasl.password_env: {PASSWORD_ENV}\n"
            f"    ssl.ca.location: {self.ca}\n"
        )
        snippet += (
            f"# Connect's REST API; export {CONNECT_PASSWORD_ENV} (key {REST_PASSWORD_KEY!r} of users.json) too\n"
            "cdc:\n"
            f"  connect_url: {connect_url}\n"
            f"  connect_user: {REST_USER}\n"
            f"  connect_password_env: {CONNECT_PASSWORD_ENV}\n"
            f"  connect_ca: {self.ca}\n"
            f"  kafka_secrets_file: {self.secrets_file}\n"
            f"  password_file: {self.secrets_file}\n"
        )
        _private(self.home / "kafka.yaml", snippet)

    # -- Connect ---------------------------------------------------------------------------------
    def connect_files(self, bootstrap_servers: str, database_password: str) -> None:
        """What the Connect worker reads at start: Debezium's secrets for its FileConfigProvider
        (`cdc.kafka_secrets_file`, `cdc.password_file`) and the REST API's login and JAAS file."""
        jaas = self.client(bootstrap_servers, "debezium").java_properties()["sasl.jaas.config"]
        write_properties(self.secrets_file, {"sasl.jaas.config": jaas, "database.password": database_password})
        _private(self.rest_passwords, f"{REST_USER}: {self.passwords()[REST_PASSWORD_KEY]}\n")
        _private(
            self.rest_jaas,
            f'KafkaConnect {{\n  {REST_LOGIN_MODULE} required\n  file="{self.rest_passwords}";\n}};\n',
        )

    def connect_rest_settings(self, port: int) -> dict[str, object]:
        """The worker's REST listener on HTTPS (the broker's key and certificate) with basic auth.
        `listeners.https.`-prefixed TLS settings apply to the REST server and to the worker's own
        REST client, which forwards requests to the leader and calls the other workers at their
        advertised https listener (Kafka's SSLUtils reads that prefix all or nothing): so the
        truststore and hostname verification are set there too, and the worker's own `ssl.*` (its
        Kafka clients') stay apart. The JVM needs `connect_jvm_args()` too."""
        password = self.passwords()["keystore"]
        return {
            "listeners": f"https://127.0.0.1:{port}",
            "rest.advertised.listener": "https",
            "listeners.https.ssl.keystore.type": "PKCS12",
            "listeners.https.ssl.keystore.location": self.keystore,
            "listeners.https.ssl.keystore.password": password,
            "listeners.https.ssl.key.password": password,
            "listeners.https.ssl.truststore.type": "PKCS12",
            "listeners.https.ssl.truststore.location": self.truststore,
            "listeners.https.ssl.truststore.password": password,
            "listeners.https.ssl.endpoint.identification.algorithm": "https",
            "rest.extension.classes": REST_EXTENSION,
        }

    def connect_jvm_args(self) -> list[str]:
        return [f"-Djava.security.auth.login.config={self.rest_jaas}"]

    def connect_auth(self) -> tuple[str, str]:
        """(user, password) of Connect's REST API (HTTP basic auth)."""
        return REST_USER, self.passwords()[REST_PASSWORD_KEY]


def acls() -> list[AclBinding]:
    """The least-privilege ACLs of the local stack's users (the admin is a super user)."""
    topic, group, txn, cluster = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID,
                                  ResourceType.BROKER)  # fmt: skip
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    op = AclOperation
    wanted: list[tuple[str, ResourceType, str, ResourcePatternType, AclOperation]] = [
        # Connect: its internal topics and group, and the change topics its producer writes and creates.
        ("connect", topic, "dualrun-connect-", prefixed, op.ALL),
        ("connect", group, "dualrun-connect", literal, op.ALL),
        *(
            ("connect", topic, CHANGE_PREFIX, prefixed, o)
            for o in (op.WRITE, op.CREATE, op.DESCRIBE, op.DESCRIBE_CONFIGS)
        ),
        *(
            ("connect", topic, "__debezium-heartbeat.", prefixed, o)
            for o in (op.WRITE, op.CREATE, op.DESCRIBE, op.DESCRIBE_CONFIGS)
        ),
        ("connect", cluster, "kafka-cluster", literal, op.DESCRIBE_CONFIGS),
        # Connect's sink connectors: read the output topics, commit in their `connect-<connector>` groups.
        *(("connect", topic, name, prefixed, o) for name in OUTPUT_PREFIXES for o in (op.READ, op.DESCRIBE)),
        *(("connect", group, SINK_GROUP_PREFIX, prefixed, o) for o in (op.READ, op.DESCRIBE)),
        # Debezium: the schema history topic and its consumer's group.
        ("debezium", topic, f"{CHANGE_PREFIX}.schema-history", prefixed, op.ALL),
        # Debezium names its schema-history consumer group <topic.prefix>-schemahistory.
        ("debezium", group, f"{CHANGE_PREFIX}-schemahistory", prefixed, op.ALL),
        ("debezium", cluster, "kafka-cluster", literal, op.DESCRIBE_CONFIGS),
        # The streaming job: reads change topics, owns its topics, groups and transactional ids.
        *(("stream", topic, CHANGE_PREFIX, prefixed, o) for o in (op.READ, op.DESCRIBE, op.CREATE)),
        *(("stream", kind, name, prefixed, op.ALL) for name in STREAM_PREFIXES for kind in (topic, group, txn)),
        ("stream", cluster, "kafka-cluster", literal, op.IDEMPOTENT_WRITE),
        # dualrun: reads and describes everything, commits nothing but in its own groups.
        *(("dualrun", topic, "*", literal, o) for o in (op.READ, op.DESCRIBE, op.DESCRIBE_CONFIGS)),
        ("dualrun", group, "*", literal, op.DESCRIBE),
        ("dualrun", group, "dualrun-", prefixed, op.READ),
        *(("dualrun", cluster, "kafka-cluster", literal, o) for o in (op.DESCRIBE, op.DESCRIBE_CONFIGS)),
    ]
    return [
        AclBinding(kind, name, pattern, f"User:{user}", "*", operation, AclPermissionType.ALLOW)
        for user, kind, name, pattern, operation in wanted
    ]


def apply_acls(admin_settings: KafkaSettings, timeout: float = 30.0) -> int:
    """Create the ACLs (creating an existing one is a no-op); returns how many were asked for."""
    from confluent_kafka import KafkaException

    from cdc import client

    bindings = acls()
    admin = client.admin(admin_settings)  # kept referenced: the futures die with their client
    futures = admin.create_acls(bindings, request_timeout=timeout)
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise StackError(f"could not create the ACL {binding}: {exc.args[0].str()}") from None
    return len(bindings)
