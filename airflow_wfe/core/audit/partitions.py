"""Partitioned chains: one hash chain per partition of DAG ids, under one signed tree head.

One chain with one head row makes every writer of the store take turns on that row for the length of
its transaction, which caps concurrent writers (docs/performance.md). With ``[wfe] audit_partitions``
set to N, an event joins the chain of its DAG's partition: a stable hash of the ``dag_id`` (CRC-32,
the same in every process and on every machine) modulo N; events without a DAG (a manual action on
the store, an archive) join partition 0. Writers of DAGs in different partitions never wait for each
other; each partition keeps one unforked chain with its own signed head.

Partition 0 is always named ``main``, the one chain of a store written before partitions existed, and
signs exactly as it always did, so N = 1 is today's single chain and an old store goes on verifying.
Every other partition ``p<i>`` is bound to its name twice: its first event links back to a genesis
hash derived from the name, and its head, checkpoint and archive signatures carry the name. A
partition renamed or swapped with another therefore breaks at its first link and at its head.

A *tree head* is a signed statement of every partition's head at one moment (the chain name, the
position and the hash of each), written when a partition begins, at checkpoints and at anchors. It is
what makes a partition's disappearance visible: verification requires every partition a tree head
names to still be there and to still hold the event it named (or to have archived it), and every
partition other than ``main`` to be named by a tree head.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring as _quote
from typing import Final, NamedTuple

from airflow_wfe.core.audit.canonical import canonical_json

__all__ = [
    "MAIN",
    "MAX_PARTITIONS",
    "PartitionHead",
    "TreeHead",
    "chain_name",
    "chain_order",
    "genesis_hash",
    "heads_text",
    "parse_heads",
    "partition_of",
    "signed_chain",
    "sorted_heads",
    "tree_root",
]

#: Partition 0: the chain of every store, and the only one of an unpartitioned store.
MAIN: Final = "main"
#: Upper bound of ``[wfe] audit_partitions`` (each partition is one head row; more buys nothing on
#: the machines measured and makes every tree head longer).
MAX_PARTITIONS: Final = 256
_GENESIS_MAIN: Final = "0" * 64


class PartitionHead(NamedTuple):
    """One partition's position as a tree head records it."""

    chain: str
    seq: int
    hash: str


@dataclass(frozen=True)
class TreeHead:
    """Every partition's head at one moment (``at``), signed over :func:`tree_root`."""

    heads: tuple[PartitionHead, ...]
    root: str
    at: str
    algorithm: str
    key_id: str
    signature: str


def chain_name(index: int) -> str:
    """The chain of partition ``index`` (0 is ``main``)."""
    return MAIN if index == 0 else f"p{index}"


def chain_order(chain: str) -> tuple[int, str]:
    """Sort key putting chains in partition order (``main`` first): the order heads are locked in,
    so two writers needing several partitions never wait for each other in a cycle."""
    if chain == MAIN:
        return (0, chain)
    if chain.startswith("p") and chain[1:].isdigit():
        return (int(chain[1:]), chain)
    return (MAX_PARTITIONS + 1, chain)


@lru_cache(maxsize=4096)
def partition_of(dag_id: str | None, partitions: int) -> str:
    """The chain an event of ``dag_id`` joins when the store has ``partitions`` partitions."""
    if dag_id is None or partitions <= 1:
        return MAIN
    return chain_name(zlib.crc32(dag_id.encode("utf-8")) % partitions)


@lru_cache(maxsize=1024)
def genesis_hash(chain: str) -> str:
    """The ``prev`` of a chain's first event: all zeros for ``main`` (as ever), a hash of the name
    for the other partitions (so their events cannot be moved under another name)."""
    if chain == MAIN:
        return _GENESIS_MAIN
    return hashlib.sha256(f"wfe-audit-genesis:{chain}".encode()).hexdigest()


def signed_chain(chain: str) -> str:
    """The ``chain`` field of the messages a partition's marks sign (``wfe`` for ``main``, as ever)."""
    return "wfe" if chain == MAIN else f"wfe/{chain}"


def sorted_heads(heads: Iterable[PartitionHead]) -> list[PartitionHead]:
    return sorted(heads, key=lambda h: chain_order(h.chain))


def heads_text(heads: Sequence[PartitionHead]) -> str:
    """The canonical text of a tree head's partition list (stored and signed as is).

    Verification rebuilds it for every stored tree head; for plain text and integer positions it
    is written out directly (the same text :func:`canonical_json` gives, several times faster).
    """
    ordered = sorted_heads(heads)
    if all(type(h.chain) is str and type(h.seq) is int and type(h.hash) is str for h in ordered):
        return (
            "[" + ",".join(f"[{_quote(h.chain)},{h.seq},{_quote(h.hash)}]" for h in ordered) + "]"
        )
    return canonical_json([[h.chain, h.seq, h.hash] for h in ordered])


def parse_heads(text: str) -> list[PartitionHead]:
    """Raises: ValueError: not a partition list."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("not a list of partition heads")
    heads = []
    for item in data:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or type(item[1]) is not int
            or not isinstance(item[2], str)
        ):
            raise ValueError(f"not a partition head: {item!r}")
        heads.append(PartitionHead(item[0], item[1], item[2]))
    return heads


def tree_root(heads: Sequence[PartitionHead]) -> str:
    """SHA-256 over the partition list, domain-separated: what a tree head's signature covers."""
    return hashlib.sha256(b"wfe-audit-tree:" + heads_text(heads).encode()).hexdigest()
