#!/usr/bin/env bash
# A three-node Kafka cluster (KRaft, three combined broker+controller nodes) and
# a Redis with AOF on 127.0.0.1, free ports, replication factor 3 and
# min.insync.replicas=2 -- what tests/chaos/test_cluster.py runs against.
# Prints export lines, then keeps the servers up until Ctrl-C / SIGTERM and
# kills them by pid. Jars and tools come from scripts/services.sh install.
#
#   bash scripts/kafka-cluster.sh            # 3 nodes
#   bash scripts/kafka-cluster.sh --brokers 5
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m tests.chaos.servers "$@"
