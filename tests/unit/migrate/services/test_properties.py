"""One Java properties escaper for every file the stack's JVMs read (worker, broker, FileConfigProvider)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from migrate.services.properties import java_escape, write_properties

# Everything `Properties.load` would otherwise read differently: an escape, a separator, a comment
# start, leading spaces, line breaks, non-ASCII (one outside the BMP: two UTF-16 units).
AWKWARD = {
    "backslash": "C:\\dir\\x",
    "separators": "a=b:c",
    "comments": "#not a comment !either",
    "leading": "   three spaces",
    "breaks": "line1\nline2\r\n\tend",
    "unicode": "café € 😀",
    "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" '
    'password="p=:#!\\";',
    "key with space": "v",
}


def test_each_special_character_is_escaped() -> None:
    assert java_escape("\\") == "\\\\"
    assert java_escape("a=b:c") == "a\\=b\\:c"
    assert java_escape("#x!y") == "\\#x\\!y"
    assert java_escape("  a b") == "\\ \\ a b"  # only leading spaces in a value
    assert java_escape("a b", key=True) == "a\\ b"  # every space in a key
    assert java_escape("a\nb\rc") == "a\\nb\\rc"
    assert java_escape("é") == "\\u00e9" and java_escape("😀") == "\\ud83d\\ude00"
    assert java_escape("plain-value_1.2/x") == "plain-value_1.2/x"


def test_written_file_is_private_and_one_line_per_setting(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "secrets.properties"
    write_properties(path, AWKWARD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == len(AWKWARD) and path.read_bytes().isascii()


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JVM to read the file back")
def test_java_reads_back_every_value_exactly(tmp_path: Path) -> None:
    """`java.util.Properties.load` (as Kafka's worker and FileConfigProvider read) gets the values back."""
    path = tmp_path / "awkward.properties"
    write_properties(path, AWKWARD)
    source = tmp_path / "Dump.java"
    source.write_text(
        "import java.io.*; import java.util.*;\n"
        "public class Dump { public static void main(String[] a) throws Exception {\n"
        "  Properties p = new Properties(); try (InputStream in = new FileInputStream(a[0])) { p.load(in); }\n"
        '  PrintStream out = new PrintStream(new FileOutputStream(a[1]), true, "UTF-8");\n'
        "  for (String k : new TreeSet<>(p.stringPropertyNames())) {\n"
        "    out.print(k); out.print('\\u0000'); out.print(p.getProperty(k)); out.print('\\u0000'); } } }\n"
    )
    dumped = tmp_path / "dump.bin"
    run = subprocess.run(["java", str(source), str(path), str(dumped)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    fields = dumped.read_bytes().decode("utf-8").split("\0")[:-1]
    assert dict(zip(fields[::2], fields[1::2], strict=True)) == AWKWARD
