"""Reads one message from a Kafka topic and decodes it the way any Confluent consumer would:
the wire header gives the schema id, the schema comes from the registry URL, and fastavro (an
implementation independent of the hub) decodes the Avro datum. Prints the record as JSON.

usage: decode_confluent.py BOOTSTRAP TOPIC REGISTRY_URL
"""
import io
import json
import struct
import sys
import urllib.request
import uuid

import fastavro
from confluent_kafka import Consumer

bootstrap, topic, registry = sys.argv[1:4]
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "fastavro-" + uuid.uuid4().hex,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
msg = None
for _ in range(60):
    msg = consumer.poll(1.0)
    if msg is not None and msg.error() is None:
        break
consumer.close()
if msg is None or msg.error() is not None:
    sys.exit(f"no message on {topic}: {msg.error() if msg else 'timeout'}")

value = msg.value()
magic, schema_id = struct.unpack(">bI", value[:5])
if magic != 0:
    sys.exit(f"magic byte {magic}, not 0")
with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as answer:
    schema = json.loads(json.loads(answer.read())["schema"])
record = fastavro.schemaless_reader(io.BytesIO(value[5:]), fastavro.parse_schema(schema))


def plain(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if not isinstance(v, (str, int, float, bool, type(None))):
        return str(v)
    return v


headers = {k: v.decode() for k, v in (msg.headers() or [])}
print(json.dumps({"schema_id": schema_id, "key": msg.key().decode(), "headers": headers, "record": plain(record)}, ensure_ascii=False))
